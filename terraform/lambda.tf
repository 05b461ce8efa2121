# One function per entry of local.lambda_functions (orchestration.naming.FUNCTIONS,
# SCHEDULED_FUNCTIONS and BOT_FUNCTIONS), all from the same package; each with its own role (iam.tf) and log group.
resource "aws_cloudwatch_log_group" "lambda" {
  for_each = local.lambda_functions

  name              = "/aws/lambda/${each.value.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Asynchronously invoked functions (start_migration, callback_handler, slack_app) send failures to the events DLQ through on-failure destinations (aws_lambda_function_event_invoke_config), which AWS recommends over DLQ config; the scheduled monitor_migrations is not retried (the next run comes within 5 minutes; its error-rate alarm reports failures); the rest are invoked synchronously (SQS mappings, Step Functions, the function URL), where a DLQ is never used.
  #checkov:skip=CKV_AWS_272:The package is built reproducibly by `make package` and deployed from a local zip; Lambda code signing needs signer jobs over S3 objects, which this pipeline does not have. The deploy role and CI are the integrity control.
  #checkov:skip=CKV_AWS_117:VPC placement is optional (var.private_deployment): the pipeline only calls AWS APIs, and the bot and callbacks call the internet, which a VPC would only reach through a NAT the operator provides.
  #checkov:skip=CKV_AWS_115:Reserved concurrency is set where it protects a rate-limited API (local.lambda_reserved_concurrency: MGN callers, the Slack notifier = 1); the SQS-fed ingress handler is capped by its event source mapping instead, and the others are bounded by their callers.
  for_each = local.lambda_functions

  function_name                  = each.value.name
  description                    = "Wavepilot ${each.key}"
  role                           = aws_iam_role.lambda[each.key].arn
  runtime                        = "python3.13"
  architectures                  = ["x86_64"]
  handler                        = each.value.handler
  filename                       = var.lambda_package_path
  source_code_hash               = filebase64sha256(var.lambda_package_path)
  timeout                        = each.value.timeout
  memory_size                    = var.lambda_memory_size
  kms_key_arn                    = aws_kms_key.this.arn
  reserved_concurrent_executions = local.lambda_reserved_concurrency[each.key]

  environment {
    variables = local.lambda_environment[each.key]
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.lambda[each.key].name
  }

  # Optional private deployment (network.tf): private subnets, AWS APIs through VPC endpoints.
  dynamic "vpc_config" {
    for_each = var.private_deployment ? [1] : []
    content {
      subnet_ids         = var.private_subnet_ids
      security_group_ids = [aws_security_group.lambda[0].id]
    }
  }

  depends_on = [aws_iam_role_policy.lambda, aws_iam_role_policy_attachment.lambda_vpc]
}

# The request queue feeds the ingress handler; it reports failed records one by one
# (Powertools BatchProcessor), so one bad message does not return the whole batch.
resource "aws_lambda_event_source_mapping" "requests" {
  event_source_arn        = aws_sqs_queue.requests.arn
  function_name           = aws_lambda_function.this["ingress_handler"].arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.ingress_max_concurrency
  }
}

# The status queue feeds the Slack notifier in batches of ten (filled within a window if one is
# set: routine status is then shown up to the window late; what a person acts on takes the
# priority queue); a failed record and its migration's later ones in the batch are retried,
# the rest deleted by the mapping (a standard queue: none waits behind one). Two pollers at most
# (the least Lambda allows) for a notifier reserved to one: a batch the other holds up is
# retried by its poller within seconds, far inside the visibility timeout.
resource "aws_lambda_event_source_mapping" "slack_status" {
  event_source_arn                   = aws_sqs_queue.slack_status.arn
  function_name                      = aws_lambda_function.this["slack_notifier"].arn
  batch_size                         = 10
  maximum_batching_window_in_seconds = var.slack_status_batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = 2
  }
}

# The priority queue feeds the same function beside it, one batch at a time too: an approval
# waits at most for the priority batch before it, never for the status queue's backlog.
resource "aws_lambda_event_source_mapping" "slack_priority" {
  event_source_arn        = aws_sqs_queue.slack_priority.arn
  function_name           = aws_lambda_function.this["slack_notifier"].arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]
}

# The GitHub progress queue feeds its function, one batch at a time (one message group); a
# wave whose report fails comes back with every record after it.
resource "aws_lambda_event_source_mapping" "github_progress" {
  event_source_arn        = aws_sqs_queue.github_progress.arn
  function_name           = aws_lambda_function.this["report_github_progress"].arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]
}

# Invoked asynchronously (EventBridge; the Slack app by itself for lazy listeners): failed
# invocations go to the dead-letter queue.
resource "aws_lambda_function_event_invoke_config" "event_targets" {
  for_each = toset(local.async_functions)

  function_name = aws_lambda_function.this[each.key].function_name
  # A lazy Slack listener is not retried: its user sees the failure and can click again.
  maximum_retry_attempts       = each.key == "slack_app" ? 0 : 2
  maximum_event_age_in_seconds = 3600

  destination_config {
    on_failure {
      destination = aws_sqs_queue.event_target_dlq.arn
    }
  }
}

# The Slack endpoint: Slack signs every request (the app verifies X-Slack-Signature with the
# signing secret before anything else), so the URL itself takes no IAM auth.
resource "aws_lambda_function_url" "slack_app" {
  #checkov:skip=CKV_AWS_258:Slack cannot sign requests with SigV4; every request is authenticated by the Slack signing secret (HMAC over body and timestamp, replay window) in the Bolt app.
  function_name      = aws_lambda_function.this["slack_app"].function_name
  authorization_type = "NONE"
}

resource "aws_lambda_permission" "slack_app_url" {
  #checkov:skip=CKV_AWS_301:The Slack endpoint must be reachable by Slack; only lambda:InvokeFunctionUrl with auth type NONE is granted, and requests are verified against the Slack signing secret.
  statement_id           = "AllowSlackFunctionUrl"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.this["slack_app"].function_name
  principal              = "*"
  function_url_auth_type = "NONE"
}

# Signing key for the status callbacks: the callback handler reads it by ARN. Its value is
# set outside Terraform (aws secretsmanager put-secret-value), so it never enters the state.
resource "aws_secretsmanager_secret" "callback_signing" {
  #checkov:skip=CKV2_AWS_57:Receivers verify callbacks with this key, so rotating it is a coordinated change with them (docs/RUNBOOK.md); a rotation Lambda could not tell the receivers.
  name        = local.names.callback_signing_secret
  description = "HMAC key that signs Wavepilot status callbacks (a plain string)."
  kms_key_id  = aws_kms_key.this.arn
}

# The Slack app's credentials, from the app's settings page (docs/DEPLOY.md). Created without
# a version: the operator sets the values with put-secret-value, so they never enter the state.
resource "aws_secretsmanager_secret" "slack_bot_token" {
  #checkov:skip=CKV2_AWS_57:A Slack bot token is issued by Slack (reinstall or token rotation in the Slack app settings), not generated by AWS; rotation is an operator step in docs/RUNBOOK.md.
  name        = local.names.slack_bot_token_secret
  description = "Slack bot token (xoxb-...) of the Wavepilot Slack app (a plain string)."
  kms_key_id  = aws_kms_key.this.arn
}

resource "aws_secretsmanager_secret" "slack_signing" {
  #checkov:skip=CKV2_AWS_57:The Slack signing secret is issued by Slack (regenerated in the Slack app settings), not generated by AWS; rotation is an operator step in docs/RUNBOOK.md.
  name        = local.names.slack_signing_secret
  description = "Slack signing secret of the Wavepilot Slack app (a plain string)."
  kms_key_id  = aws_kms_key.this.arn
}

# The token report_github_progress calls GitHub with (a plain string; var.github_progress): a
# fine-grained token with Deployments and Pull requests (read and write) on
# var.github_repository, or a GitHub App's installation token kept fresh by the operator
# (docs/RUNBOOK.md). Set outside Terraform.
resource "aws_secretsmanager_secret" "github_token" {
  #checkov:skip=CKV2_AWS_57:A GitHub token is issued by GitHub (a fine-grained token's expiry, or a GitHub App's installation token), not generated by AWS; rotation is an operator step in docs/RUNBOOK.md.
  name        = local.names.github_token_secret
  description = "GitHub token of Wavepilot's progress reports (a plain string)."
  kms_key_id  = aws_kms_key.this.arn
}
