# The custom bus and its two rules, as orchestration/local/system.py creates them.
locals {
  # orchestration.pipeline.callbacks.CALLBACK_DETAIL_TYPES: every event type but the request.
  callback_detail_types = [
    "MigrationStatusUpdated",
    "ApprovalRequested",
    "ApprovalDecided",
    "MigrationCompleted",
    "MigrationFailed",
    "MigrationParked",
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

# Two paths to Slack (docs/ARCHITECTURE.md): the routine status events, in order, to the bot's
# status queue, and what a person must act on or know at once to its priority queue, so an
# approval never waits behind a wave's routine events. Every event matches exactly one rule
# (orchestration.events.slack_event_patterns). EventBridge takes only a fixed group ID per
# FIFO target: naming.SLACK_STATUS_MESSAGE_GROUP and SLACK_PRIORITY_MESSAGE_GROUP.
resource "aws_cloudwatch_event_rule" "status_to_slack" {
  name           = local.names.status_to_slack_rule
  description    = "Every migration event but those on the priority path: show it in the migration's Slack thread."
  event_bus_name = aws_cloudwatch_event_bus.this.name

  event_pattern = jsonencode({
    source        = ["wavepilot.migrations"]
    "detail-type" = [{ anything-but = local.slack_priority_detail_types }]
  })
}

resource "aws_cloudwatch_event_target" "slack_status" {
  rule           = aws_cloudwatch_event_rule.status_to_slack.name
  event_bus_name = aws_cloudwatch_event_bus.this.name
  target_id      = "status-to-slack"
  arn            = aws_sqs_queue.slack_status.arn

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 10
  }

  dead_letter_config {
    arn = aws_sqs_queue.event_target_dlq.arn
  }
}

resource "aws_cloudwatch_event_rule" "priority_to_slack" {
  name           = local.names.priority_to_slack_rule
  description    = "Approvals, failures and rollbacks: show them in Slack at once, beside the routine events."
  event_bus_name = aws_cloudwatch_event_bus.this.name

  event_pattern = jsonencode({
    source        = ["wavepilot.migrations"]
    "detail-type" = local.slack_priority_detail_types
  })
}

resource "aws_cloudwatch_event_target" "slack_priority" {
  rule           = aws_cloudwatch_event_rule.priority_to_slack.name
  event_bus_name = aws_cloudwatch_event_bus.this.name
  target_id      = "priority-to-slack"
  arn            = aws_sqs_queue.slack_priority.arn

  sqs_target {
    message_group_id = "priority-events"
  }

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 10
  }

  dead_letter_config {
    arn = aws_sqs_queue.event_target_dlq.arn
  }
}

# Progress on GitHub (docs/ARCHITECTURE.md): the events that can change a migration's standing
# in its wave, to report_github_progress's FIFO queue (one group:
# naming.GITHUB_PROGRESS_MESSAGE_GROUP). Disabled unless var.github_progress names a repository.
resource "aws_cloudwatch_event_rule" "status_to_github" {
  name           = local.names.status_to_github_rule
  description    = "Requests, steps and ends of migrations: show each wave's progress on GitHub."
  event_bus_name = aws_cloudwatch_event_bus.this.name
  state          = local.github_progress_repository == "" ? "DISABLED" : "ENABLED"

  event_pattern = jsonencode({
    source        = ["wavepilot.migrations"]
    "detail-type" = local.github_progress_detail_types
  })
}

resource "aws_cloudwatch_event_target" "github_progress" {
  rule           = aws_cloudwatch_event_rule.status_to_github.name
  event_bus_name = aws_cloudwatch_event_bus.this.name
  target_id      = "status-to-github"
  arn            = aws_sqs_queue.github_progress.arn

  sqs_target {
    message_group_id = "github-progress"
  }

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 10
  }

  dead_letter_config {
    arn = aws_sqs_queue.event_target_dlq.arn
  }
}
