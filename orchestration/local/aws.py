"""Emulated AWS (moto in server mode) on 127.0.0.1, provisioned like the real deployment."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from moto.server import ThreadedMotoServer

from orchestration.naming import ResourceNames

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

LOCAL_REGION = "us-east-1"
# moto's default account; the credentials are moto's documented placeholders.
LOCAL_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's placeholder, not a secret
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": LOCAL_REGION,
    "AWS_DEFAULT_REGION": LOCAL_REGION,
}
MAX_RECEIVE_COUNT = 5


@dataclass(frozen=True, slots=True)
class EmbeddedAws:
    endpoint_url: str
    names: ResourceNames
    request_queue_url: str
    dead_letter_queue_url: str

    def sqs(self) -> SQSClient:
        return boto3.client("sqs", endpoint_url=self.endpoint_url, region_name=LOCAL_REGION)


@contextmanager
def embedded_aws(names: ResourceNames | None = None) -> Iterator[EmbeddedAws]:
    """Start moto on an ephemeral loopback port, point the AWS environment at it, provision.

    The process environment is restored afterwards, so callers (tests) are left as found.
    """
    names = names or ResourceNames()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on the demo's screen
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    overrides = {**LOCAL_ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint, "MOTO_PORT": str(port)}
    saved = {key: os.environ.get(key) for key in (*overrides, "SQS_QUEUE_URL")}
    os.environ.update(overrides)
    try:
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=LOCAL_REGION)
        dlq_url = sqs.create_queue(QueueName=names.request_dead_letter_queue)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        queue_url = sqs.create_queue(
            QueueName=names.request_queue,
            Attributes={
                "VisibilityTimeout": "60",
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
                ),
            },
        )["QueueUrl"]
        os.environ["SQS_QUEUE_URL"] = queue_url
        yield EmbeddedAws(endpoint, names, queue_url, dlq_url)
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
