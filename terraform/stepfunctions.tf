# The migration workflow: the ASL file the local runtime renders too, with the same placeholders.
resource "aws_cloudwatch_log_group" "state_machine" {
  name              = "/aws/vendedlogs/states/${local.names.state_machine}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_sfn_state_machine" "this" {
  #checkov:skip=CKV_AWS_285:Execution history is logged (var.state_machine_log_level, ERROR by default) without execution data on purpose: the data holds request details and the approval task token, which must never leave Step Functions (DESIGN decision 7). Full history stays in Step Functions for 90 days.
  name     = local.names.state_machine
  type     = "STANDARD"
  role_arn = aws_iam_role.state_machine.arn

  definition = templatefile("${path.module}/../orchestration/statemachine/migration.asl.json", local.state_machine_placeholders)

  logging_configuration {
    log_destination = "${aws_cloudwatch_log_group.state_machine.arn}:*"
    level           = var.state_machine_log_level
    # Execution data holds request details and the approval task token: keep it out of logs.
    include_execution_data = false
  }

  tracing_configuration {
    enabled = true
  }

  depends_on = [aws_iam_role_policy.state_machine]
}

# Batched launches: each busy lane's launch coordinator loop is an execution of this one
# (request_launch starts it under a lease in the state table; it ends when the lane is idle).
resource "aws_cloudwatch_log_group" "launch_coordinator" {
  name              = "/aws/vendedlogs/states/${local.names.launch_coordinator}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_sfn_state_machine" "launch_coordinator" {
  #checkov:skip=CKV_AWS_285:As the migration state machine: execution data holds task tokens, which must never leave Step Functions.
  name     = local.names.launch_coordinator
  type     = "STANDARD"
  role_arn = aws_iam_role.launch_coordinator.arn

  definition = templatefile("${path.module}/../orchestration/statemachine/launch-coordinator.asl.json", local.launch_coordinator_placeholders)

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.launch_coordinator.arn}:*"
    level                  = var.state_machine_log_level
    include_execution_data = false
  }

  tracing_configuration {
    enabled = true
  }

  depends_on = [aws_iam_role_policy.launch_coordinator]
}
