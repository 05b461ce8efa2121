# Alarms and the dashboard. Metrics: AWS/Lambda, AWS/SQS, AWS/States, and what the handlers emit
# through Powertools (orchestration/observability.py count() and gauge()): namespace "Wavepilot",
# dimension service = var.project_name (POWERTOOLS_SERVICE_NAME).
locals {
  metrics_namespace  = "Wavepilot"
  metrics_dimensions = { service = var.project_name }
  dashboard_name     = "${local.name_prefix}-migrations"

  dead_letter_queues = {
    requests       = aws_sqs_queue.requests_dlq.name
    events         = aws_sqs_queue.event_target_dlq.name
    slack_status   = aws_sqs_queue.slack_status_dlq.name
    slack_priority = aws_sqs_queue.slack_priority_dlq.name
    # The wave progress reports GitHub refused five times (docs/RUNBOOK.md).
    github_progress = aws_sqs_queue.github_progress_dlq.name
  }
}

resource "aws_sns_topic" "alarms" {
  name              = "${local.name_prefix}-alarms"
  kms_master_key_id = aws_kms_key.this.arn
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# DLQ depth > 5, per dead-letter queue.
resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  for_each = local.dead_letter_queues

  alarm_name          = "${local.name_prefix}-${replace(each.key, "_", "-")}-dlq-depth"
  alarm_description   = "More than 5 messages in ${each.value}: inspect and redrive them (docs/RUNBOOK.md, DLQ messages)."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 5
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# Error rate > 1%, per function (metric math: an alarm takes at most 10 metrics, so one each).
resource "aws_cloudwatch_metric_alarm" "lambda_error_rate" {
  for_each = local.lambda_functions

  alarm_name          = "${each.value.name}-error-rate"
  alarm_description   = "More than 1% of ${each.value.name} invocations failed over 15 minutes."
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  threshold           = 1
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id          = "error_rate"
    expression  = "IF(invocations > 0, 100 * errors / invocations, 0)"
    label       = "Error rate (%)"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Errors"
      dimensions  = { FunctionName = each.value.name }
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id = "invocations"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Invocations"
      dimensions  = { FunctionName = each.value.name }
      stat        = "Sum"
      period      = 300
    }
  }
}

# Step Functions failures > 2 per hour.
resource "aws_cloudwatch_metric_alarm" "state_machine_failures" {
  alarm_name          = "${local.names.state_machine}-executions-failed"
  alarm_description   = "More than 2 migration executions failed in an hour (each one rolled back): docs/RUNBOOK.md."
  namespace           = "AWS/States"
  metric_name         = "ExecutionsFailed"
  dimensions          = { StateMachineArn = aws_sfn_state_machine.this.arn }
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = 2
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# Replication lag > 10 minutes. MGN publishes no CloudWatch metric for it: the scheduled
# monitor_migrations function (schedules.tf, every 5 minutes) puts "ReplicationLagSeconds", the
# largest dataReplicationInfo.lagDuration over the source servers still replicating (not
# archived, not cut over or disconnected). Two 5-minute periods above 10 minutes alarm; with no
# server replicating it puts 0. The replication_stalled alarm below is MGN's own event.
resource "aws_cloudwatch_metric_alarm" "replication_lag" {
  alarm_name          = "${local.name_prefix}-replication-lag"
  alarm_description   = "A source server's replication lag stayed above 10 minutes (metric ReplicationLagSeconds from monitor_migrations): docs/RUNBOOK.md, replication lag."
  namespace           = local.metrics_namespace
  metric_name         = "ReplicationLagSeconds"
  dimensions          = local.metrics_dimensions
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  threshold           = 600
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# Per lane (target account/Region, var.target_lanes): the same lag alarm, and one for a lane
# monitor_migrations cannot read (its target role cannot be assumed, or MGN is not initialized
# there): metrics with a "Lane" dimension ("account/region").
resource "aws_cloudwatch_metric_alarm" "lane_replication_lag" {
  for_each = toset(local.target_lanes)

  alarm_name          = "${local.name_prefix}-replication-lag-${replace(each.key, "/", "-")}"
  alarm_description   = "Replication lag in lane ${each.key} stayed above 10 minutes: docs/RUNBOOK.md, replication lag."
  namespace           = local.metrics_namespace
  metric_name         = "ReplicationLagSeconds"
  dimensions          = merge(local.metrics_dimensions, { Lane = each.key })
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  threshold           = 600
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "lane_unreachable" {
  for_each = toset(local.target_lanes)

  alarm_name          = "${local.name_prefix}-lane-unreachable-${replace(each.key, "/", "-")}"
  alarm_description   = "monitor_migrations cannot use lane ${each.key} (target role not assumable, or MGN not initialized): docs/RUNBOOK.md, a lane fails."
  namespace           = local.metrics_namespace
  metric_name         = "LaneUnreachable"
  dimensions          = merge(local.metrics_dimensions, { Lane = each.key })
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# MGN's own event when a server's data replication stalls (default bus); monitor_migrations
# also counts stalled servers (ReplicationStalledServers, on the dashboard).
resource "aws_cloudwatch_event_rule" "replication_stalled" {
  name        = "${local.name_prefix}-mgn-replication-stalled"
  description = "MGN reports a source server's data replication stalled."

  event_pattern = jsonencode({
    source        = ["aws.mgn"]
    "detail-type" = ["MGN Source Server Data Replication Stalled Change"]
    detail        = { state = ["STALLED"] }
  })
}

resource "aws_cloudwatch_metric_alarm" "replication_stalled" {
  alarm_name          = "${local.name_prefix}-replication-stalled"
  alarm_description   = "MGN reported a stalled data replication (lag grows without bound): docs/RUNBOOK.md, replication lag."
  namespace           = "AWS/Events"
  metric_name         = "TriggeredRules"
  dimensions          = { RuleName = aws_cloudwatch_event_rule.replication_stalled.name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

# Approvals waiting longer than allowed: the approval gate times out after
# timings.approval_timeout_seconds, and the execution rolls back (ApprovalExpired). Step
# Functions logs that TaskTimedOut at level ERROR. With launch.design = "batched" the launch
# requests (RequestTestLaunch, RequestCutover) wait on a task token too, and one the lane's
# coordinator did not answer in time is logged the same way (no field tells them apart): the
# figure then counts those as well, each a rollback someone should look at. So does a parked
# migration (onFailure: park) that nobody retried or rolled back within its parkFor
# (AwaitParkDecision): a decision nobody made in time, the same kind of news.
resource "aws_cloudwatch_log_metric_filter" "approvals_expired" {
  name           = "${local.name_prefix}-approvals-expired"
  log_group_name = aws_cloudwatch_log_group.state_machine.name
  pattern        = "{ $.type = \"TaskTimedOut\" }"

  metric_transformation {
    name          = "ApprovalsExpired"
    namespace     = local.metrics_namespace
    value         = "1"
    default_value = "0"
  }
}

resource "aws_cloudwatch_metric_alarm" "approvals_expired" {
  alarm_name          = "${local.name_prefix}-approvals-expired"
  alarm_description   = "An approval gate expired without a decision and its migration rolled back: docs/RUNBOOK.md, an approval nobody answers."
  namespace           = local.metrics_namespace
  metric_name         = aws_cloudwatch_log_metric_filter.approvals_expired.metric_transformation[0].name
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

# The warning before expiry: the age of the oldest pending approval, "OldestPendingApprovalSeconds",
# put every 5 minutes by monitor_migrations (schedules.tf) from the table's pending approvals (a
# sparse gsi1 partition, queried, never scanned); 0 when none waits.
resource "aws_cloudwatch_metric_alarm" "approval_waiting" {
  alarm_name          = "${local.name_prefix}-approval-waiting"
  alarm_description   = "An approval has waited more than var.approval_alarm_hours (metric OldestPendingApprovalSeconds): docs/RUNBOOK.md, an approval nobody answers."
  namespace           = local.metrics_namespace
  metric_name         = "OldestPendingApprovalSeconds"
  dimensions          = local.metrics_dimensions
  statistic           = "Maximum"
  period              = 900
  evaluation_periods  = 1
  threshold           = var.approval_alarm_hours * 3600
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = local.dashboard_name
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 8, height = 6
        properties = {
          title  = "Migration success rate (%)"
          region = var.aws_region
          view   = "timeSeries"
          period = 3600
          yAxis  = { left = { min = 0, max = 100 } }
          metrics = [
            [{ expression = "IF(succeeded + failed + timedout + aborted > 0, 100 * succeeded / (succeeded + failed + timedout + aborted), 100)", label = "Success rate", id = "rate" }],
            ["AWS/States", "ExecutionsSucceeded", "StateMachineArn", aws_sfn_state_machine.this.arn, { id = "succeeded", stat = "Sum", visible = false }],
            ["AWS/States", "ExecutionsFailed", "StateMachineArn", aws_sfn_state_machine.this.arn, { id = "failed", stat = "Sum", visible = false }],
            ["AWS/States", "ExecutionsTimedOut", "StateMachineArn", aws_sfn_state_machine.this.arn, { id = "timedout", stat = "Sum", visible = false }],
            ["AWS/States", "ExecutionsAborted", "StateMachineArn", aws_sfn_state_machine.this.arn, { id = "aborted", stat = "Sum", visible = false }],
          ]
        }
      },
      {
        type = "metric", x = 8, y = 0, width = 8, height = 6
        properties = {
          title  = "Migration duration (execution time)"
          region = var.aws_region
          view   = "timeSeries"
          period = 3600
          metrics = [
            ["AWS/States", "ExecutionTime", "StateMachineArn", aws_sfn_state_machine.this.arn, { stat = "Average", label = "average (ms)" }],
            ["AWS/States", "ExecutionTime", "StateMachineArn", aws_sfn_state_machine.this.arn, { stat = "p90", label = "p90 (ms)" }],
          ]
        }
      },
      {
        type = "metric", x = 16, y = 0, width = 8, height = 6
        properties = {
          title  = "Throughput"
          region = var.aws_region
          view   = "timeSeries"
          period = 300
          stat   = "Sum"
          metrics = [
            [local.metrics_namespace, "RecordsReceived", "service", var.project_name],
            [local.metrics_namespace, "RequestsAccepted", "service", var.project_name],
            [local.metrics_namespace, "RequestsRepeated", "service", var.project_name],
            [local.metrics_namespace, "ExecutionsStarted", "service", var.project_name],
            ["AWS/States", "ExecutionsSucceeded", "StateMachineArn", aws_sfn_state_machine.this.arn],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title  = "Errors by type"
          region = var.aws_region
          view   = "timeSeries"
          period = 300
          stat   = "Sum"
          metrics = [
            [local.metrics_namespace, "RequestsRejected", "service", var.project_name, { label = "requests rejected (dead-lettered)" }],
            [local.metrics_namespace, "CallbacksFailed", "service", var.project_name, { label = "callbacks failed" }],
            [local.metrics_namespace, "CallbacksRefused", "service", var.project_name, { label = "callbacks refused" }],
            [local.metrics_namespace, "ApprovalsExpired", { label = "approvals expired" }],
            ["AWS/States", "ExecutionsFailed", "StateMachineArn", aws_sfn_state_machine.this.arn, { label = "executions failed" }],
            ["AWS/States", "ExecutionsTimedOut", "StateMachineArn", aws_sfn_state_machine.this.arn, { label = "executions timed out" }],
          ]
        }
      },
      {
        type = "log", x = 12, y = 6, width = 12, height = 6
        properties = {
          title  = "Errors and warnings by message (Lambda logs)"
          region = var.aws_region
          view   = "table"
          query  = "SOURCE ${join(" | SOURCE ", [for group in aws_cloudwatch_log_group.lambda : "'${group.name}'"])} | filter level = 'ERROR' or level = 'WARNING' | stats count(*) as occurrences by level, message | sort occurrences desc | limit 20"
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 8, height = 6
        properties = {
          title  = "Replication lag (s)"
          region = var.aws_region
          view   = "timeSeries"
          period = 300
          metrics = [
            [local.metrics_namespace, "ReplicationLagSeconds", "service", var.project_name, { stat = "Maximum", label = "max lag (monitor_migrations)" }],
            [local.metrics_namespace, "ReplicationStalledServers", "service", var.project_name, { stat = "Maximum", label = "stalled servers", yAxis = "right" }],
            ["AWS/Events", "TriggeredRules", "RuleName", aws_cloudwatch_event_rule.replication_stalled.name, { stat = "Sum", label = "MGN replication stalled events" }],
          ]
          annotations = { horizontal = [{ label = "10 min", value = 600 }] }
        }
      },
      {
        type = "metric", x = 0, y = 18, width = 24, height = 6
        properties = {
          title  = "Lanes (target account/Region): replication lag (s) and unreachable"
          region = var.aws_region
          view   = "timeSeries"
          period = 300
          metrics = [
            [{ expression = "SEARCH('{${local.metrics_namespace},Lane,service} MetricName=\"ReplicationLagSeconds\"', 'Maximum', 300)", id = "lag", label = "" }],
            [{ expression = "SEARCH('{${local.metrics_namespace},Lane,service} MetricName=\"LaneUnreachable\"', 'Maximum', 300)", id = "unreachable", label = "unreachable", yAxis = "right" }],
          ]
          annotations = { horizontal = [{ label = "10 min", value = 600 }] }
        }
      },
      {
        type = "metric", x = 8, y = 12, width = 8, height = 6
        properties = {
          title  = "Dead-letter queue depth"
          region = var.aws_region
          view   = "timeSeries"
          period = 300
          stat   = "Maximum"
          metrics = [
            for queue in values(local.dead_letter_queues) : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue]
          ]
          annotations = { horizontal = [{ label = "alarm", value = 5 }] }
        }
      },
      {
        type = "metric", x = 16, y = 12, width = 8, height = 6
        properties = {
          title  = "Lambda errors and throttles"
          region = var.aws_region
          view   = "timeSeries"
          period = 300
          stat   = "Sum"
          metrics = concat(
            [for function in values(local.lambda_functions) : ["AWS/Lambda", "Errors", "FunctionName", function.name]],
            [for function in values(local.lambda_functions) : ["AWS/Lambda", "Throttles", "FunctionName", function.name]],
          )
        }
      },
    ]
  })
}
