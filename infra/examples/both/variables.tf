variable "region" {
  description = "AWS region."
  type        = string
}

variable "account_id" {
  description = "Cloudflare account id."
  type        = string
}

variable "name" {
  description = "Name of both deployments."
  type        = string
  default     = "ai-gateway"
}

variable "package_dir" {
  description = "Directory with `bootstrap` and `gateway.yaml` for Lambda."
  type        = string
  default     = "../../../dist/lambda"
}

variable "build_dir" {
  description = "worker-build output directory."
  type        = string
  default     = "../../../cloudflare-worker/build"
}

variable "config_path" {
  description = "The gateway YAML config for the Worker (use the same file as package_dir/gateway.yaml)."
  type        = string
  default     = "../../../dist/lambda/gateway.yaml"
}

variable "provider_secrets" {
  description = "NAME => secret for both runtimes. Set with TF_VAR_provider_secrets; never commit values."
  type        = map(string)
  default     = {}
  sensitive   = true
}
