variable "project_name" {
  description = "Project name, as in the hub's configuration: the role is named <project_name>-<environment>-target (orchestration/naming.py, ResourceNames.target_role)."
  type        = string
  default     = "wavepilot"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.project_name))
    error_message = "project_name: 2-21 lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "environment" {
  description = "The hub's environment (dev, prod, ...): the role trusts that hub's functions only."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment: 2-16 lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "hub_account_id" {
  description = "The hub account, where Wavepilot's orchestration (and its Lambda functions) run."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.hub_account_id))
    error_message = "hub_account_id: 12 digits."
  }
}

variable "hub_function_role_arns" {
  description = "ARNs of the hub's Lambda roles that call MGN and EC2 in the lanes (terraform output lane_function_role_arns of the hub). Only these may assume the role."
  type        = list(string)

  validation {
    condition     = length(var.hub_function_role_arns) > 0 && alltrue([for arn in var.hub_function_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", arn))])
    error_message = "hub_function_role_arns: one or more IAM role ARNs."
  }
}

variable "hub_manifest_plan_role_arn" {
  description = "ARN of the hub's manifest plan role (hub output manifest_plan_role_arn): creates the read-only grouping reader role, trusted by that role only, so pull request plans show MGN console drift. Null: no such role."
  type        = string
  default     = null

  validation {
    condition     = var.hub_manifest_plan_role_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.hub_manifest_plan_role_arn))
    error_message = "hub_manifest_plan_role_arn: null or an IAM role ARN."
  }
}

variable "grouping_reader_role_name" {
  description = "Name of the grouping reader role, as the hub's grouping_reader_role_name; null: <project_name>-<environment>-grouping-reader."
  type        = string
  default     = null

  validation {
    condition     = var.grouping_reader_role_name == null || can(regex("^[\\w+=,.@-]{1,64}$", var.grouping_reader_role_name))
    error_message = "grouping_reader_role_name: null or an IAM role name (1-64 of letters, digits and +=,.@_-)."
  }
}

variable "organization_id" {
  description = "AWS Organizations ID (o-...) the hub must belong to (aws:PrincipalOrgID); null: no organization condition."
  type        = string
  default     = null

  validation {
    condition     = var.organization_id == null || can(regex("^o-[a-z0-9]{10,32}$", var.organization_id))
    error_message = "organization_id: o- followed by 10-32 lower-case letters or digits, or null."
  }
}

variable "regions" {
  description = "The Regions of this account that are lanes (MGN initialized there); MGN and EC2 calls are allowed only there (aws:RequestedRegion)."
  type        = list(string)

  validation {
    condition     = length(var.regions) > 0 && alltrue([for region in var.regions : can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", region))])
    error_message = "regions: one or more Region names such as eu-west-1."
  }
}

variable "max_session_duration" {
  description = "Longest role session, in seconds (the hub asks for one hour and renews ten minutes before it ends)."
  type        = number
  default     = 3600

  validation {
    condition     = var.max_session_duration >= 3600 && var.max_session_duration <= 43200
    error_message = "max_session_duration: 3600 to 43200 seconds."
  }
}

variable "tags" {
  description = "Tags for the role."
  type        = map(string)
  default     = {}
}
