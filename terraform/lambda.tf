# One function per entry of local.lambda_functions (orchestration.naming.FUNCTIONS), all from
# the same package; each with its own role (iam.tf) and log group.
resource "aws_cloudwatch_log_group" "lambda" {
  for_each = local.lambda_functions

  name              = "/aws/lambda/${each.value.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_lambda_function" "this" {
  for_each = local.lambda_functions

  function_name    = each.value.name
  description      = "Wavepilot ${each.key}"
  role             = aws_iam_role.lambda[each.key].arn
  runtime          = "python3.11"
  architectures    = ["x86_64"]
  handler          = each.value.handler
  filename         = var.lambda_package_path
  source_code_hash = filebase64sha256(var.lambda_package_path)
  timeout          = each.value.timeout
  memory_size      = var.lambda_memory_size
  kms_key_arn      = aws_kms_key.this.arn

  environment {
    variables = merge(local.common_environment, lookup(local.function_environment, each.key, {}))
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.lambda[each.key].name
  }

  depends_on = [aws_iam_role_policy.lambda]
}

# The request queue feeds the ingress handler; it reports failed records one by one
# (Powertools BatchProcessor), so one bad message does not return the whole batch.
resource "aws_lambda_event_source_mapping" "requests" {
  event_source_arn        = aws_sqs_queue.requests.arn
  function_name           = aws_lambda_function.this["ingress_handler"].arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]
}

# EventBridge invokes these two asynchronously: failed invocations go to the dead-letter queue.
resource "aws_lambda_function_event_invoke_config" "event_targets" {
  for_each = toset(["start_migration", "callback_handler"])

  function_name                = aws_lambda_function.this[each.key].function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 3600

  destination_config {
    on_failure {
      destination = aws_sqs_queue.event_target_dlq.arn
    }
  }
}

# Signing key for the status callbacks: the callback handler reads it by ARN. Its value is
# set outside Terraform (aws secretsmanager put-secret-value), so it never enters the state.
resource "aws_secretsmanager_secret" "callback_signing" {
  name        = local.names.callback_signing_secret
  description = "HMAC key that signs Wavepilot status callbacks (a plain string)."
  kms_key_id  = aws_kms_key.this.arn
}
