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
