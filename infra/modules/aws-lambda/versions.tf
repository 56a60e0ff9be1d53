terraform {
  # 1.11: write-only arguments (aws_ssm_parameter.value_wo).
  required_version = ">= 1.11"
  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.28: aws_lambda_permission.invoked_via_function_url (the
      # lambda:InvokeFunction statement a public Function URL needs).
      # data.aws_region.region (6.0), aws_ssm_parameter.value_wo.
      version = ">= 6.28, < 7.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4"
    }
  }
}
