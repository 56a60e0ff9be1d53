output "function_url" {
  description = "Base URL of the gateway (OpenAI base URL: <function_url>v1)."
  value       = aws_lambda_function_url.gateway.function_url
}

output "function_name" {
  description = "Lambda function name (for cargo lambda deploy and logs)."
  value       = aws_lambda_function.gateway.function_name
}

output "table_name" {
  description = "DynamoDB table holding consumers and API keys."
  value       = aws_dynamodb_table.gateway.name
}

output "ssm_prefix" {
  description = "SSM path of the provider secrets (GATEWAY_SSM_PREFIX)."
  value       = local.ssm_prefix
}

output "log_group" {
  description = "CloudWatch log group of the gateway's JSON logs."
  value       = aws_cloudwatch_log_group.gateway.name
}
