# The custom bus and its two rules, as orchestration/local/system.py creates them.
locals {
  # orchestration.pipeline.callbacks.CALLBACK_DETAIL_TYPES: every event type but the request.
  callback_detail_types = [
    "MigrationStatusUpdated",
    "ApprovalRequested",
    "ApprovalDecided",
    "MigrationCompleted",
    "MigrationFailed",
    "RollbackStarted",
    "RollbackCompleted",
  ]
}

resource "aws_cloudwatch_event_bus" "this" {
  name = local.names.event_bus
}

resource "aws_cloudwatch_event_rule" "migration_requested" {
  name           = local.names.migration_requested_rule
  description    = "A validated migration request: start its state machine execution."
  event_bus_name = aws_cloudwatch_event_bus.this.name

  event_pattern = jsonencode({
    source        = ["wavepilot.migrations"]
    "detail-type" = ["MigrationRequested"]
  })
}

resource "aws_cloudwatch_event_target" "start_migration" {
  rule           = aws_cloudwatch_event_rule.migration_requested.name
  event_bus_name = aws_cloudwatch_event_bus.this.name
  target_id      = "start-migration"
  arn            = aws_lambda_function.this["start_migration"].arn

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 10
  }

  dead_letter_config {
    arn = aws_sqs_queue.event_target_dlq.arn
  }
}

# Only migrations with callbacks: the event's routing names an https callback URL
# (orchestration.pipeline.callbacks.callback_event_pattern; the manifest allows only https).
resource "aws_cloudwatch_event_rule" "status_callbacks" {
  name           = local.names.status_callbacks_rule
  description    = "Status events (all but MigrationRequested) of migrations with callback URLs: deliver them signed."
  event_bus_name = aws_cloudwatch_event_bus.this.name

  event_pattern = jsonencode({
    source        = ["wavepilot.migrations"]
    "detail-type" = local.callback_detail_types
    detail = {
      routing = {
        callbackUrls = [{ prefix = "https://" }]
      }
    }
  })
}

resource "aws_cloudwatch_event_target" "callback_handler" {
  rule           = aws_cloudwatch_event_rule.status_callbacks.name
  event_bus_name = aws_cloudwatch_event_bus.this.name
  target_id      = "status-callbacks"
  arn            = aws_lambda_function.this["callback_handler"].arn

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 10
  }

  dead_letter_config {
    arn = aws_sqs_queue.event_target_dlq.arn
  }
}

resource "aws_lambda_permission" "events_start_migration" {
  statement_id  = "AllowMigrationRequestedRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["start_migration"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.migration_requested.arn
}

resource "aws_lambda_permission" "events_callback_handler" {
  statement_id  = "AllowStatusCallbacksRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["callback_handler"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.status_callbacks.arn
}

# Every status event, in order, to the Slack bot's FIFO queue (the notifier keeps one thread
# per migration). EventBridge takes only a fixed group ID: naming.SLACK_STATUS_MESSAGE_GROUP.
resource "aws_cloudwatch_event_rule" "status_to_slack" {
  name           = local.names.status_to_slack_rule
  description    = "Every migration event: show it in the migration's Slack thread."
  event_bus_name = aws_cloudwatch_event_bus.this.name

  event_pattern = jsonencode({
    source        = ["wavepilot.migrations"]
    "detail-type" = local.status_detail_types
  })
}

resource "aws_cloudwatch_event_target" "slack_status" {
  rule           = aws_cloudwatch_event_rule.status_to_slack.name
  event_bus_name = aws_cloudwatch_event_bus.this.name
  target_id      = "status-to-slack"
  arn            = aws_sqs_queue.slack_status.arn

  sqs_target {
    message_group_id = "status-events"
  }

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 10
  }

  dead_letter_config {
    arn = aws_sqs_queue.event_target_dlq.arn
  }
}
