variable "account_id" {
  description = "Cloudflare account id (dashboard → Workers & Pages → Account details)."
  type        = string
}

variable "name" {
  description = "Worker script name."
  type        = string
  default     = "ai-gateway"
}

variable "build_dir" {
  description = "worker-build output directory."
  type        = string
  default     = "../../../cloudflare-worker/build"
}

variable "config_path" {
  description = "The gateway YAML config to deploy (GATEWAY_CONFIG)."
  type        = string
  default     = "../../../config/gateway.example.yaml"
}

variable "zone_id" {
  description = "Zone of route_pattern or custom_domain (optional)."
  type        = string
  default     = null
}

variable "route_pattern" {
  description = "Route pattern such as api.example.com/* (optional, needs zone_id)."
  type        = string
  default     = null
}

variable "workers_dev" {
  description = "Serve on <name>.<your-subdomain>.workers.dev (the account's workers.dev subdomain must exist)."
  type        = bool
  default     = true
}

variable "custom_domain" {
  description = "Hostname served by the Worker (optional)."
  type        = string
  default     = null
}

variable "provider_secrets" {
  description = "NAME => secret bound as Worker secrets. Set with TF_VAR_provider_secrets; never commit values."
  type        = map(string)
  default     = {}
  sensitive   = true
}
