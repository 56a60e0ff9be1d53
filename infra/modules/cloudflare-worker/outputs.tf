output "script_name" {
  description = "The Worker script name."
  value       = terraform_data.deploy.input.name
}

output "kv_namespace_id" {
  description = "KV namespace holding consumers and API keys."
  value       = cloudflare_workers_kv_namespace.gateway.id
}

output "custom_domain_url" {
  description = "https://<custom_domain>/ when one is set."
  value       = var.custom_domain == null ? null : "https://${var.custom_domain}/"
}

output "deployed_bundle_sha256" {
  description = "Hash over every uploaded module (index.js, index_bg.wasm); a new value means a redeploy."
  value       = local.bundle_sha256
}
