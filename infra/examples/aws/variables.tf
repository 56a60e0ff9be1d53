variable "region" {
  description = "AWS region."
  type        = string
}

variable "name" {
  description = "Name of the function and its resources."
  type        = string
  default     = "ai-gateway"
}

variable "package_dir" {
  description = "Directory with `bootstrap` and `gateway.yaml` (see infra/README.md)."
  type        = string
}

variable "architecture" {
  description = "arm64 (cargo lambda build --arm64) or x86_64."
  type        = string
  default     = "arm64"
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions; null (default): none (new accounts cannot reserve any)."
  type        = number
  default     = null
}

variable "bedrock_model_arns" {
  description = "Bedrock models the function's role may invoke (the bedrock provider); empty: none."
  type        = list(string)
  default     = []
}

variable "provider_secrets" {
  description = "NAME => secret (provider keys, GATEWAY_ADMIN_KEY_SHA256). Set with TF_VAR_provider_secrets; never commit values."
  type        = map(string)
  default     = {}
  sensitive   = true
}
