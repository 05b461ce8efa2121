"""Create the AWS resources the pipeline needs, by the names Terraform gives them.

Used by the embedded runtime and by tests; Terraform creates the same resources in AWS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestration.naming import ResourceNames

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

REQUEST_MAX_RECEIVE_COUNT = 5
REQUEST_VISIBILITY_TIMEOUT = 60
# The notifier's timeout is 60 s on AWS; SQS wants the visibility timeout at least that long.
STATUS_VISIBILITY_TIMEOUT = 360


@dataclass(frozen=True, slots=True)
class ProvisionedResources:
    request_queue_url: str
    request_queue_arn: str
    dead_letter_queue_url: str
    table_name: str
    event_bus_name: str
    event_bus_arn: str
    slack_status_queue_url: str
    slack_status_queue_arn: str
    slack_status_dead_letter_queue_url: str
    slack_priority_queue_url: str
    slack_priority_queue_arn: str
    slack_priority_dead_letter_queue_url: str
    # report_github_progress's queue: created always (as in Terraform), fed only when the
    # system is configured with a GitHub repository (SystemOptions.github).
    github_progress_queue_url: str
    github_progress_queue_arn: str
    github_progress_dead_letter_queue_url: str


def _queue(
    sqs: SQSClient, name: str, attributes: Mapping[QueueAttributeNameType, str] | None = None
) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes or {})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def provision(
    names: ResourceNames, *, sqs: SQSClient, dynamodb: DynamoDBClient, events: EventBridgeClient
) -> ProvisionedResources:
    dlq_url, dlq_arn = _queue(sqs, names.request_dead_letter_queue)
    queue_url, queue_arn = _queue(
        sqs,
        names.request_queue,
        {
            "VisibilityTimeout": str(REQUEST_VISIBILITY_TIMEOUT),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(REQUEST_MAX_RECEIVE_COUNT)}
            ),
        },
    )
    dynamodb.create_table(
        TableName=names.state_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gsi1pk", "AttributeType": "S"},
            {"AttributeName": "gsi1sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    dynamodb.update_time_to_live(
        TableName=names.state_table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )
    bus_arn = events.create_event_bus(Name=names.event_bus)["EventBusArn"]
    status_url, status_arn, status_dlq_url = _status_queue(
        sqs, names.slack_status_queue, names.slack_status_dead_letter_queue
    )
    priority_url, priority_arn, priority_dlq_url = _fifo_queue(
        sqs, names.slack_priority_queue, names.slack_priority_dead_letter_queue
    )
    github_url, github_arn, github_dlq_url = _fifo_queue(
        sqs, names.github_progress_queue, names.github_progress_dead_letter_queue
    )
    return ProvisionedResources(
        request_queue_url=queue_url,
        request_queue_arn=queue_arn,
        dead_letter_queue_url=dlq_url,
        table_name=names.state_table,
        event_bus_name=names.event_bus,
        event_bus_arn=bus_arn,
        slack_status_queue_url=status_url,
        slack_status_queue_arn=status_arn,
        slack_status_dead_letter_queue_url=status_dlq_url,
        slack_priority_queue_url=priority_url,
        slack_priority_queue_arn=priority_arn,
        slack_priority_dead_letter_queue_url=priority_dlq_url,
        github_progress_queue_url=github_url,
        github_progress_queue_arn=github_arn,
        github_progress_dead_letter_queue_url=github_dlq_url,
    )


def _status_queue(sqs: SQSClient, name: str, dead_letter_name: str) -> tuple[str, str, str]:
    """The bot's status queue (standard: read in batches within a window) and its DLQ: (URL,
    ARN, DLQ URL), as terraform/sqs.tf creates them."""
    dlq_url, dlq_arn = _queue(sqs, dead_letter_name, {})
    url, arn = _queue(
        sqs,
        name,
        {
            "VisibilityTimeout": str(STATUS_VISIBILITY_TIMEOUT),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(REQUEST_MAX_RECEIVE_COUNT)}
            ),
        },
    )
    return url, arn, dlq_url


def _fifo_queue(sqs: SQSClient, name: str, dead_letter_name: str) -> tuple[str, str, str]:
    """A FIFO queue EventBridge feeds (the bot's priority queue, the GitHub progress queue)
    and its FIFO DLQ: (URL, ARN, DLQ URL), as terraform/sqs.tf creates them."""
    dlq_url, dlq_arn = _queue(
        sqs, dead_letter_name, {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )
    url, arn = _queue(
        sqs,
        name,
        {
            "FifoQueue": "true",
            # EventBridge sends to a FIFO queue only with content-based deduplication.
            "ContentBasedDeduplication": "true",
            "VisibilityTimeout": str(STATUS_VISIBILITY_TIMEOUT),
            "RedrivePolicy": json.dumps(
                {
                    "deadLetterTargetArn": dlq_arn,
                    "maxReceiveCount": str(REQUEST_MAX_RECEIVE_COUNT),
                }
            ),
        },
    )
    return url, arn, dlq_url
