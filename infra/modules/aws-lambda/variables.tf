variable "name" {
  description = "Name of the function, table, log group, KMS alias and SSM path."
  type        = string
  default     = "ai-gateway"
}

variable "package_dir" {
  description = "Directory holding the `bootstrap` binary (cargo lambda build --release --arm64) and `gateway.yaml`; zipped as the function code."
  type        = string
}

variable "architecture" {
  description = "CPU architecture the bootstrap was built for: arm64 (cargo lambda build --arm64) or x86_64."
  type        = string
  default     = "arm64"
  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "memory_size" {
  description = "Function memory in MB (CPU scales with it)."
  type        = number
  default     = 256
}

variable "timeout" {
  description = "Function timeout in seconds; bounds the longest streamed completion."
  type        = number
  default     = 300
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions (caps cost and upstream load)."
  type        = number
  default     = 50
}

variable "log_retention_days" {
  description = "CloudWatch log retention in days."
  type        = number
  default     = 365
}

variable "log_level" {
  description = "RUST_LOG filter for the gateway's JSON logs."
  type        = string
  default     = "info"
}

variable "function_url_auth_type" {
  description = "NONE: the gateway authenticates callers itself (API keys, JWT). AWS_IAM: callers must SigV4-sign requests as well."
  type        = string
  default     = "NONE"
  validation {
    condition     = contains(["NONE", "AWS_IAM"], var.function_url_auth_type)
    error_message = "function_url_auth_type must be NONE or AWS_IAM."
  }
}

variable "provider_secrets" {
  description = "Provider keys and other secrets, NAME => value, stored as SSM SecureString under /<name>/ and referenced from the config as $${env:NAME}. Pass them with TF_VAR_provider_secrets or an untracked tfvars file, never in git."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "bedrock_model_arns" {
  description = "Bedrock foundation models and inference profiles the gateway may invoke (the `bedrock` provider signs with the function's role), e.g. arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0. Empty: no Bedrock access."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
