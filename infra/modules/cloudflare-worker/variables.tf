variable "account_id" {
  description = "Cloudflare account id (32 hex digits)."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{32}$", var.account_id))
    error_message = "account_id must be the 32-hex-digit Cloudflare account id (dashboard → Workers & Pages → Account details)."
  }
}

variable "name" {
  description = "Worker script name (also the KV namespace title prefix)."
  type        = string
  default     = "ai-gateway"
  validation {
    # Worker names: lowercase letters, digits and dashes, at most 63 characters.
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.name))
    error_message = "name must be 1-63 lowercase letters, digits or dashes, not starting or ending with a dash."
  }
}

variable "build_dir" {
  description = "The worker-build output: cloudflare-worker/build (index.js and index_bg.wasm)."
  type        = string
}

variable "gateway_config" {
  description = "The gateway's YAML config text, stored in the KV namespace and named to the Worker by GATEWAY_CONFIG_KV_KEY. Secrets in it are $${env:NAME} references only."
  type        = string
  validation {
    # Workers KV caps a value at 25 MiB; base64 counts UTF-8 bytes.
    condition     = length(trimspace(var.gateway_config)) > 0 && length(base64encode(var.gateway_config)) <= 34952536
    error_message = "gateway_config must be non-empty and at most 25 MiB (the Workers KV value limit)."
  }
}

variable "compatibility_date" {
  description = "Workers compatibility date (keep in step with cloudflare-worker/wrangler.toml)."
  type        = string
  default     = "2026-04-26"
  validation {
    condition     = can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", var.compatibility_date))
    error_message = "compatibility_date must be a date such as 2026-04-26."
  }
}

variable "provider_secrets" {
  description = "Provider keys and other secrets, NAME => value, uploaded as Worker secrets and referenced from the config as $${env:NAME}. Pass them with TF_VAR_provider_secrets, never in git. They reach wrangler through a temporary file and are not stored in the Terraform state (a hash of them is). Removing a name here does not delete the Worker secret: run `wrangler secret delete NAME --name <name>`."
  type        = map(string)
  default     = {}
  sensitive   = true
  validation {
    condition     = alltrue([for k in nonsensitive(keys(var.provider_secrets)) : can(regex("^[A-Za-z_][A-Za-z0-9_]*$", k))])
    error_message = "provider_secrets names must be identifiers (letters, digits, underscores) as used in $${env:NAME}."
  }
}

variable "wrangler" {
  description = "The wrangler executable that deploys the script. Default: cloudflare-worker/node_modules/.bin/wrangler in this repository (scripts/bootstrap installs it)."
  type        = string
  default     = null
}

variable "workers_dev" {
  description = "Serve the Worker on <name>.<your-subdomain>.workers.dev (the account needs a workers.dev subdomain: dashboard → Workers & Pages, once)."
  type        = bool
  default     = true
}

variable "zone_id" {
  description = "Zone of route_pattern or custom_domain (required with either)."
  type        = string
  default     = null
}

variable "route_pattern" {
  description = "Route pattern such as api.example.com/* (needs zone_id)."
  type        = string
  default     = null
  validation {
    condition     = var.route_pattern == null || var.zone_id != null
    error_message = "route_pattern needs zone_id (the zone the route belongs to)."
  }
}

variable "custom_domain" {
  description = "Hostname served entirely by the Worker, such as ai.example.com (needs zone_id)."
  type        = string
  default     = null
  validation {
    condition     = var.custom_domain == null || var.zone_id != null
    error_message = "custom_domain needs zone_id (the zone the hostname belongs to)."
  }
}
