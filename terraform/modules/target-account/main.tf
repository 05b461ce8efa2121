# The Wavepilot role in a target account: what the hub's step functions do here, through it.
#
# Apply once in every target account (a lane is a target account + Region: DESIGN.md decision
# 12). The hub's functions assume this role (sts:AssumeRole, one session per account, renewed
# before it expires) and call MGN and EC2 in the lane's Region and IAM in the account. The
# policy holds exactly the calls the steps make (tests/test_iam_calls.py records them end to
# end and compares both ways). docs/DEPLOY.md, "Adding a target account".
#
# Given the hub's manifest plan role (var.hub_manifest_plan_role_arn), a second, read-only
# role lets the pull request's plan read MGN's waves, applications and source servers here
# (wavepilot plan --mgn-drift, .github/workflows/manifests.yml): three reads, nothing else.

locals {
  role_name = "${var.project_name}-${var.environment}-target"

  # orchestration/naming.py, ResourceNames.grouping_reader_role (the hub's output
  # grouping_reader_role_name), unless named otherwise in both.
  grouping_reader           = var.hub_manifest_plan_role_arn != null
  grouping_reader_role_name = coalesce(var.grouping_reader_role_name, "${var.project_name}-${var.environment}-grouping-reader")
}

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "HubStepFunctions"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = var.hub_function_role_arns
    }

    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalAccount"
      values   = [var.hub_account_id]
    }

    dynamic "condition" {
      for_each = var.organization_id == null ? [] : [var.organization_id]
      content {
        test     = "StringEquals"
        variable = "aws:PrincipalOrgID"
        values   = [condition.value]
      }
    }
  }
}

resource "aws_iam_role" "target" {
  name                 = local.role_name
  description          = "Wavepilot: MGN, EC2 and IAM calls of the hub ${var.hub_account_id}'s migration steps"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = var.max_session_duration
  tags                 = var.tags
}

data "aws_iam_policy_document" "target" {
  # MGN: Describe* are list operations without resource-level permissions; the rest are
  # granted on "*" (source servers come from agent installs, not from this configuration).
  # The *SourceServerAction(s) calls keep each server's post-launch actions the manifest's.
  statement {
    sid = "Mgn"
    actions = [
      "mgn:ArchiveApplication",
      "mgn:ArchiveWave",
      "mgn:AssociateApplications",
      "mgn:AssociateSourceServers",
      "mgn:ChangeServerLifeCycleState",
      "mgn:CreateApplication",
      "mgn:CreateWave",
      "mgn:DescribeJobs",
      "mgn:DescribeSourceServers",
      "mgn:DisassociateApplications",
      "mgn:DisassociateSourceServers",
      "mgn:FinalizeCutover",
      "mgn:ListSourceServerActions",
      "mgn:PutSourceServerAction",
      "mgn:RemoveSourceServerAction",
      "mgn:ListApplications",
      "mgn:ListWaves",
      "mgn:StartCutover",
      "mgn:StartTest",
      "mgn:TerminateTargetInstances",
      "mgn:UnarchiveApplication",
      "mgn:UnarchiveWave",
      "mgn:UpdateLaunchConfiguration",
    ]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = var.regions
    }
  }

  # Waves and applications are created tagged as Wavepilot's (and only those are archived):
  # tagging on create needs mgn:TagResource. A source server is tagged before it is given
  # Wavepilot's post-launch actions (a server without the tag holds none, so it needs no
  # ListSourceServerActions). Limited here to those two tag keys.
  statement {
    sid       = "MgnTagOnCreate"
    actions   = ["mgn:TagResource"]
    resources = ["*"]

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["wavepilot:managed", "wavepilot:post-launch-actions"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = var.regions
    }
  }

  # ... and untagged once Wavepilot's last action is removed: only that key.
  statement {
    sid       = "MgnUntagActions"
    actions   = ["mgn:UntagResource"]
    resources = ["*"]

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["wavepilot:post-launch-actions"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = var.regions
    }
  }

  # EC2 Describe* calls support no resource-level permissions.
  statement {
    sid = "Ec2Reads"
    actions = [
      "ec2:DescribeInstanceStatus",
      "ec2:DescribeInstanceTypeOfferings",
      "ec2:DescribeInstances",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSubnets",
    ]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = var.regions
    }
  }

  # The launch templates MGN launches from (subnet, security groups, type, profile, tags).
  statement {
    sid       = "LaunchTemplates"
    actions   = ["ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate"]
    resources = [for region in var.regions : "arn:${data.aws_partition.current.partition}:ec2:${region}:${data.aws_caller_identity.current.account_id}:launch-template/*"]
  }

  # validate_input checks that the manifest's instance profile exists.
  statement {
    sid       = "InstanceProfiles"
    actions   = ["iam:GetInstanceProfile"]
    resources = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:instance-profile/*"]
  }
}

resource "aws_iam_role_policy" "target" {
  name   = "least-privilege"
  role   = aws_iam_role.target.id
  policy = data.aws_iam_policy_document.target.json
}

# --- the grouping reader: what the pull request's plan reads of MGN here ----------------------

# Only the hub's manifest plan role (the manifests workflow's pull request job), only from the
# hub account (and its organization, when given).
data "aws_iam_policy_document" "grouping_reader_trust" {
  count = local.grouping_reader ? 1 : 0

  statement {
    sid     = "HubManifestPlan"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = [var.hub_manifest_plan_role_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalAccount"
      values   = [var.hub_account_id]
    }

    dynamic "condition" {
      for_each = var.organization_id == null ? [] : [var.organization_id]
      content {
        test     = "StringEquals"
        variable = "aws:PrincipalOrgID"
        values   = [condition.value]
      }
    }
  }
}

resource "aws_iam_role" "grouping_reader" {
  count = local.grouping_reader ? 1 : 0

  name                 = local.grouping_reader_role_name
  description          = "Wavepilot: the hub ${var.hub_account_id}'s pull request plan reads MGN's waves, applications and source servers (read-only)"
  assume_role_policy   = data.aws_iam_policy_document.grouping_reader_trust[0].json
  max_session_duration = 3600
  tags                 = var.tags
}

# Exactly the calls of orchestration/pipeline/mgn_drift.py (MgnAdapter.grouping and
# source_servers; tests/test_mgn_drift.py records them): list operations without
# resource-level permissions, so "*", in the lanes' Regions only.
data "aws_iam_policy_document" "grouping_reader" {
  statement {
    sid = "MgnGroupingReads"
    actions = [
      "mgn:DescribeSourceServers",
      "mgn:ListApplications",
      "mgn:ListWaves",
    ]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = var.regions
    }
  }
}

resource "aws_iam_role_policy" "grouping_reader" {
  count = local.grouping_reader ? 1 : 0

  name   = "read-mgn-grouping"
  role   = aws_iam_role.grouping_reader[0].id
  policy = data.aws_iam_policy_document.grouping_reader.json
}
