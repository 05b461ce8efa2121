# Provider and state backend. The backend is partial: `terraform init` supplies the bucket and
# region (see the README's Quick Start), and the key, so one configuration serves every
# environment:
#
#   terraform init \
#     -backend-config="bucket=<state-bucket>" \
#     -backend-config="region=<region>" \
#     -backend-config="key=wavepilot/<environment>.tfstate"
terraform {
  backend "s3" {
    encrypt = true
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(var.tags, {
      Project     = var.project_name
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}
