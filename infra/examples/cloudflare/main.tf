# Deploys the gateway to Cloudflare Workers. See infra/README.md for the
# build step that fills build_dir. The API token comes from
# CLOUDFLARE_API_TOKEN.

terraform {
  required_version = ">= 1.9"
  required_providers {
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = ">= 5.14, < 6.0"
    }
  }
}

provider "cloudflare" {}

module "gateway" {
  source           = "../../modules/cloudflare-worker"
  account_id       = var.account_id
  name             = var.name
  build_dir        = var.build_dir
  gateway_config   = file(var.config_path)
  provider_secrets = var.provider_secrets
  zone_id          = var.zone_id
  route_pattern    = var.route_pattern
  custom_domain    = var.custom_domain
  workers_dev      = var.workers_dev
}

output "script_name" {
  description = "Worker script name."
  value       = module.gateway.script_name
}

output "kv_namespace_id" {
  description = "KV namespace with consumers and API keys."
  value       = module.gateway.kv_namespace_id
}

output "custom_domain_url" {
  description = "https://<custom_domain>/ when set (else use <name>.<subdomain>.workers.dev)."
  value       = module.gateway.custom_domain_url
}
