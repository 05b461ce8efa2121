project_name        = "wavepilot"
environment         = "prod"
aws_region          = "us-east-1"
lambda_package_path = "../dist/wavepilot-lambda.zip"
log_retention_days  = 365
debug               = false
default_approvers   = []

# timings: the defaults (orchestration.statemachine.Timings.aws()).

tags = {
  CostCenter = "migration-prod"
}
