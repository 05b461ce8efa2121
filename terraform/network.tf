# Optional private deployment (var.private_deployment): every function in private subnets,
# reaching the AWS services it uses through VPC endpoints. Slack and the callback receivers are
# on the internet: the private subnets need a NAT gateway for slack_app, slack_notifier and
# callback_handler (docs/DEPLOY.md).
locals {
  # Interface endpoints for every AWS API the functions call (iam.tf); DynamoDB is a gateway.
  interface_endpoints = toset(var.private_deployment ? [
    "sqs", "events", "states", "secretsmanager", "kms", "mgn", "ec2", "lambda", "xray", "sts",
  ] : [])
}

data "aws_vpc" "private" {
  count = var.private_deployment ? 1 : 0
  id    = var.vpc_id
}

resource "aws_security_group" "lambda" {
  count = var.private_deployment ? 1 : 0

  name        = "${local.name_prefix}-lambda"
  description = "Wavepilot functions: HTTPS out only"
  vpc_id      = var.vpc_id

  egress {
    description = "HTTPS to the VPC endpoints, Slack and callback receivers (through the NAT)"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"] #checkov:skip=CKV_AWS_382:Slack's API and the operators' callback URLs are on the internet with no fixed addresses; egress is HTTPS only.
  }

  lifecycle {
    precondition {
      condition     = var.vpc_id != null && length(var.private_subnet_ids) >= 2
      error_message = "private_deployment needs vpc_id and at least two private_subnet_ids."
    }
  }
}

resource "aws_security_group" "endpoints" {
  count = var.private_deployment ? 1 : 0

  name        = "${local.name_prefix}-endpoints"
  description = "Wavepilot VPC interface endpoints: HTTPS from the functions"
  vpc_id      = var.vpc_id

  ingress {
    description     = "HTTPS from the Wavepilot functions"
    from_port       = 443
    to_port         = 443
    protocol        = "tcp"
    security_groups = [aws_security_group.lambda[0].id]
  }

  egress {
    description = "Responses stay in the VPC"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = [data.aws_vpc.private[0].cidr_block]
  }
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.interface_endpoints

  vpc_id              = var.vpc_id
  service_name        = "com.amazonaws.${var.aws_region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = var.private_subnet_ids
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true
}

resource "aws_vpc_endpoint" "dynamodb" {
  count = var.private_deployment ? 1 : 0

  vpc_id            = var.vpc_id
  service_name      = "com.amazonaws.${var.aws_region}.dynamodb"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = var.private_route_table_ids
}
