# One role per Lambda function and one for the state machine. Every statement lists its
# actions by name (no "*" or "service:*"); resources are scoped to this project's resources
# except where the API has no resource-level permissions (Describe*/List calls, X-Ray).
locals {
  # What each function does, as statement names from local.lambda_statements.
  lambda_capabilities = {
    ingress_handler   = ["consume_requests", "dead_letter_requests", "state_read_write", "put_events", "kms_use"]
    start_migration   = ["start_executions", "state_read_write", "put_events", "kms_use"]
    validate_input    = ["mgn_read", "ec2_read", "state_read_write", "put_events", "kms_use"]
    prepare_source    = ["mgn_read", "mgn_prepare", "ec2_read", "ec2_launch_templates", "state_read_write", "put_events", "kms_use"]
    trigger_migration = ["mgn_read", "mgn_launch", "ec2_read", "state_read_write", "put_events", "kms_use"]
    verify_migration  = ["mgn_read", "ec2_read", "state_read_write", "put_events", "kms_use"]
    request_approval  = ["task_tokens", "state_read_write", "put_events", "kms_use"]
    finalize_cutover  = ["mgn_read", "mgn_finalize", "ec2_read", "state_read_write", "put_events", "kms_use"]
    callback_handler  = ["state_read_write", "callback_secret", "kms_use"]
    rollback_handler  = ["mgn_read", "mgn_rollback", "ec2_read", "task_tokens", "state_read_write", "put_events", "kms_use"]
    slack_app         = ["slack_secrets", "bot_state", "put_events", "decide_approvals", "start_one_execution", "manage_executions", "invoke_self", "kms_decrypt"]
    slack_notifier    = ["slack_token", "bot_state", "consume_status", "dead_letter_status", "kms_decrypt_and_generate"]
  }

  lambda_statements = {
    consume_requests = {
      actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
      resources = [aws_sqs_queue.requests.arn]
    }
    dead_letter_requests = {
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.requests_dlq.arn]
    }
    state_read_write = {
      actions = [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:ConditionCheckItem",
        "dynamodb:TransactWriteItems",
      ]
      resources = [aws_dynamodb_table.state.arn, "${aws_dynamodb_table.state.arn}/index/gsi1"]
    }
    put_events = {
      actions   = ["events:PutEvents"]
      resources = [aws_cloudwatch_event_bus.this.arn]
    }
    kms_use = {
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
      resources = [aws_kms_key.this.arn]
    }
    start_executions = {
      actions   = ["states:StartExecution", "states:ListExecutions"]
      resources = [local.state_machine_arn]
    }
    task_tokens = {
      # SendTask* take a task token and support no resource-level permissions.
      actions   = ["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"]
      resources = ["*"]
    }
    callback_secret = {
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [aws_secretsmanager_secret.callback_signing.arn]
    }
    mgn_read = {
      actions   = ["mgn:DescribeSourceServers", "mgn:DescribeJobs", "mgn:GetLaunchConfiguration"]
      resources = ["*"]
    }
    mgn_prepare = {
      actions   = ["mgn:UpdateLaunchConfiguration", "mgn:ChangeServerLifeCycleState"]
      resources = ["*"]
    }
    mgn_launch = {
      actions   = ["mgn:StartTest", "mgn:StartCutover"]
      resources = ["*"]
    }
    mgn_finalize = {
      actions   = ["mgn:FinalizeCutover"]
      resources = ["*"]
    }
    mgn_rollback = {
      actions   = ["mgn:TerminateTargetInstances", "mgn:ChangeServerLifeCycleState"]
      resources = ["*"]
    }
    ec2_read = {
      # EC2 Describe* calls support no resource-level permissions.
      actions = [
        "ec2:DescribeInstances",
        "ec2:DescribeInstanceStatus",
        "ec2:DescribeInstanceTypeOfferings",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "iam:GetInstanceProfile",
      ]
      resources = ["*"]
    }
    # The Slack bot (bot/): its secrets, its records, and what its commands and buttons do.
    slack_secrets = {
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [aws_secretsmanager_secret.slack_bot_token.arn, aws_secretsmanager_secret.slack_signing.arn]
    }
    slack_token = {
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [aws_secretsmanager_secret.slack_bot_token.arn]
    }
    bot_state = {
      actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"]
      resources = [aws_dynamodb_table.state.arn, "${aws_dynamodb_table.state.arn}/index/gsi1"]
    }
    decide_approvals = {
      # SendTask* take a task token and support no resource-level permissions.
      actions   = ["states:SendTaskSuccess", "states:SendTaskFailure"]
      resources = ["*"]
    }
    start_one_execution = {
      actions   = ["states:StartExecution"]
      resources = [local.state_machine_arn]
    }
    manage_executions = {
      actions   = ["states:DescribeExecution", "states:StopExecution"]
      resources = ["arn:${data.aws_partition.current.partition}:states:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:execution:${local.names.state_machine}:*"]
    }
    invoke_self = {
      # Bolt's lazy listeners: the app invokes itself asynchronously (by name, built here to
      # avoid a cycle between the function and its role's policy).
      actions = ["lambda:InvokeFunction", "lambda:GetFunction"]
      resources = [
        local.slack_app_arn,
        "${local.slack_app_arn}:*",
      ]
    }
    consume_status = {
      actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
      resources = [aws_sqs_queue.slack_status.arn]
    }
    dead_letter_status = {
      # A body that is no status event goes straight to the status DLQ with its reason.
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.slack_status_dlq.arn]
    }
    kms_decrypt = {
      actions   = ["kms:Decrypt"]
      resources = [aws_kms_key.this.arn]
    }
    kms_decrypt_and_generate = {
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [aws_kms_key.this.arn]
    }
    ec2_launch_templates = {
      actions   = ["ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate"]
      resources = ["arn:${data.aws_partition.current.partition}:ec2:${coalesce(var.mgn_region, var.aws_region)}:${data.aws_caller_identity.current.account_id}:launch-template/*"]
    }
  }
}

data "aws_iam_policy_document" "lambda_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "lambda" {
  for_each = local.lambda_functions

  name               = "${local.names.lambda_role}-${replace(each.key, "_", "-")}"
  description        = "Wavepilot ${each.key} Lambda function"
  assume_role_policy = data.aws_iam_policy_document.lambda_trust.json
}

data "aws_iam_policy_document" "lambda" {
  for_each = local.lambda_functions

  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda[each.key].arn}:*"]
  }

  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = { for name in local.lambda_capabilities[each.key] : name => local.lambda_statements[name] }
    content {
      sid       = replace(title(replace(statement.key, "_", " ")), " ", "")
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }

  # Failed asynchronous invocations go to the event target dead-letter queue.
  dynamic "statement" {
    for_each = contains(local.async_functions, each.key) ? [1] : []
    content {
      sid       = "AsyncFailures"
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.event_target_dlq.arn]
    }
  }
}

resource "aws_iam_role_policy" "lambda" {
  for_each = local.lambda_functions

  name   = "least-privilege"
  role   = aws_iam_role.lambda[each.key].id
  policy = data.aws_iam_policy_document.lambda[each.key].json
}

# Private deployment only: the network interfaces Lambda creates in the private subnets.
resource "aws_iam_role_policy_attachment" "lambda_vpc" {
  for_each = { for key, function in local.lambda_functions : key => function if var.private_deployment }

  role       = aws_iam_role.lambda[each.key].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

# The state machine: invokes the pipeline functions and nothing else.
data "aws_iam_policy_document" "states_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "state_machine" {
  name               = local.names.state_machine_role
  description        = "Wavepilot migration state machine"
  assume_role_policy = data.aws_iam_policy_document.states_trust.json
}

data "aws_iam_policy_document" "state_machine" {
  statement {
    sid     = "InvokePipelineFunctions"
    actions = ["lambda:InvokeFunction"]
    resources = flatten([
      for function in local.pipeline_functions : [
        aws_lambda_function.this[function].arn,
        "${aws_lambda_function.this[function].arn}:*",
      ]
    ])
  }

  # Log delivery and X-Ray have no resource-level permissions.
  statement {
    sid = "ExecutionLogs"
    actions = [
      "logs:CreateLogDelivery",
      "logs:GetLogDelivery",
      "logs:UpdateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries",
      "logs:PutResourcePolicy",
      "logs:DescribeResourcePolicies",
      "logs:DescribeLogGroups",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "state_machine" {
  name   = "least-privilege"
  role   = aws_iam_role.state_machine.id
  policy = data.aws_iam_policy_document.state_machine.json
}
