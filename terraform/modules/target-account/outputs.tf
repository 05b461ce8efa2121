output "target_role_arn" {
  description = "ARN of the Wavepilot role in this account (the hub assumes it by name)."
  value       = aws_iam_role.target.arn
}

output "target_role_name" {
  description = "Name of the role: <project_name>-<environment>-target, as the hub's TARGET_ROLE_NAME."
  value       = aws_iam_role.target.name
}

output "target_lanes" {
  description = "This account's lanes, in the shape of the hub's target_lanes variable."
  value       = [for region in var.regions : { account_id = data.aws_caller_identity.current.account_id, region = region }]
}

output "grouping_reader_role_arn" {
  description = "ARN of the read-only role the hub's pull request plan assumes to read MGN's grouping here; null without hub_manifest_plan_role_arn."
  value       = try(aws_iam_role.grouping_reader[0].arn, null)
}
