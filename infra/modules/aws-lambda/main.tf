# The gateway on AWS Lambda: a streaming Function URL in front of the
# `bootstrap` binary, consumers and API keys in DynamoDB, provider secrets in
# SSM Parameter Store (read once per cold start, never in plain environment
# variables), everything encrypted with one customer-managed KMS key.
#
# The environment variable names below are the contract with the adapter
# (aws-lambda/src/lib.rs); tests/tests/infra_drift.rs fails when they differ.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  ssm_prefix = "/${var.name}/"
  log_group  = "/aws/lambda/${var.name}"
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.region
  partition  = data.aws_partition.current.partition
}

# --- KMS: one key for the table, the secrets, the logs and the environment --

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A key policy's "*" resource means this key only; the account root must administer its key.
  #checkov:skip=CKV_AWS_111:A key policy's "*" resource means this key only; the logs statement is limited to this log group by condition.
  #checkov:skip=CKV_AWS_356:A key policy's "*" resource means this key only.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogsEncrypt"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group}"]
    }
  }
}

resource "aws_kms_key" "gateway" {
  description         = "${var.name}: DynamoDB table, SSM secrets, logs, Lambda environment"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.kms.json
  tags                = var.tags
}

resource "aws_kms_alias" "gateway" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.gateway.key_id
}

# --- DynamoDB: consumers and API keys (partition key `pk`, TTL `expires_at`) --

resource "aws_dynamodb_table" "gateway" {
  name         = var.name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"

  attribute {
    name = "pk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.gateway.arn
  }

  tags = var.tags
}

# --- Secrets: SSM SecureString under /<name>/ ------------------------------

# The values are write-only (`value_wo`, Terraform >= 1.11): they reach SSM
# but not the Terraform state or plan. `value_wo_version` tells the provider
# when to write again; it is derived from a hash of the value (32 bits of
# it, a number, in the state), so a changed key is rewritten on apply.
resource "aws_ssm_parameter" "secret" {
  for_each         = nonsensitive(toset(keys(var.provider_secrets)))
  name             = "${local.ssm_prefix}${each.key}"
  type             = "SecureString"
  key_id           = aws_kms_key.gateway.arn
  value_wo         = var.provider_secrets[each.key]
  value_wo_version = parseint(substr(sha256(var.provider_secrets[each.key]), 0, 8), 16)
  tags             = var.tags
}

# --- Logs --------------------------------------------------------------------

# CloudWatch Logs checks on creation that it may use the key: the key policy
# (which allows logs.<region>.amazonaws.com for this log group) must exist
# first. `kms_key_id` orders the key before the group; the policy is part of
# the key, but say it explicitly so a later split of the policy keeps it.
resource "aws_cloudwatch_log_group" "gateway" {
  name              = local.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.gateway.arn
  tags              = var.tags

  depends_on = [aws_kms_key.gateway]
}

# --- IAM: only this table, these parameters, this key, this log group -------

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "gateway" {
  statement {
    sid       = "KeysAndQuotas"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.gateway.arn]
  }
  statement {
    sid     = "ProviderSecrets"
    actions = ["ssm:GetParametersByPath"]
    resources = [
      "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${trimsuffix(local.ssm_prefix, "/")}",
      "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.ssm_prefix}*",
    ]
  }
  statement {
    sid       = "DecryptWithTheGatewayKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.gateway.arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.gateway.arn}:*"]
  }
  # The `bedrock` provider signs with the role's credentials: Converse needs
  # InvokeModel, ConverseStream InvokeModelWithResponseStream.
  dynamic "statement" {
    for_each = length(var.bedrock_model_arns) > 0 ? [1] : []
    content {
      sid       = "BedrockModels"
      actions   = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
      resources = var.bedrock_model_arns
    }
  }
}

resource "aws_iam_role" "gateway" {
  name               = var.name
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "gateway" {
  name   = var.name
  role   = aws_iam_role.gateway.id
  policy = data.aws_iam_policy_document.gateway.json
}

# --- The function ------------------------------------------------------------

data "archive_file" "package" {
  type             = "zip"
  source_dir       = var.package_dir
  output_path      = "${path.root}/.terraform/${var.name}-lambda.zip"
  output_file_mode = "0755"
}

resource "aws_lambda_function" "gateway" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously through its Function URL only; a dead-letter queue applies to asynchronous invocations.
  #checkov:skip=CKV_AWS_117:Calls public AI provider APIs; a VPC would add a NAT gateway (cost, cold start) and protect nothing the IAM policy does not.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile the user provides; the zip's hash is pinned by source_code_hash.
  function_name                  = var.name
  role                           = aws_iam_role.gateway.arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.architecture]
  filename                       = data.archive_file.package.output_path
  source_code_hash               = data.archive_file.package.output_base64sha256
  memory_size                    = var.memory_size
  timeout                        = var.timeout
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = aws_kms_key.gateway.arn

  environment {
    variables = {
      GATEWAY_CONFIG_PATH = "/var/task/gateway.yaml"
      GATEWAY_STORE       = "dynamodb"
      GATEWAY_TABLE       = aws_dynamodb_table.gateway.name
      GATEWAY_SSM_PREFIX  = local.ssm_prefix
      RUST_LOG            = var.log_level
    }
  }

  tracing_config {
    mode = "PassThrough"
  }

  # The gateway writes JSON lines (tracing-subscriber's JSON format);
  # JSON lets CloudWatch Logs Insights query their fields.
  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.gateway.name
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.gateway, aws_ssm_parameter.secret]
}

resource "aws_lambda_function_url" "gateway" {
  #checkov:skip=CKV_AWS_258:Public API by design: the gateway authenticates every route that needs it (API keys, JWT); set function_url_auth_type = "AWS_IAM" to require SigV4 too.
  function_name      = aws_lambda_function.gateway.function_name
  authorization_type = var.function_url_auth_type
  invoke_mode        = "RESPONSE_STREAM"
}

# A public Function URL (auth type NONE) needs two statements in the
# function's resource policy: lambda:InvokeFunctionUrl, and since October
# 2025 lambda:InvokeFunction restricted to calls through the Function URL
# (`invoked_via_function_url`, hashicorp/aws >= 6.28). Without the second,
# every request to a new Function URL gets 403.
resource "aws_lambda_permission" "function_url" {
  #checkov:skip=CKV_AWS_301:Public by design when function_url_auth_type = NONE: the gateway authenticates callers itself (API keys, JWT).
  count                  = var.function_url_auth_type == "NONE" ? 1 : 0
  statement_id           = "PublicFunctionUrl"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.gateway.function_name
  principal              = "*"
  function_url_auth_type = "NONE"
}

resource "aws_lambda_permission" "function_url_invoke" {
  #checkov:skip=CKV_AWS_301:Public by design when function_url_auth_type = NONE, and only through the Function URL (invoked_via_function_url).
  count                    = var.function_url_auth_type == "NONE" ? 1 : 0
  statement_id             = "PublicFunctionUrlInvoke"
  action                   = "lambda:InvokeFunction"
  function_name            = aws_lambda_function.gateway.function_name
  principal                = "*"
  invoked_via_function_url = true
}
