output "sqs_queue_url" {
  description = "URL of the request queue: send migration requests here."
  value       = aws_sqs_queue.requests.url
}

output "sqs_dead_letter_queue_url" {
  description = "URL of the request dead-letter queue."
  value       = aws_sqs_queue.requests_dlq.url
}

output "state_machine_arn" {
  description = "ARN of the migration state machine."
  value       = aws_sfn_state_machine.this.arn
}

output "event_bus_name" {
  description = "Name of the custom EventBridge bus that carries status events."
  value       = aws_cloudwatch_event_bus.this.name
}

output "state_table_name" {
  description = "Name of the DynamoDB state table."
  value       = aws_dynamodb_table.state.name
}

output "lambda_function_names" {
  description = "Lambda function names by handler module name."
  value       = { for key, function in aws_lambda_function.this : key => function.function_name }
}

output "callback_signing_secret_arn" {
  description = "ARN of the callback signing secret; set its value with put-secret-value."
  value       = aws_secretsmanager_secret.callback_signing.arn
}

output "kms_key_arn" {
  description = "ARN of the customer managed key that encrypts the orchestration's data."
  value       = aws_kms_key.this.arn
}

output "slack_endpoint_url" {
  description = "The Slack app's request URL (Lambda function URL): put it in bot/slack-app-manifest.yaml's request_url fields."
  value       = aws_lambda_function_url.slack_app.function_url
}

output "github_token_secret_arn" {
  description = "ARN of the GitHub token secret of the progress reports (var.github_progress); set its value with put-secret-value."
  value       = aws_secretsmanager_secret.github_token.arn
}

output "slack_bot_token_secret_arn" {
  description = "ARN of the Slack bot token secret; set its value with put-secret-value."
  value       = aws_secretsmanager_secret.slack_bot_token.arn
}

output "slack_signing_secret_arn" {
  description = "ARN of the Slack signing secret; set its value with put-secret-value."
  value       = aws_secretsmanager_secret.slack_signing.arn
}

output "slack_status_queue_url" {
  description = "URL of the Slack bot's status queue (standard: the bot orders each migration's events by sequence)."
  value       = aws_sqs_queue.slack_status.url
}

output "slack_priority_queue_url" {
  description = "URL of the Slack bot's priority queue (FIFO): approvals, failures and rollbacks, beside the status queue."
  value       = aws_sqs_queue.slack_priority.url
}

output "dashboard_url" {
  description = "CloudWatch dashboard of the migrations."
  value       = "https://${var.aws_region}.console.aws.amazon.com/cloudwatch/home?region=${var.aws_region}#dashboards/dashboard/${aws_cloudwatch_dashboard.this.dashboard_name}"
}

output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies; subscribe on-call endpoints to it."
  value       = aws_sns_topic.alarms.arn
}

output "github_publish_role_arn" {
  description = "For the repository variable WAVEPILOT_PUBLISH_ROLE_ARN (publish.yml); null without github_repository."
  value       = try(aws_iam_role.github_publish[0].arn, null)
}

output "terraform_plan_role_arn" {
  description = "For the repository variable TERRAFORM_PLAN_ROLE_ARN (deploy.yml plan job); null without github_repository."
  value       = try(aws_iam_role.terraform_plan[0].arn, null)
}

output "terraform_apply_role_arn" {
  description = "For the repository variable TERRAFORM_APPLY_ROLE_ARN (deploy.yml apply job); null without github_repository."
  value       = try(aws_iam_role.terraform_apply[0].arn, null)
}

output "manifest_plan_role_arn" {
  description = "For the repository variable WAVEPILOT_MANIFEST_PLAN_ROLE_ARN (manifests.yml: MGN drift in the pull request's plan) and the target-account module's hub_manifest_plan_role_arn; null unless manifest_plan_mgn_drift."
  value       = try(aws_iam_role.manifest_plan[0].arn, null)
}

output "grouping_reader_role_name" {
  description = "For the repository variable WAVEPILOT_GROUPING_READER_ROLE_NAME (manifests.yml): the read-only role the target-account module creates given hub_manifest_plan_role_arn."
  value       = local.grouping_reader_role_name
}

output "lane_function_role_arns" {
  description = "The Lambda roles that assume the target role in each lane: hub_function_role_arns of terraform/modules/target-account."
  value       = [for function in local.lane_functions : aws_iam_role.lambda[function].arn]
}

output "target_role_name" {
  description = "The role name every target account must have (terraform/modules/target-account creates it)."
  value       = local.names.target_role
}
