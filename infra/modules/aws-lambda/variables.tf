variable "name" {
  description = "Name of the function, table, log group, KMS alias and SSM path."
  type        = string
  default     = "ai-gateway"
  validation {
    # Lambda function names: letters, digits, dashes, underscores, at most 64;
    # the same string names the role (64) and the table.
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.name))
    error_message = "name must be 1-64 letters, digits, dashes or underscores."
  }
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
  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240 && floor(var.memory_size) == var.memory_size
    error_message = "memory_size must be a whole number of MB from 128 to 10240."
  }
}

variable "timeout" {
  description = "Function timeout in seconds; bounds the longest streamed completion."
  type        = number
  default     = 300
  validation {
    condition     = var.timeout >= 1 && var.timeout <= 900 && floor(var.timeout) == var.timeout
    error_message = "timeout must be a whole number of seconds from 1 to 900 (the Lambda maximum)."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions (caps cost and upstream load). null (the default): no reservation, the function shares the account's unreserved pool. New accounts have a concurrency quota of 10 and must keep 10 unreserved, so any reservation fails there; raise the quota first."
  type        = number
  default     = null
  validation {
    condition     = var.reserved_concurrency == null || try(var.reserved_concurrency >= 0 && floor(var.reserved_concurrency) == var.reserved_concurrency, false)
    error_message = "reserved_concurrency must be null (no reservation) or a whole number >= 0 (0 stops the function)."
  }
}

variable "log_retention_days" {
  description = "CloudWatch log retention in days."
  type        = number
  default     = 365
  validation {
    # The values CloudWatch Logs accepts (0: never expire).
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of 0 (never expire), 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
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
  description = "Provider keys and other secrets, NAME => value, stored as SSM SecureString under /<name>/ (write-only: not in the Terraform state) and referenced from the config as $${env:NAME}. Pass them with TF_VAR_provider_secrets or an untracked tfvars file, never in git. Do not put AWS_* credentials here: on Lambda the bedrock provider signs with the function's role."
  type        = map(string)
  default     = {}
  sensitive   = true
  validation {
    condition     = alltrue([for k in nonsensitive(keys(var.provider_secrets)) : can(regex("^[A-Za-z_][A-Za-z0-9_]*$", k)) && !startswith(k, "AWS_")])
    error_message = "provider_secrets names must be identifiers as used in $${env:NAME}, and not AWS_*: those would replace the function role's credentials (use bedrock_model_arns for Bedrock)."
  }
}

variable "bedrock_model_arns" {
  description = "Bedrock foundation models and inference profiles the gateway may invoke (the `bedrock` provider signs with the function's role), e.g. arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0. Empty: no Bedrock access."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for arn in var.bedrock_model_arns : can(regex("^arn:aws[a-z-]*:bedrock:", arn))])
    error_message = "bedrock_model_arns must be Bedrock ARNs (arn:aws:bedrock:<region>::foundation-model/<model> or an inference profile ARN)."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
