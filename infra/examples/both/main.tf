# The same gateway on both runtimes: AWS Lambda and Cloudflare Workers,
# with one config file. Credentials: the AWS provider chain and
# CLOUDFLARE_API_TOKEN.

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
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = ">= 5.14, < 6.0"
    }
  }
}

provider "aws" {
  region = var.region
}

provider "cloudflare" {}

# Secrets per runtime: the Worker needs AWS_* keys of an IAM user for the
# bedrock provider; on Lambda those names would replace the function role's
# credentials, so Lambda gets only the shared secrets and Bedrock through
# bedrock_model_arns.
module "lambda" {
  source             = "../../modules/aws-lambda"
  name               = var.name
  package_dir        = var.package_dir
  provider_secrets   = merge(var.provider_secrets, var.lambda_secrets)
  bedrock_model_arns = var.bedrock_model_arns
}

module "worker" {
  source           = "../../modules/cloudflare-worker"
  account_id       = var.account_id
  name             = var.name
  build_dir        = var.build_dir
  gateway_config   = file(var.config_path)
  provider_secrets = merge(var.provider_secrets, var.worker_secrets)
}

output "lambda_function_url" {
  description = "Gateway base URL on Lambda."
  value       = module.lambda.function_url
}

output "lambda_table_name" {
  description = "DynamoDB table with consumers and API keys."
  value       = module.lambda.table_name
}

output "worker_script_name" {
  description = "Worker script name (served on workers.dev)."
  value       = module.worker.script_name
}
