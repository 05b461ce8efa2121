project_name        = "wavepilot"
environment         = "dev"
aws_region          = "us-east-1"
lambda_package_path = "../dist/wavepilot-lambda.zip"
log_retention_days  = 30
debug               = true
default_approvers   = []

# Shorter polls than production, the same limits.
timings = {
  poll_initial_seconds        = 30
  poll_max_seconds            = 300
  poll_backoff                = 1.5
  retry_interval_seconds      = 5
  task_timeout_seconds        = 300
  replication_timeout_seconds = 604800
  launch_timeout_seconds      = 3600
  approval_timeout_seconds    = 259200
  execution_timeout_seconds   = 31536000
  quota_retry_max_seconds     = 120
}

tags = {
  CostCenter = "migration-dev"
}
