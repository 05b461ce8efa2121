# The request queue (GitHub Actions sends migration requests to it) and its dead-letter queue;
# the same settings as orchestration/local/provision.py.
resource "aws_sqs_queue" "requests_dlq" {
  name                              = local.names.request_dead_letter_queue
  message_retention_seconds         = 1209600
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue" "requests" {
  name                              = local.names.request_queue
  visibility_timeout_seconds        = 60
  message_retention_seconds         = 345600
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.requests_dlq.arn
    maxReceiveCount     = 5
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "requests_dlq" {
  queue_url = aws_sqs_queue.requests_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.requests.arn]
  })
}

# Events EventBridge could not deliver to a Lambda target, and async invocations that failed.
resource "aws_sqs_queue" "event_target_dlq" {
  name                              = local.names.event_target_dead_letter_queue
  message_retention_seconds         = 1209600
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue_policy" "event_target_dlq" {
  queue_url = aws_sqs_queue.event_target_dlq.id
  policy    = data.aws_iam_policy_document.event_target_dlq.json
}

data "aws_iam_policy_document" "event_target_dlq" {
  statement {
    sid = "EventBridgeRules"
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.event_target_dlq.arn]
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values = [
        aws_cloudwatch_event_rule.migration_requested.arn,
        aws_cloudwatch_event_rule.status_callbacks.arn,
        aws_cloudwatch_event_rule.status_to_slack.arn,
        aws_cloudwatch_event_rule.priority_to_slack.arn,
        aws_cloudwatch_event_rule.monitor_migrations.arn,
        aws_cloudwatch_event_rule.status_to_github.arn,
      ]
    }
  }
}

# Routine status events on their way to the Slack bot: a standard queue, read in batches
# filled within a batching window (lambda.tf). Not FIFO: EventBridge gives a FIFO target one
# fixed message group, so a FIFO status queue was read one small batch at a time (FIFO has no
# batching window) and a handled message not yet deleted held every migration's events. The
# bot orders each migration's events by their sequence and drops what is older than its
# thread (and duplicates: a standard queue delivers at least once).
resource "aws_sqs_queue" "slack_status_dlq" {
  name                              = local.names.slack_status_dead_letter_queue
  message_retention_seconds         = 1209600
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue" "slack_status" {
  name = local.names.slack_status_queue
  # Six times the notifier's timeout, as AWS recommends for a Lambda event source.
  visibility_timeout_seconds        = 6 * local.lambda_functions.slack_notifier.timeout
  message_retention_seconds         = 345600
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.slack_status_dlq.arn
    maxReceiveCount     = local.slack_max_receives
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "slack_status_dlq" {
  queue_url = aws_sqs_queue.slack_status_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.slack_status.arn]
  })
}

resource "aws_sqs_queue_policy" "slack_status" {
  queue_url = aws_sqs_queue.slack_status.id
  policy    = data.aws_iam_policy_document.slack_status.json
}

data "aws_iam_policy_document" "slack_status" {
  statement {
    sid = "StatusToSlackRule"
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.slack_status.arn]
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.status_to_slack.arn]
    }
  }
}

# What a person must act on or know at once (local.slack_priority_detail_types), on its way to
# the Slack bot beside the status queue: FIFO with one group of its own (in order among
# themselves, one batch at a time), the same settings and redrive as the status queue.
resource "aws_sqs_queue" "slack_priority_dlq" {
  name                              = local.names.slack_priority_dead_letter_queue
  fifo_queue                        = true
  content_based_deduplication       = true
  message_retention_seconds         = 1209600
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue" "slack_priority" {
  name                              = local.names.slack_priority_queue
  fifo_queue                        = true
  content_based_deduplication       = true
  visibility_timeout_seconds        = 6 * local.lambda_functions.slack_notifier.timeout
  message_retention_seconds         = 345600
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.slack_priority_dlq.arn
    maxReceiveCount     = local.slack_max_receives
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "slack_priority_dlq" {
  queue_url = aws_sqs_queue.slack_priority_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.slack_priority.arn]
  })
}

resource "aws_sqs_queue_policy" "slack_priority" {
  queue_url = aws_sqs_queue.slack_priority.id
  policy    = data.aws_iam_policy_document.slack_priority.json
}

data "aws_iam_policy_document" "slack_priority" {
  statement {
    sid = "PriorityToSlackRule"
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.slack_priority.arn]
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.priority_to_slack.arn]
    }
  }
}

# Status events on their way to report_github_progress: FIFO with one message group, so one
# batch at a time (two batches never race to create a wave's deployment); the same settings
# and redrive as the Slack queues.
resource "aws_sqs_queue" "github_progress_dlq" {
  name                              = local.names.github_progress_dead_letter_queue
  fifo_queue                        = true
  content_based_deduplication       = true
  message_retention_seconds         = 1209600
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue" "github_progress" {
  name                        = local.names.github_progress_queue
  fifo_queue                  = true
  content_based_deduplication = true
  # Six times the function's timeout, as AWS recommends for a Lambda event source.
  visibility_timeout_seconds        = 6 * local.lambda_functions.report_github_progress.timeout
  message_retention_seconds         = 345600
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.github_progress_dlq.arn
    maxReceiveCount     = 5
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "github_progress_dlq" {
  queue_url = aws_sqs_queue.github_progress_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.github_progress.arn]
  })
}

resource "aws_sqs_queue_policy" "github_progress" {
  queue_url = aws_sqs_queue.github_progress.id
  policy    = data.aws_iam_policy_document.github_progress.json
}

data "aws_iam_policy_document" "github_progress" {
  statement {
    sid = "StatusToGitHubRule"
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.github_progress.arn]
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.status_to_github.arn]
    }
  }
}
