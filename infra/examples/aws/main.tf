# Deploys the gateway to AWS Lambda. See infra/README.md for the build step
# that fills package_dir.

terraform {
  required_version = ">= 1.11"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.28, < 7.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4"
    }
  }
}

provider "aws" {
  region = var.region
}

module "gateway" {
  source               = "../../modules/aws-lambda"
  name                 = var.name
  package_dir          = var.package_dir
  architecture         = var.architecture
  reserved_concurrency = var.reserved_concurrency
  provider_secrets     = var.provider_secrets
  bedrock_model_arns   = var.bedrock_model_arns
}

output "function_url" {
  description = "Gateway base URL; the OpenAI base URL is this plus v1."
  value       = module.gateway.function_url
}

output "table_name" {
  description = "DynamoDB table with consumers and API keys."
  value       = module.gateway.table_name
}

output "ssm_prefix" {
  description = "Where provider secrets live in SSM Parameter Store."
  value       = module.gateway.ssm_prefix
}
