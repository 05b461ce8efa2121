# GitHub Actions assume these roles with OIDC (no stored AWS keys). The workflows read their
# ARNs from repository variables: WAVEPILOT_PUBLISH_ROLE_ARN (publish.yml),
# TERRAFORM_PLAN_ROLE_ARN and TERRAFORM_APPLY_ROLE_ARN (deploy.yml),
# WAVEPILOT_MANIFEST_PLAN_ROLE_ARN (manifests.yml, with var.manifest_plan_mgn_drift); see
# docs/DEPLOY.md.
locals {
  github_enabled = var.github_repository != null
  github_subjects = {
    publish       = length(var.github_publish_subjects) > 0 ? var.github_publish_subjects : ["repo:${coalesce(var.github_repository, "none/none")}:environment:production"]
    apply         = length(var.github_apply_subjects) > 0 ? var.github_apply_subjects : ["repo:${coalesce(var.github_repository, "none/none")}:environment:production"]
    plan          = length(var.github_plan_subjects) > 0 ? var.github_plan_subjects : ["repo:${coalesce(var.github_repository, "none/none")}:pull_request"]
    manifest_plan = length(var.github_manifest_plan_subjects) > 0 ? var.github_manifest_plan_subjects : ["repo:${coalesce(var.github_repository, "none/none")}:pull_request"]
  }
  # The manifests workflow's pull request plan reads MGN's grouping in the lanes (off unless
  # asked for): the accounts of the lanes, each with the read-only grouping reader role.
  manifest_plan_enabled     = local.github_enabled && var.manifest_plan_mgn_drift
  grouping_reader_role_name = coalesce(var.grouping_reader_role_name, local.names.grouping_reader_role)
  lane_accounts             = distinct([for lane in local.target_lanes : split("/", lane)[0]])
  github_oidc_provider_arn  = var.github_oidc_provider_arn != null ? var.github_oidc_provider_arn : try(aws_iam_openid_connect_provider.github[0].arn, null)
}

# An account has one provider per URL: create it, or use the one given.
resource "aws_iam_openid_connect_provider" "github" {
  count = local.github_enabled && var.github_oidc_provider_arn == null ? 1 : 0

  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
  # AWS validates GitHub's certificate through its own trust store; IAM still requires a value.
  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1"]
}

data "aws_iam_policy_document" "github_trust" {
  for_each = { for role, subjects in local.github_subjects : role => subjects if local.github_enabled }

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "token.actions.githubusercontent.com:sub"
      values   = each.value
    }
  }
}

# --- publish: one action on one queue ---------------------------------------------------------

resource "aws_iam_role" "github_publish" {
  count = local.github_enabled ? 1 : 0

  name                 = "${local.name_prefix}-github-publish"
  description          = "GitHub Actions publish.yml: send migration requests to the request queue"
  assume_role_policy   = data.aws_iam_policy_document.github_trust["publish"].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "github_publish" {
  statement {
    sid       = "SendRequests"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.requests.arn]
  }

  # The request queue is encrypted with the project key.
  statement {
    sid       = "EncryptRequests"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_role_policy" "github_publish" {
  count = local.github_enabled ? 1 : 0

  name   = "send-requests"
  role   = aws_iam_role.github_publish[0].id
  policy = data.aws_iam_policy_document.github_publish.json
}

# --- plan: read-only ------------------------------------------------------------------------

resource "aws_iam_role" "terraform_plan" {
  count = local.github_enabled ? 1 : 0

  name                 = "${local.name_prefix}-terraform-plan"
  description          = "GitHub Actions deploy.yml plan job (pull requests): read state and live resources"
  assume_role_policy   = data.aws_iam_policy_document.github_trust["plan"].json
  max_session_duration = 3600
}

# Broad, and said so: `terraform plan` refreshes every resource type in this configuration,
# which takes Describe/Get/List on each service; AWS's ReadOnlyAccess is the maintained list.
# It can read but not change anything (the state in S3 too), and cannot read secret values.
resource "aws_iam_role_policy_attachment" "terraform_plan_read_only" {
  count = local.github_enabled ? 1 : 0

  role       = aws_iam_role.terraform_plan[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/ReadOnlyAccess"
}

# --- apply: deploys this configuration --------------------------------------------------------

resource "aws_iam_role" "terraform_apply" {
  count = local.github_enabled ? 1 : 0

  name                 = "${local.name_prefix}-terraform-apply"
  description          = "GitHub Actions deploy.yml apply job (main, production environment): terraform apply"
  assume_role_policy   = data.aws_iam_policy_document.github_trust["apply"].json
  max_session_duration = 3600
}

# Broad, and said so (docs/DEPLOY.md): apply creates, changes and deletes resources of a dozen
# services (Lambda, SQS, EventBridge, Step Functions, DynamoDB, KMS, Secrets Manager, logs,
# CloudWatch, SNS, S3, CloudTrail, EC2 endpoints). PowerUserAccess covers them without IAM;
# the IAM it needs is granted below, only on this project's roles and the GitHub provider.
# Trust is limited to the production environment, which has required reviewers.
resource "aws_iam_role_policy_attachment" "terraform_apply_power_user" {
  count = local.github_enabled ? 1 : 0

  role       = aws_iam_role.terraform_apply[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/PowerUserAccess"
}

data "aws_iam_policy_document" "terraform_apply_iam" {
  statement {
    sid = "ProjectRoles"
    actions = [
      "iam:CreateRole",
      "iam:DeleteRole",
      "iam:GetRole",
      "iam:UpdateRole",
      "iam:UpdateAssumeRolePolicy",
      "iam:TagRole",
      "iam:UntagRole",
      "iam:ListRoleTags",
      "iam:PutRolePolicy",
      "iam:GetRolePolicy",
      "iam:DeleteRolePolicy",
      "iam:ListRolePolicies",
      "iam:AttachRolePolicy",
      "iam:DetachRolePolicy",
      "iam:ListAttachedRolePolicies",
      "iam:ListInstanceProfilesForRole",
      "iam:PassRole",
    ]
    resources = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/${local.name_prefix}-*"]
  }

  statement {
    sid = "GitHubProvider"
    actions = [
      "iam:CreateOpenIDConnectProvider",
      "iam:DeleteOpenIDConnectProvider",
      "iam:GetOpenIDConnectProvider",
      "iam:UpdateOpenIDConnectProviderThumbprint",
      "iam:TagOpenIDConnectProvider",
      "iam:UntagOpenIDConnectProvider",
    ]
    resources = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:oidc-provider/token.actions.githubusercontent.com"]
  }

  # The Lambda and SNS/CloudTrail service-linked roles are created by the services themselves.
  statement {
    sid       = "ServiceLinkedRoles"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/aws-service-role/*"]
  }
}

resource "aws_iam_role_policy" "terraform_apply_iam" {
  count = local.github_enabled ? 1 : 0

  name   = "project-iam"
  role   = aws_iam_role.terraform_apply[0].id
  policy = data.aws_iam_policy_document.terraform_apply_iam.json
}

# --- manifest plan: MGN drift in the pull request's plan (read-only) ---------------------------

resource "aws_iam_role" "manifest_plan" {
  count = local.manifest_plan_enabled ? 1 : 0

  name                 = "${local.name_prefix}-manifest-plan"
  description          = "GitHub Actions manifests.yml (pull requests): read MGN's grouping in the lanes through their grouping reader roles"
  assume_role_policy   = data.aws_iam_policy_document.github_trust["manifest_plan"].json
  max_session_duration = 3600
}

# Nothing of its own but assuming the lanes' grouping reader roles (each allows three MGN reads,
# terraform/modules/target-account): the pull request's code runs with it, so it can change
# nothing and read no secret. The accounts are those of var.target_lanes (the hub's own when
# none is configured); a wave in another account gets a warning in the plan, not a failure.
data "aws_iam_policy_document" "manifest_plan" {
  statement {
    sid       = "AssumeGroupingReaders"
    actions   = ["sts:AssumeRole"]
    resources = [for account in local.lane_accounts : "arn:${data.aws_partition.current.partition}:iam::${account}:role/${local.grouping_reader_role_name}"]
  }
}

resource "aws_iam_role_policy" "manifest_plan" {
  count = local.manifest_plan_enabled ? 1 : 0

  name   = "assume-grouping-readers"
  role   = aws_iam_role.manifest_plan[0].id
  policy = data.aws_iam_policy_document.manifest_plan.json
}
