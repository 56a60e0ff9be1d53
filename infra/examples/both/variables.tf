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
  description = "NAME => secret for both runtimes (provider keys, GATEWAY_ADMIN_KEY_SHA256). Set with TF_VAR_provider_secrets; never commit values. No AWS_* names here (see worker_secrets)."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "lambda_secrets" {
  description = "NAME => secret for Lambda only (added to provider_secrets)."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "worker_secrets" {
  description = "NAME => secret for the Worker only, e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY of an IAM user for the bedrock provider (the config default references). Set with TF_VAR_worker_secrets."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "bedrock_model_arns" {
  description = "Bedrock models the Lambda role may invoke; empty: none."
  type        = list(string)
  default     = []
}
