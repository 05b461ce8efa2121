# Resource names, built exactly as orchestration/naming.py (ResourceNames) builds them; a test
# (tests/test_terraform.py) checks the two agree.
locals {
  name_prefix = "${var.project_name}-${var.environment}"

  names = {
    request_queue             = "${local.name_prefix}-requests"
    request_dead_letter_queue = "${local.name_prefix}-requests-dlq"
    event_bus                 = "${local.name_prefix}-bus"
    state_table               = "${local.name_prefix}-state"
    state_machine             = "${local.name_prefix}-migration"
    lambda_role               = "${local.name_prefix}-lambda"
    state_machine_role        = "${local.name_prefix}-states"
    # Batched launches: the lane's coordinator loop (a second state machine) and its role.
    launch_coordinator      = "${local.name_prefix}-launch-coordinator"
    launch_coordinator_role = "${local.name_prefix}-launch-coordinator"
    # The role in every target account (terraform/modules/target-account creates it).
    target_role = "${local.name_prefix}-target"
    # The read-only role in a target account that the pull request's plan reads MGN's grouping
    # through (the module creates it given output manifest_plan_role_arn; github_oidc.tf).
    grouping_reader_role     = "${local.name_prefix}-grouping-reader"
    migration_requested_rule = "${local.name_prefix}-migration-requested"
    status_callbacks_rule    = "${local.name_prefix}-status-callbacks"
    # AWS-only resources (the embedded default has no use for them), named in naming.py too.
    event_target_dead_letter_queue = "${local.name_prefix}-events-dlq"
    callback_signing_secret        = "${local.name_prefix}-callback-signing"
    kms_alias                      = "alias/${local.name_prefix}"
    slack_status_queue             = "${local.name_prefix}-slack-status"
    slack_status_dead_letter_queue = "${local.name_prefix}-slack-status-dlq"
    status_to_slack_rule           = "${local.name_prefix}-status-to-slack"
    # What a person must act on or know at once, on a queue of its own (orchestration/events.py).
    slack_priority_queue             = "${local.name_prefix}-slack-priority.fifo"
    slack_priority_dead_letter_queue = "${local.name_prefix}-slack-priority-dlq.fifo"
    priority_to_slack_rule           = "${local.name_prefix}-priority-to-slack"
    slack_bot_token_secret           = "${local.name_prefix}-slack-bot-token"
    slack_signing_secret             = "${local.name_prefix}-slack-signing-secret"
    # Progress on GitHub (report_github_progress).
    github_progress_queue             = "${local.name_prefix}-github-progress.fifo"
    github_progress_dead_letter_queue = "${local.name_prefix}-github-progress-dlq.fifo"
    status_to_github_rule             = "${local.name_prefix}-status-to-github"
    github_token_secret               = "${local.name_prefix}-github-token"
  }

  # Built from its name so functions can take it without a dependency cycle (the state machine
  # depends on the functions).
  state_machine_arn = "arn:${data.aws_partition.current.partition}:states:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:stateMachine:${local.names.state_machine}"
  # The same for the launch coordinator loop, which request_launch starts.
  launch_coordinator_arn = "arn:${data.aws_partition.current.partition}:states:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:stateMachine:${local.names.launch_coordinator}"

  # The lanes (target account/Region) monitor_migrations watches and the alarms cover; the hub's
  # own lane (its account, MGN_REGION) when none is configured, as the monitor does.
  target_lanes = length(var.target_lanes) > 0 ? [for lane in var.target_lanes : "${lane.account_id}/${lane.region}"] : ["${data.aws_caller_identity.current.account_id}/${coalesce(var.mgn_region, var.aws_region)}"]

  # The functions that call MGN, EC2 and IAM in the lanes, through the target role: the roles
  # terraform/modules/target-account trusts (output lane_function_role_arns).
  # The ingress: a VM removed from the manifests leaves MGN's application (publish --cancel-removed).
  lane_functions = ["ingress_handler", "validate_input", "prepare_source", "trigger_migration", "verify_migration", "finalize_cutover", "rollback_handler", "monitor_migrations", "coordinate_launches"]

  # Every Lambda function (naming.FUNCTIONS): its name (ResourceNames.function), its handler
  # (naming.handler_path) and its timeout. The ingress timeout stays below the request queue's
  # visibility timeout; pipeline functions may use the whole state machine task timeout.
  lambda_functions = {
    ingress_handler = {
      name    = "${local.name_prefix}-ingress-handler"
      handler = "orchestration.handlers.ingress_handler.handler"
      timeout = 30
    }
    start_migration = {
      name    = "${local.name_prefix}-start-migration"
      handler = "orchestration.handlers.start_migration.handler"
      timeout = 60
    }
    validate_input = {
      name    = "${local.name_prefix}-validate-input"
      handler = "orchestration.handlers.validate_input.handler"
      timeout = var.timings.task_timeout_seconds
    }
    prepare_source = {
      name    = "${local.name_prefix}-prepare-source"
      handler = "orchestration.handlers.prepare_source.handler"
      timeout = var.timings.task_timeout_seconds
    }
    trigger_migration = {
      name    = "${local.name_prefix}-trigger-migration"
      handler = "orchestration.handlers.trigger_migration.handler"
      timeout = var.timings.task_timeout_seconds
    }
    verify_migration = {
      name    = "${local.name_prefix}-verify-migration"
      handler = "orchestration.handlers.verify_migration.handler"
      timeout = var.timings.task_timeout_seconds
    }
    request_approval = {
      name    = "${local.name_prefix}-request-approval"
      handler = "orchestration.handlers.request_approval.handler"
      timeout = var.timings.task_timeout_seconds
    }
    finalize_cutover = {
      name    = "${local.name_prefix}-finalize-cutover"
      handler = "orchestration.handlers.finalize_cutover.handler"
      timeout = var.timings.task_timeout_seconds
    }
    callback_handler = {
      name    = "${local.name_prefix}-callback-handler"
      handler = "orchestration.handlers.callback_handler.handler"
      timeout = 60
    }
    rollback_handler = {
      name    = "${local.name_prefix}-rollback-handler"
      handler = "orchestration.handlers.rollback_handler.handler"
      timeout = var.timings.task_timeout_seconds
    }
    # Batched launches (var.launch.design = "batched"): an execution's request to its lane's
    # coordinator, and one run of the coordinator loop.
    request_launch = {
      name    = "${local.name_prefix}-request-launch"
      handler = "orchestration.handlers.request_launch.handler"
      timeout = var.timings.task_timeout_seconds
    }
    coordinate_launches = {
      name    = "${local.name_prefix}-coordinate-launches"
      handler = "orchestration.handlers.coordinate_launches.handler"
      timeout = var.timings.task_timeout_seconds
    }
    # Each wave's deployment and result comment on GitHub, from its FIFO queue (sqs.tf); its
    # timeout times six is that queue's visibility timeout.
    report_github_progress = {
      name    = "${local.name_prefix}-report-github-progress"
      handler = "orchestration.handlers.report_github_progress.handler"
      timeout = 60
    }
    # Scheduled (naming.SCHEDULED_FUNCTIONS, schedules.tf): reads MGN and the table, puts the
    # metrics the replication-lag and approval-waiting alarms watch (monitoring.tf).
    monitor_migrations = {
      name    = "${local.name_prefix}-monitor-migrations"
      handler = "orchestration.handlers.monitor_migrations.handler"
      timeout = 60
    }
    # The Slack bot (naming.BOT_FUNCTIONS): the Bolt app behind the function URL acknowledges
    # within Slack's 3 s and runs lazy listeners in a second, asynchronous invocation of itself.
    slack_app = {
      name    = "${local.name_prefix}-slack-app"
      handler = "bot.handlers.slack_app.handler"
      timeout = 30
    }
    # The notifier's timeout times six is the status queue's visibility timeout (sqs.tf).
    slack_notifier = {
      name    = "${local.name_prefix}-slack-notifier"
      handler = "bot.handlers.slack_notifier.handler"
      timeout = 60
    }
  }

  bot_functions = ["slack_app", "slack_notifier"]

  # Reserved concurrency where it protects a rate-limited API. The notifier paces Slack calls
  # in-process, and two copies would double the rate and fold one migration's thread from two
  # queues at once: exactly one. Its two FIFO queues (one group each) offer at most two
  # batches; the throttled one is retried by its poller within seconds, far inside the
  # queues' visibility timeout (6 x 60 s), so it is not dead-lettered. The functions that call MGN
  # are capped so a large wave queues in Step Functions' retries (Lambda.TooManyRequests is
  # retried) instead of in MGN's throttling. The rest are unreserved (null): the ingress
  # handler is capped by its event source mapping instead (a reserved limit on an SQS-fed
  # function makes throttled batches count as receives and dead-letter good requests).
  lambda_reserved_concurrency = {
    ingress_handler   = null
    start_migration   = null
    validate_input    = var.mgn_function_concurrency
    prepare_source    = var.mgn_function_concurrency
    trigger_migration = var.mgn_function_concurrency
    verify_migration  = var.mgn_function_concurrency
    request_approval  = null
    finalize_cutover  = var.mgn_function_concurrency
    callback_handler  = null
    rollback_handler  = var.mgn_function_concurrency
    request_launch    = null
    # One loop per lane runs it at a time (the lease): no cap needed.
    coordinate_launches = null
    # Its FIFO queue's one message group gives it one batch at a time: no cap needed.
    report_github_progress = null
    # One run at a time: a run that overlaps the next schedule only repeats its MGN reads.
    monitor_migrations = 1
    slack_app          = null
    slack_notifier     = 1
  }

  # The functions the state machine invokes (statemachine.FUNCTION_PLACEHOLDERS).
  pipeline_functions = [
    "validate_input",
    "prepare_source",
    "trigger_migration",
    "verify_migration",
    "request_approval",
    "finalize_cutover",
    "rollback_handler",
    "request_launch",
  ]

  # Environment every function gets: orchestration/settings.py reads these in every handler.
  # AWS_REGION is set by the Lambda runtime itself (a reserved variable).
  common_environment = {
    EVENTBRIDGE_BUS_NAME         = aws_cloudwatch_event_bus.this.name
    DYNAMODB_TABLE_NAME          = aws_dynamodb_table.state.name
    SQS_QUEUE_URL                = aws_sqs_queue.requests.url
    REQUEST_DLQ_URL              = aws_sqs_queue.requests_dlq.url
    STATE_MACHINE_ARN            = local.state_machine_arn
    LAUNCH_COORDINATOR_ARN       = local.launch_coordinator_arn
    MGN_REGION                   = coalesce(var.mgn_region, var.aws_region)
    HUB_ACCOUNT_ID               = data.aws_caller_identity.current.account_id
    TARGET_ROLE_NAME             = local.names.target_role
    TARGET_LANES                 = join(",", local.target_lanes)
    DEBUG                        = tostring(var.debug)
    DEFAULT_APPROVERS            = join(",", var.default_approvers)
    IDEMPOTENCY_DAYS             = tostring(var.idempotency_days)
    POWERTOOLS_SERVICE_NAME      = var.project_name
    POWERTOOLS_METRICS_NAMESPACE = "Wavepilot"
  }

  # Environment only some functions get.
  function_environment = {
    callback_handler = {
      CALLBACK_SIGNING_SECRET_ARN = aws_secretsmanager_secret.callback_signing.arn
    }
    # Empty GITHUB_REPOSITORY (var.github_progress off): the function reports nothing (and
    # its rule is disabled, eventbridge.tf).
    report_github_progress = {
      GITHUB_REPOSITORY       = local.github_progress_repository
      GITHUB_TOKEN_SECRET_ARN = aws_secretsmanager_secret.github_token.arn
      GITHUB_API_URL          = var.github_api_url
      GITHUB_PROGRESS_DLQ_URL = aws_sqs_queue.github_progress_dlq.url
    }
  }

  # The bot's functions read only their own settings (bot/config.py), not the pipeline's.
  # The bot's queues' maxReceiveCount (terraform/sqs.tf): the notifier dead-letters a record
  # that fails on its last receive itself, with why, before SQS's redrive moves it without.
  slack_max_receives = 5

  bot_environment = {
    slack_app = {
      SLACK_BOT_TOKEN_SECRET_ARN   = aws_secretsmanager_secret.slack_bot_token.arn
      SLACK_SIGNING_SECRET_ARN     = aws_secretsmanager_secret.slack_signing.arn
      DYNAMODB_TABLE_NAME          = aws_dynamodb_table.state.name
      EVENTBRIDGE_BUS_NAME         = aws_cloudwatch_event_bus.this.name
      STATE_MACHINE_ARN            = local.state_machine_arn
      DEFAULT_APPROVERS            = join(",", var.default_approvers)
      SLACK_DEFAULT_CHANNEL        = var.slack_default_channel
      SLACK_STATUS_QUEUE_URL       = aws_sqs_queue.slack_status.url
      POWERTOOLS_SERVICE_NAME      = var.project_name
      POWERTOOLS_METRICS_NAMESPACE = "Wavepilot"
    }
    slack_notifier = {
      SLACK_BOT_TOKEN_SECRET_ARN   = aws_secretsmanager_secret.slack_bot_token.arn
      SLACK_STATUS_DLQ_URL         = aws_sqs_queue.slack_status_dlq.url
      SLACK_PRIORITY_DLQ_URL       = aws_sqs_queue.slack_priority_dlq.url
      SLACK_STATUS_QUEUE_URL       = aws_sqs_queue.slack_status.url
      SLACK_PRIORITY_QUEUE_URL     = aws_sqs_queue.slack_priority.url
      SLACK_MAX_RECEIVES           = local.slack_max_receives
      DYNAMODB_TABLE_NAME          = aws_dynamodb_table.state.name
      SLACK_DEFAULT_CHANNEL        = var.slack_default_channel
      DEFAULT_APPROVERS            = join(",", var.default_approvers)
      POWERTOOLS_SERVICE_NAME      = var.project_name
      POWERTOOLS_METRICS_NAMESPACE = "Wavepilot"
    }
  }

  # Each function's environment: the pipeline's common settings plus its own, or the bot's.
  lambda_environment = merge(
    {
      for key in keys(local.lambda_functions) : key => merge(local.common_environment, lookup(local.function_environment, key, {}))
      if !contains(local.bot_functions, key)
    },
    local.bot_environment,
  )

  # Every templatefile() placeholder in orchestration/statemachine/migration.asl.json, and
  # nothing else (templatefile() fails on a missing one; a test checks both directions).
  state_machine_placeholders = {
    ValidateInputFunctionArn     = aws_lambda_function.this["validate_input"].arn
    PrepareSourceFunctionArn     = aws_lambda_function.this["prepare_source"].arn
    TriggerMigrationFunctionArn  = aws_lambda_function.this["trigger_migration"].arn
    VerifyMigrationFunctionArn   = aws_lambda_function.this["verify_migration"].arn
    RequestApprovalFunctionArn   = aws_lambda_function.this["request_approval"].arn
    FinalizeCutoverFunctionArn   = aws_lambda_function.this["finalize_cutover"].arn
    RollbackHandlerFunctionArn   = aws_lambda_function.this["rollback_handler"].arn
    RequestLaunchFunctionArn     = aws_lambda_function.this["request_launch"].arn
    PollInitialSeconds           = var.timings.poll_initial_seconds
    PollMaxSeconds               = var.timings.poll_max_seconds
    PollBackoff                  = var.timings.poll_backoff
    RetryIntervalSeconds         = var.timings.retry_interval_seconds
    TaskTimeoutSeconds           = var.timings.task_timeout_seconds
    ReplicationTimeoutSeconds    = var.timings.replication_timeout_seconds
    LaunchTimeoutSeconds         = var.timings.launch_timeout_seconds
    ApprovalTimeoutSeconds       = var.timings.approval_timeout_seconds
    ExecutionTimeoutSeconds      = var.timings.execution_timeout_seconds
    QuotaRetryMaxSeconds         = var.timings.quota_retry_max_seconds
    LaunchDesign                 = var.launch.design
    CutoverRequestTimeoutSeconds = var.launch.cutover_timeout_seconds
    # A batched test request waits for replication, then its launch (Timings.test_request_timeout_seconds).
    TestRequestTimeoutSeconds = var.timings.replication_timeout_seconds + var.timings.launch_timeout_seconds
  }

  # The launch coordinator loop's placeholders (launch-coordinator.asl.json), the same way.
  launch_coordinator_placeholders = {
    CoordinateLaunchesFunctionArn = aws_lambda_function.this["coordinate_launches"].arn
    TaskTimeoutSeconds            = var.timings.task_timeout_seconds
    RetryIntervalSeconds          = var.timings.retry_interval_seconds
    PollMaxSeconds                = var.timings.poll_max_seconds
    ConcurrentJobs                = var.launch.concurrent_jobs
    ServersPerJob                 = var.launch.servers_per_job
    ServersInActiveJobs           = var.launch.servers_in_active_jobs
    LingerSeconds                 = var.launch.linger_seconds
    HandOverAfterRuns             = var.launch.hand_over_after_runs
    # LaunchSettings.coordinator_placeholders: the lanes' raised quotas, by their names in the loop's config.
    QuotasByLane = jsonencode({
      for lane, quotas in var.launch.quotas_by_lane : lane => {
        for name, value in {
          concurrentJobs      = quotas.concurrent_jobs
          serversPerJob       = quotas.servers_per_job
          serversInActiveJobs = quotas.servers_in_active_jobs
        } : name => value if value != null
      }
    })
  }
}

locals {
  # Functions invoked asynchronously: EventBridge targets, and the Slack app's lazy listeners.
  async_functions = ["start_migration", "callback_handler", "slack_app"]

  slack_app_arn = "arn:${data.aws_partition.current.partition}:lambda:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:function:${local.lambda_functions.slack_app.name}"

  # orchestration.events.PRIORITY_EVENT_TYPES: what a person must act on or know at once. They
  # take the priority rule and queue; the status rule takes every other type (anything-but),
  # so each event reaches the bot once (events.slack_event_patterns).
  slack_priority_detail_types = [
    "ApprovalRequested",
    "ApprovalDecided",
    "MigrationFailed",
    "MigrationParked",
    "RollbackStarted",
  ]

  # The repository each wave's progress is shown on; empty: not shown.
  github_progress_repository = var.github_progress && var.github_repository != null ? var.github_repository : ""

  # orchestration.gitops.wave_progress.PROGRESS_DETAIL_TYPES: the events that can change a
  # migration's standing in its wave, to report_github_progress.
  github_progress_detail_types = [
    "MigrationRequested",
    "MigrationStatusUpdated",
    "MigrationCompleted",
    "MigrationFailed",
    "RollbackCompleted",
  ]
}
