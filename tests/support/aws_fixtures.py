"""Provisioned emulated AWS (moto, in-process) and SQS events shaped as Lambda receives them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orchestration.adapters import aws
from orchestration.local.provision import ProvisionedResources, provision
from orchestration.naming import ResourceNames

REGION = "us-east-1"


@dataclass
class EmulatedAws:
    resources: ProvisionedResources
    sqs: Any
    events: Any
    dynamodb: Any
    captured_events_url: str

    def captured(self) -> list[dict[str, Any]]:
        """Every event put on the bus so far (delivered by a catch-all rule to a queue)."""
        events: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=self.captured_events_url, MaxNumberOfMessages=10
        ).get("Messages", []):
            for message in batch:
                events.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.captured_events_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return events

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.sqs.receive_message(  # type: ignore[no-any-return]
            QueueUrl=self.resources.dead_letter_queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
        ).get("Messages", [])


@pytest.fixture
def emulated_aws(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedAws]:
    names = ResourceNames(environment="test")
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        resources = provision(names, sqs=sqs, dynamodb=dynamodb, events=events)
        captured_url = sqs.create_queue(QueueName="captured-events")["QueueUrl"]
        captured_arn = sqs.get_queue_attributes(QueueUrl=captured_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(
            Name="capture-all",
            EventBusName=resources.event_bus_name,
            EventPattern=json.dumps({"source": ["wavepilot.migrations"]}),
        )
        events.put_targets(
            Rule="capture-all",
            EventBusName=resources.event_bus_name,
            Targets=[{"Id": "capture", "Arn": captured_arn}],
        )
        for key, value in {
            "EVENTBRIDGE_BUS_NAME": resources.event_bus_name,
            "DYNAMODB_TABLE_NAME": resources.table_name,
            "SQS_QUEUE_URL": resources.request_queue_url,
            "REQUEST_DLQ_URL": resources.dead_letter_queue_url,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "WavepilotTest",
        }.items():
            monkeypatch.setenv(key, value)
        aws.reset()
        try:
            yield EmulatedAws(resources, sqs, events, dynamodb, captured_url)
        finally:
            aws.reset()


def sqs_event(*bodies: str, queue_arn: str, receive_count: int = 1) -> dict[str, Any]:
    """An SQS event as the Lambda event source mapping delivers it."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"handle-{uuid.uuid4()}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": str(receive_count),
                    "SentTimestamp": "1764158400000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1764158400001",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for body in bodies
        ]
    }
