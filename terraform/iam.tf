# One role per Lambda function and one for the state machine. Every statement lists its
# actions by name (no "*" or "service:*"); resources are scoped to this project's resources
# except where the API has no resource-level permissions (Describe*/List calls, X-Ray).
locals {
  # What each function does, as statement names from local.lambda_statements. Each function is
  # granted exactly the actions its handler calls (tests/test_iam_calls.py records them end to
  # end and compares both ways) plus what AWS does with the role on its behalf (logs, X-Ray,
  # KMS, event source mappings, failed asynchronous invocations), each listed in that test with
  # its reason.
  lambda_capabilities = {
    # A cancel (publish --cancel-removed) rolls a migration back as an operator's rollback
    # does (stop its execution, start the rollback's) and takes the removed VM's server out of
    # MGN's application in its lane (target role) when nothing runs.
    ingress_handler = ["consume_requests", "dead_letter_requests", "idempotent_state", "put_events", "start_one_execution", "manage_executions", "assume_target_role", "kms_decrypt", "kms_generate_data_key"]
    start_migration = ["start_executions", "describe_executions", "state_read_update", "put_events", "kms_decrypt", "kms_generate_data_key"]
    # MGN, EC2 and IAM (instance profiles) are called in each migration's lane, through the
    # target role (terraform/modules/target-account holds those actions): the hub's roles
    # hold none of them, only sts:AssumeRole on roles of that name.
    validate_input    = ["assume_target_role", "report_steps", "wave_controls", "put_events", "kms_decrypt"]
    prepare_source    = ["assume_target_role", "report_steps", "put_events", "kms_decrypt"]
    trigger_migration = ["assume_target_role", "report_steps", "wave_controls", "wave_migrations", "put_events", "kms_decrypt"]
    verify_migration  = ["assume_target_role", "report_steps", "finalize_requests", "put_events", "kms_decrypt"]
    # Batched, the gate verifies the test launch first (target role, as verify_migration) and
    # hands back one it could not verify (SendTaskSuccess).
    request_approval = ["assume_target_role", "report_steps", "approval_gates", "answer_waiting_tasks", "put_events", "kms_decrypt"]
    finalize_cutover = ["assume_target_role", "report_steps", "put_events", "kms_decrypt"]
    callback_handler = ["state_read", "callback_secret", "kms_decrypt", "kms_generate_data_key"]
    rollback_handler = ["assume_target_role", "state_read_write", "put_events", "kms_decrypt"]
    # Batched launches: a request goes into the lane's ledger (a transaction) and claims the
    # lane's loop lease, starting the loop when none runs; the loop reads and writes the
    # ledger, starts MGN jobs in the lane (target role), reports and answers the executions,
    # and after its runs hands the lane over to a fresh execution of itself (StartExecution);
    # it reads a wave's migrations (gsi1) for cutovers that go after others (dependsOn).
    request_launch      = ["launch_requests", "wave_controls", "start_launch_coordinator", "kms_decrypt"]
    coordinate_launches = ["assume_target_role", "launch_ledger", "wave_controls", "wave_migrations", "answer_waiting_tasks", "start_launch_coordinator", "put_events", "kms_decrypt"]
    # Reads only: every lane's source servers' replication (through the target role), the
    # pending approvals (gsi1) and their migrations' cutover windows (GetItem). Its metrics go
    # to CloudWatch as EMF log lines.
    # Progress on GitHub: its queue (and its DLQ, for a body that is no status event), the
    # GitHub token, the wave's migrations (gsi1, then each event's migration read again:
    # GetItem) and what GitHub was last shown (its own items).
    report_github_progress = ["consume_github_progress", "dead_letter_github_progress", "github_token", "wave_migrations", "github_progress_state", "kms_decrypt", "kms_generate_data_key"]
    monitor_migrations     = ["assume_target_role", "pending_approvals", "state_read", "kms_decrypt"]
    slack_app              = ["slack_secrets", "bot_state", "put_events", "decide_approvals", "decide_approval_groups", "start_one_execution", "manage_executions", "invoke_self", "remind_owed_roots", "kms_decrypt", "kms_generate_data_key"]
    slack_notifier         = ["slack_token", "thread_state", "wave_threads", "consume_status", "dead_letter_status", "remind_owed_roots", "kms_decrypt", "kms_generate_data_key"]
  }

  lambda_statements = {
    consume_requests = {
      # The SQS event source mapping polls with the function's role.
      actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
      resources = [aws_sqs_queue.requests.arn]
    }
    dead_letter_requests = {
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.requests_dlq.arn]
    }
    # The state table. Only the bot (its status command, on the table and gsi1), the monitor
    # (pending approvals), a cutover with dependsOn and the launch coordinator (the wave's
    # migrations) query gsi1 (the coordinator also queries its lane's ledger).
    # state_read: the callback handler reads only for an event put before events carried their
    # routing (an EventBridge or Lambda retry across the deployment).
    state_read = {
      actions   = ["dynamodb:GetItem"]
      resources = [aws_dynamodb_table.state.arn]
    }
    wave_controls = {
      # A wave's pause or cancel (WAVECONTROL#<wave>), read before anything is launched in it.
      actions   = ["dynamodb:GetItem"]
      resources = [aws_dynamodb_table.state.arn]
    }
    finalize_requests = {
      # A finalizeAfter hold looks at its migration's record for an operator's "finalize now".
      actions   = ["dynamodb:GetItem"]
      resources = [aws_dynamodb_table.state.arn]
    }
    wave_migrations = {
      # A cutover whose application has dependsOn (per VM, or the batched design's launch
      # coordinator) reads the wave's migrations (WAVE#<wave>, a partition of gsi1) to see
      # whether the applications it goes after have cut over.
      actions   = ["dynamodb:Query"]
      resources = ["${aws_dynamodb_table.state.arn}/index/gsi1"]
    }
    pending_approvals = {
      # The approvals still PENDING: a sparse partition of gsi1 (APPROVALS#PENDING).
      actions   = ["dynamodb:Query"]
      resources = ["${aws_dynamodb_table.state.arn}/index/gsi1"]
    }
    report_steps = {
      # A step report is one conditional UpdateItem of the migration's record: it moves the
      # record, allocates the event's sequence and appends the step to the record's history.
      actions   = ["dynamodb:UpdateItem"]
      resources = [aws_dynamodb_table.state.arn]
    }
    approval_gates = {
      # A new approval gate's item (a conditional put).
      actions   = ["dynamodb:PutItem"]
      resources = [aws_dynamodb_table.state.arn]
    }
    state_read_update = {
      actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
      resources = [aws_dynamodb_table.state.arn]
    }
    state_read_write = {
      actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
      resources = [aws_dynamodb_table.state.arn]
    }
    thread_state = {
      # The notifier keeps each migration's Slack thread item (read, then conditional put)
      # and each wave's summary item, and reads the wave's recorded prediction (GetItem).
      actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
      resources = [aws_dynamodb_table.state.arn]
    }
    wave_threads = {
      # One Query on gsi1, never on the table: a wave's summary recounts the wave's thread
      # items (SLACKTHREADS#<wave>), and a group approval message counts its group's VMs
      # once from the wave's migrations (WAVE#<wave>, bot/group_approvals.py).
      actions   = ["dynamodb:Query"]
      resources = ["${aws_dynamodb_table.state.arn}/index/gsi1"]
    }
    idempotent_state = {
      # Powertools idempotency records live in the state table: read back after a lost
      # conditional put, deleted when processing raises.
      actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
      resources = [aws_dynamodb_table.state.arn]
    }
    put_events = {
      actions   = ["events:PutEvents"]
      resources = [aws_cloudwatch_event_bus.this.arn]
    }
    kms_decrypt = {
      # Environment variables, the table, the secrets and the queues are encrypted with the key.
      actions   = ["kms:Decrypt"]
      resources = [aws_kms_key.this.arn]
    }
    kms_generate_data_key = {
      # Sending to a queue encrypted with the key (a dead-letter queue).
      actions   = ["kms:GenerateDataKey"]
      resources = [aws_kms_key.this.arn]
    }
    launch_requests = {
      # TransactWriteItems is authorized per item: a condition on the answered outcome, the
      # request's put; the lease's update; its delete only when the loop could not start.
      actions   = ["dynamodb:ConditionCheckItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
      resources = [aws_dynamodb_table.state.arn]
    }
    start_launch_coordinator = {
      actions   = ["states:StartExecution"]
      resources = [local.launch_coordinator_arn]
    }
    launch_ledger = {
      # The lane's partition in one Query per run; intents, outcomes, the outbox and the lease
      # (transactions authorized per item), and the status events' records.
      actions   = ["dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
      resources = [aws_dynamodb_table.state.arn]
    }
    answer_waiting_tasks = {
      # The coordinator's launch outcomes; the approval gate handing back a test launch it
      # could not verify. SendTaskSuccess takes a task token: no resource-level permissions.
      actions   = ["states:SendTaskSuccess"]
      resources = ["*"]
    }
    start_executions = {
      actions   = ["states:StartExecution", "states:ListExecutions"]
      resources = [local.state_machine_arn]
    }
    callback_secret = {
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [aws_secretsmanager_secret.callback_signing.arn]
    }
    assume_target_role = {
      # The target role in any account: lanes are named by the manifests (a wave's
      # target.accountId), and each account's role trusts only these roles (its trust policy).
      actions   = ["sts:AssumeRole"]
      resources = ["arn:${data.aws_partition.current.partition}:iam::*:role/${local.names.target_role}"]
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
    decide_approval_groups = {
      # A group decision (Approve all ready) decides its VMs together: the approvals' tokens
      # and their records' sequence numbers read in one call, decided in one transaction
      # (authorized as its UpdateItems: bot_state), their audit entries written in batches
      # (ApprovalService.decide_group).
      actions   = ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"]
      resources = [aws_dynamodb_table.state.arn]
    }
    decide_approvals = {
      # SendTask* take a task token and support no resource-level permissions. Only the Slack
      # app (and the CLI, with its operator's own credentials) decides approvals.
      actions   = ["states:SendTaskSuccess", "states:SendTaskFailure"]
      resources = ["*"]
    }
    start_one_execution = {
      # An operator's rollback (or a VM's removal from the manifests) starts the rollback
      # execution.
      actions   = ["states:StartExecution"]
      resources = [local.state_machine_arn]
    }
    describe_executions = {
      # A new revision looks at the migration's last execution (still running: it waits).
      actions   = ["states:DescribeExecution"]
      resources = ["arn:${data.aws_partition.current.partition}:states:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:execution:${local.names.state_machine}:*"]
    }
    manage_executions = {
      actions   = ["states:DescribeExecution", "states:StopExecution"]
      resources = ["arn:${data.aws_partition.current.partition}:states:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:execution:${local.names.state_machine}:*"]
    }
    invoke_self = {
      # Bolt's lazy listeners: the app invokes itself asynchronously (by ARN, built here to
      # avoid a cycle between the function and its role's policy). Bolt's Lambda adapter calls
      # lambda:Invoke only (no GetFunction).
      actions = ["lambda:InvokeFunction"]
      resources = [
        local.slack_app_arn,
        "${local.slack_app_arn}:*",
      ]
    }
    consume_status = {
      # The SQS event source mapping polls with the function's role.
      actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
      resources = [aws_sqs_queue.slack_status.arn, aws_sqs_queue.slack_priority.arn]
    }
    dead_letter_status = {
      # A body that is no status event goes straight to its queue's DLQ with its reason.
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.slack_status_dlq.arn, aws_sqs_queue.slack_priority_dlq.arn]
    }
    consume_github_progress = {
      # The SQS event source mapping polls with the function's role.
      actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
      resources = [aws_sqs_queue.github_progress.arn]
    }
    dead_letter_github_progress = {
      # A body that is no status event goes straight to the DLQ with its reason.
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.github_progress_dlq.arn]
    }
    github_token = {
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [aws_secretsmanager_secret.github_token.arn]
    }
    github_progress_state = {
      # Each event's migration (a consistent GetItem: gsi1 lags) and each wave's
      # WAVEDEPLOYMENT#<wave> items (read, then put).
      actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
      resources = [aws_dynamodb_table.state.arn]
    }
    remind_owed_roots = {
      # Thread roots not yet shown: the notifier reminds its own queue (bot/owed_roots.py);
      # the Slack app asks it the same way to show a wave's pause or cancel in its summary.
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.slack_status.arn]
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

# The launch coordinator loop may invoke its one function, and log and trace as the other.
resource "aws_iam_role" "launch_coordinator" {
  name               = local.names.launch_coordinator_role
  assume_role_policy = data.aws_iam_policy_document.states_trust.json
}

data "aws_iam_policy_document" "launch_coordinator" {
  statement {
    sid     = "InvokeCoordinator"
    actions = ["lambda:InvokeFunction"]
    resources = [
      aws_lambda_function.this["coordinate_launches"].arn,
      "${aws_lambda_function.this["coordinate_launches"].arn}:*",
    ]
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

resource "aws_iam_role_policy" "launch_coordinator" {
  name   = "least-privilege"
  role   = aws_iam_role.launch_coordinator.id
  policy = data.aws_iam_policy_document.launch_coordinator.json
}
