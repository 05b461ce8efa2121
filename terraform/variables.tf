variable "project_name" {
  description = "Project name: the first part of every resource name (orchestration/naming.py)."
  type        = string
  default     = "wavepilot"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}[a-z0-9]$", var.project_name))
    error_message = "project_name must be 3-22 characters: lower-case letters, digits and hyphens."
  }
}

variable "environment" {
  description = "Environment name (dev, staging, prod): the second part of every resource name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lower-case letters or digits, starting with a letter."
  }
}

variable "aws_region" {
  description = "AWS region the orchestration runs in."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be a region name such as us-east-1."
  }
}

variable "mgn_region" {
  description = "Region of the MGN service the pipeline drives; null means aws_region (MGN_REGION)."
  type        = string
  default     = null

  validation {
    condition     = var.mgn_region == null || can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.mgn_region))
    error_message = "mgn_region must be null or a region name such as us-east-1."
  }
}

variable "lambda_package_path" {
  description = "Path to the zip holding the orchestration package and its dependencies."
  type        = string

  validation {
    condition     = endswith(var.lambda_package_path, ".zip")
    error_message = "lambda_package_path must name a .zip file."
  }
}

variable "lambda_memory_size" {
  description = "Memory in MB for every orchestration Lambda function."
  type        = number
  default     = 512

  validation {
    condition     = var.lambda_memory_size >= 128 && var.lambda_memory_size <= 10240
    error_message = "lambda_memory_size must be between 128 and 10240 MB."
  }
}

variable "log_retention_days" {
  description = "Retention of the Lambda and Step Functions log groups, in days (a year by default: the audit of approvals lives in these logs too)."
  type        = number
  default     = 365

  validation {
    condition = contains(
      [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653],
      var.log_retention_days
    )
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "state_machine_log_level" {
  description = "Step Functions execution logging level."
  type        = string
  default     = "ERROR"

  validation {
    condition     = contains(["ALL", "ERROR", "FATAL", "OFF"], var.state_machine_log_level)
    error_message = "state_machine_log_level must be ALL, ERROR, FATAL or OFF."
  }
}

variable "timings" {
  description = "Polling and time limits of the state machine, in seconds; defaults equal Timings.aws() in orchestration/statemachine."
  type = object({
    poll_initial_seconds        = number
    poll_max_seconds            = number
    poll_backoff                = number
    retry_interval_seconds      = number
    task_timeout_seconds        = number
    replication_timeout_seconds = number
    launch_timeout_seconds      = number
    approval_timeout_seconds    = number
    execution_timeout_seconds   = number
    quota_retry_max_seconds     = number
  })
  default = {
    poll_initial_seconds        = 60
    poll_max_seconds            = 900
    poll_backoff                = 1.5
    retry_interval_seconds      = 5
    task_timeout_seconds        = 300
    replication_timeout_seconds = 604800
    launch_timeout_seconds      = 3600
    approval_timeout_seconds    = 259200
    execution_timeout_seconds   = 31536000
    quota_retry_max_seconds     = 300
  }

  validation {
    condition = alltrue([
      var.timings.poll_initial_seconds >= 1,
      var.timings.poll_max_seconds >= var.timings.poll_initial_seconds,
      var.timings.poll_backoff >= 1,
      var.timings.retry_interval_seconds >= 1,
      var.timings.replication_timeout_seconds >= 1,
      var.timings.launch_timeout_seconds >= 1,
      var.timings.approval_timeout_seconds >= 1,
      var.timings.quota_retry_max_seconds >= var.timings.poll_initial_seconds,
    ])
    error_message = "timings must be positive, poll_max_seconds and quota_retry_max_seconds >= poll_initial_seconds and poll_backoff >= 1."
  }

  validation {
    # The pipeline Lambda timeout equals the state machine's task timeout: Lambda allows 900 s.
    condition     = var.timings.task_timeout_seconds >= 1 && var.timings.task_timeout_seconds <= 900
    error_message = "timings.task_timeout_seconds must be between 1 and 900 (the Lambda maximum)."
  }

  validation {
    # A standard workflow runs for at most one year.
    condition = (
      var.timings.execution_timeout_seconds <= 31536000 &&
      var.timings.execution_timeout_seconds > var.timings.approval_timeout_seconds
    )
    error_message = "timings.execution_timeout_seconds must exceed approval_timeout_seconds and be at most one year."
  }
}

variable "launch" {
  description = "How MGN launches start: design \"per-vm\" (each execution starts its own job) or \"batched\" (each lane's launch coordinator packs them into jobs), the lane's MGN quotas (raise them with the account's), the linger (s) a test launch waits for others and the coordinator waits between runs, how long (s) a cutover request may wait, after how many runs a coordinator loop hands its lane over to a fresh execution (its history stays below Step Functions' 25,000 events: a run costs about 9), and per lane (\"accountId/region\") the quotas that account has had raised. Defaults equal LaunchSettings.aws() in orchestration/statemachine."
  type = object({
    design                  = string
    concurrent_jobs         = number
    servers_per_job         = number
    servers_in_active_jobs  = number
    linger_seconds          = number
    cutover_timeout_seconds = number
    hand_over_after_runs    = optional(number, 1000)
    quotas_by_lane = optional(map(object({
      concurrent_jobs        = optional(number)
      servers_per_job        = optional(number)
      servers_in_active_jobs = optional(number)
    })), {})
  })
  default = {
    design                  = "per-vm"
    concurrent_jobs         = 20
    servers_per_job         = 200
    servers_in_active_jobs  = 200
    linger_seconds          = 60
    cutover_timeout_seconds = 604800
    hand_over_after_runs    = 1000
    quotas_by_lane          = {}
  }

  validation {
    condition     = contains(["per-vm", "batched"], var.launch.design)
    error_message = "launch.design must be \"per-vm\" or \"batched\"."
  }

  validation {
    condition = alltrue([
      var.launch.concurrent_jobs >= 1,
      var.launch.servers_per_job >= 1,
      var.launch.servers_in_active_jobs >= 1,
      var.launch.linger_seconds >= 1,
      var.launch.cutover_timeout_seconds >= 1,
    ])
    error_message = "launch quotas, linger_seconds and cutover_timeout_seconds must be positive."
  }

  validation {
    # MAX_RUNS_PER_LOOP in orchestration/statemachine: 2,000 runs are some 18,000 events.
    condition     = var.launch.hand_over_after_runs >= 1 && var.launch.hand_over_after_runs <= 2000
    error_message = "launch.hand_over_after_runs must be between 1 and 2000."
  }

  validation {
    # LANE_LABEL and LANE_QUOTA_NAMES in orchestration/statemachine.
    condition = alltrue([
      for lane, quotas in var.launch.quotas_by_lane :
      can(regex("^[0-9]{12}/[a-z]{2}(-[a-z]+)+-[0-9]$", lane)) && alltrue([
        for value in values(quotas) : value == null ? true : value >= 1
      ])
    ])
    error_message = "launch.quotas_by_lane keys must be accountId/region and its quotas positive."
  }
}

variable "default_approvers" {
  description = "Approvers for requests that name none (DEFAULT_APPROVERS), e.g. GitHub or Slack handles."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for approver in var.default_approvers : length(trimspace(approver)) > 0 && !strcontains(approver, ",")])
    error_message = "default_approvers entries must be non-empty and contain no commas."
  }
}

variable "idempotency_days" {
  description = "How long a processed cancel is remembered, in days (IDEMPOTENCY_DAYS); a migrate request's repeat is told by the migration's record."
  type        = number
  default     = 90

  validation {
    condition     = var.idempotency_days >= 1 && floor(var.idempotency_days) == var.idempotency_days
    error_message = "idempotency_days must be a whole number of at least 1."
  }
}

variable "debug" {
  description = "Debug logging in every function (DEBUG)."
  type        = bool
  default     = false
}

variable "alarm_email" {
  description = "Email address subscribed to the alarm topic; null for none (subscribe other endpoints to the alarm_topic_arn output)."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be null or an email address."
  }
}

variable "approval_alarm_hours" {
  description = "Alarm when an approval gate expires (no decision within timings.approval_timeout_seconds); and, once the pending-approval age metric exists, when one waits longer than this many hours."
  type        = number
  default     = 24

  validation {
    condition     = var.approval_alarm_hours >= 1
    error_message = "approval_alarm_hours must be at least 1."
  }
}

variable "slack_default_channel" {
  description = "Slack channel (ID such as C0123456789, or #name) for migrations whose wave names none (SLACK_DEFAULT_CHANNEL); empty for none."
  type        = string
  default     = ""

  validation {
    condition     = var.slack_default_channel == "" || can(regex("^(#[a-z0-9_-]{1,80}|[CG][A-Z0-9]{8,})$", var.slack_default_channel))
    error_message = "slack_default_channel must be empty, a channel ID (C..., G...) or #name."
  }
}

variable "mgn_function_concurrency" {
  description = "Reserved concurrency of each function that calls MGN (keeps a large wave within MGN's API rate; Step Functions retries throttled invocations)."
  type        = number
  default     = 5

  validation {
    condition     = var.mgn_function_concurrency >= 1 && floor(var.mgn_function_concurrency) == var.mgn_function_concurrency
    error_message = "mgn_function_concurrency must be a whole number of at least 1."
  }
}

variable "slack_status_batching_window_seconds" {
  description = "How long the Slack status queue's event source mapping may wait to fill a batch of ten routine status events (seconds). Routine status and the notifier's owed-roots reminders are up to this late (approvals, failures and rollbacks take the priority queue); none by default: a wave's bursts fill batches without one (docs/BENCHMARKS.md)."
  type        = number
  default     = 0

  validation {
    condition     = var.slack_status_batching_window_seconds >= 0 && var.slack_status_batching_window_seconds <= 300
    error_message = "slack_status_batching_window_seconds must be between 0 and 300 (the SQS mapping's limits)."
  }
}

variable "ingress_max_concurrency" {
  description = "Maximum concurrent ingress handler invocations the request queue's event source mapping starts."
  type        = number
  default     = 5

  validation {
    condition     = var.ingress_max_concurrency >= 2 && var.ingress_max_concurrency <= 1000
    error_message = "ingress_max_concurrency must be between 2 and 1000 (the SQS mapping's limits)."
  }
}

variable "github_repository" {
  description = "GitHub repository (owner/name) whose workflows deploy and send requests; null creates no GitHub roles."
  type        = string
  default     = null

  validation {
    condition     = var.github_repository == null || can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be null or owner/name."
  }
}

variable "github_oidc_provider_arn" {
  description = "ARN of an existing token.actions.githubusercontent.com OIDC provider in this account; null creates one (an account has at most one per URL)."
  type        = string
  default     = null

  validation {
    condition     = var.github_oidc_provider_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/token\\.actions\\.githubusercontent\\.com$", var.github_oidc_provider_arn))
    error_message = "github_oidc_provider_arn must be null or the ARN of the token.actions.githubusercontent.com provider."
  }
}

variable "github_publish_subjects" {
  description = "OIDC subjects that may assume the publish role (publish.yml); empty means repo:<github_repository>:environment:production."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for subject in var.github_publish_subjects : startswith(subject, "repo:")])
    error_message = "github_publish_subjects entries must start with \"repo:\"."
  }
}

variable "github_apply_subjects" {
  description = "OIDC subjects that may assume the Terraform apply role (deploy.yml apply job); empty means repo:<github_repository>:environment:production."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for subject in var.github_apply_subjects : startswith(subject, "repo:")])
    error_message = "github_apply_subjects entries must start with \"repo:\"."
  }
}

variable "github_plan_subjects" {
  description = "OIDC subjects that may assume the read-only Terraform plan role (deploy.yml plan job); empty means repo:<github_repository>:pull_request."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for subject in var.github_plan_subjects : startswith(subject, "repo:")])
    error_message = "github_plan_subjects entries must start with \"repo:\"."
  }
}

variable "github_manifest_plan_subjects" {
  description = "OIDC subjects that may assume the manifest plan role (manifests.yml pull request job, var.manifest_plan_mgn_drift); empty means repo:<github_repository>:pull_request."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for subject in var.github_manifest_plan_subjects : startswith(subject, "repo:")])
    error_message = "github_manifest_plan_subjects entries must start with \"repo:\"."
  }
}

variable "manifest_plan_mgn_drift" {
  description = "Create the manifest plan role (output manifest_plan_role_arn) so the manifests workflow's pull request plan shows MGN console drift, reading MGN in each target account through its grouping reader role (terraform/modules/target-account with hub_manifest_plan_role_arn). Needs github_repository."
  type        = bool
  default     = false
}

variable "grouping_reader_role_name" {
  description = "Name of the read-only grouping reader role in every target account (the module's grouping_reader_role_name); null: <project_name>-<environment>-grouping-reader."
  type        = string
  default     = null

  validation {
    condition     = var.grouping_reader_role_name == null || can(regex("^[\\w+=,.@-]{1,64}$", var.grouping_reader_role_name))
    error_message = "grouping_reader_role_name: null or an IAM role name (1-64 of letters, digits and +=,.@_-)."
  }
}

variable "private_deployment" {
  description = "Run every function in private subnets, reaching AWS APIs through VPC endpoints (Slack and callback URLs need a NAT in those subnets)."
  type        = bool
  default     = false
}

variable "vpc_id" {
  description = "VPC of the private deployment; required when private_deployment is true."
  type        = string
  default     = null

  validation {
    condition     = var.vpc_id == null || can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must be null or a VPC ID (vpc-...)."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets (two or more Availability Zones) for the functions and interface endpoints."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for subnet in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]+$", subnet))])
    error_message = "private_subnet_ids entries must be subnet IDs (subnet-...)."
  }
}

variable "private_route_table_ids" {
  description = "Route tables of the private subnets: the DynamoDB gateway endpoint is added to them."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for table in var.private_route_table_ids : can(regex("^rtb-[0-9a-f]+$", table))])
    error_message = "private_route_table_ids entries must be route table IDs (rtb-...)."
  }
}

variable "enable_cloudtrail" {
  description = "Create a multi-Region CloudTrail trail (and its hardened S3 bucket) for the audit trail; false when the organisation already has one."
  type        = bool
  default     = false
}

variable "cloudtrail_retention_days" {
  description = "Days the audit trail's log files are kept in S3."
  type        = number
  default     = 2557

  validation {
    condition     = var.cloudtrail_retention_days >= 90
    error_message = "cloudtrail_retention_days must be at least 90."
  }
}

variable "tags" {
  description = "Extra tags applied to every resource through the provider's default tags."
  type        = map(string)
  default     = {}
}

variable "target_lanes" {
  description = "The lanes (target account + Region) waves migrate into: monitor_migrations watches them (TARGET_LANES) and the alarms cover each. Every account needs terraform/modules/target-account applied. Empty: the hub's own account and MGN Region."
  type = list(object({
    account_id = string
    region     = string
  }))
  default = []

  validation {
    condition     = alltrue([for lane in var.target_lanes : can(regex("^[0-9]{12}$", lane.account_id)) && can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", lane.region))])
    error_message = "target_lanes: account_id is 12 digits, region a Region name such as eu-west-1."
  }
}

variable "github_progress" {
  description = "Show each wave's progress on var.github_repository (report_github_progress: a deployment per wave, a comment on the merged pull request), with the token in the secret named by output github_token_secret_arn. False, or no github_repository: not reported (the rule is disabled)."
  type        = bool
  default     = false
}

variable "github_api_url" {
  description = "GitHub's REST API: https://api.github.com, or a GitHub Enterprise Server's https://HOST/api/v3."
  type        = string
  default     = "https://api.github.com"

  validation {
    condition     = can(regex("^https://[^\\s]+$", var.github_api_url))
    error_message = "github_api_url must be an https URL."
  }
}
