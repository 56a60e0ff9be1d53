variable "account_id" {
  description = "Cloudflare account id."
  type        = string
}

variable "name" {
  description = "Worker script name (also the KV namespace title prefix)."
  type        = string
  default     = "ai-gateway"
}

variable "build_dir" {
  description = "The worker-build output: cloudflare-worker/build (index.js and index_bg.wasm)."
  type        = string
}

variable "gateway_config" {
  description = "The gateway's YAML config text (GATEWAY_CONFIG). Secrets in it are $${env:NAME} references only."
  type        = string
}

variable "compatibility_date" {
  description = "Workers compatibility date (keep in step with cloudflare-worker/wrangler.toml)."
  type        = string
  default     = "2026-04-26"
}

variable "provider_secrets" {
  description = "Provider keys and other secrets, NAME => value, bound as Worker secrets and referenced from the config as $${env:NAME}. Pass them with TF_VAR_provider_secrets, never in git."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "workers_dev" {
  description = "Serve the Worker on <name>.<account>.workers.dev."
  type        = bool
  default     = true
}

variable "zone_id" {
  description = "Zone for a route or custom domain (optional)."
  type        = string
  default     = null
}

variable "route_pattern" {
  description = "Route pattern such as api.example.com/* (needs zone_id)."
  type        = string
  default     = null
}

variable "custom_domain" {
  description = "Hostname served entirely by the Worker, such as ai.example.com (needs zone_id)."
  type        = string
  default     = null
}
