output "script_name" {
  description = "The Worker script name."
  value       = cloudflare_workers_script.gateway.script_name
}

output "kv_namespace_id" {
  description = "KV namespace holding consumers and API keys."
  value       = cloudflare_workers_kv_namespace.gateway.id
}

output "custom_domain_url" {
  description = "https://<custom_domain>/ when one is set."
  value       = var.custom_domain == null ? null : "https://${var.custom_domain}/"
}
