# Functions on a schedule (orchestration.naming.SCHEDULED_FUNCTIONS): the monitor that puts the
# metrics the replication-lag and approval-waiting alarms watch (monitoring.tf).
#
# An EventBridge rule with a schedule expression on the default bus, like the other rules
# (eventbridge.tf): EventBridge invokes through the function's resource policy (the permission
# below, scoped to this rule), so no role is needed; EventBridge Scheduler would add a role and
# a schedule group for one fixed rate, and its time zones and one-off schedules are not needed.
# The embedded runtime has no schedules (moto does not fire them): tests invoke the function.
locals {
  monitor_schedule = "rate(5 minutes)"
}

resource "aws_cloudwatch_event_rule" "monitor_migrations" {
  name                = local.lambda_functions.monitor_migrations.name
  description         = "Every 5 minutes: replication lag, stalled servers and pending approvals as metrics."
  schedule_expression = local.monitor_schedule
}

resource "aws_cloudwatch_event_target" "monitor_migrations" {
  rule      = aws_cloudwatch_event_rule.monitor_migrations.name
  target_id = "monitor-migrations"
  arn       = aws_lambda_function.this["monitor_migrations"].arn

  # A run is superseded by the next one 5 minutes later: no point delivering an older one.
  retry_policy {
    maximum_event_age_in_seconds = 300
    maximum_retry_attempts       = 2
  }

  dead_letter_config {
    arn = aws_sqs_queue.event_target_dlq.arn
  }
}

resource "aws_lambda_permission" "events_monitor_migrations" {
  statement_id  = "AllowMonitorSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["monitor_migrations"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.monitor_migrations.arn
}

# EventBridge invokes asynchronously. A failed run is not retried (the next one comes within 5
# minutes, and the function's error-rate alarm reports failures), so it needs no on-failure
# destination, and its role no sqs:SendMessage.
resource "aws_lambda_function_event_invoke_config" "monitor_migrations" {
  function_name                = aws_lambda_function.this["monitor_migrations"].function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 300
}
