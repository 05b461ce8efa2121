"""DynamoDB writes of one item are atomic on the local runtime, as on AWS.

moto's server answers requests on threads and its DynamoDB backend has no lock: two
UpdateItems of one item interleave, an increment is lost or an item another thread is writing
is deep-copied mid-write (a 500, "dictionary changed size during iteration"). The runtime
serves one DynamoDB request at a time (``moto_patches``). boto3 without retries against the
runtime's moto server, from threads, as the Lambdas and the bot call it.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from orchestration.local.runtime import start_local_aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

REGION = "us-east-1"
WRITERS, WRITES_EACH = 4, 150
KEY = {"pk": {"S": "counter"}, "sk": {"S": "META"}}


@pytest.fixture
def dynamodb() -> Iterator[DynamoDBClient]:
    with start_local_aws(poll_event_sources=False) as runtime:
        client: DynamoDBClient = boto3.client(
            "dynamodb",
            endpoint_url=runtime.endpoint_url,
            region_name=REGION,
            # No retries: a 500 the SDK would retry must show here.
            config=Config(retries={"total_max_attempts": 1}, max_pool_connections=WRITERS),
        )
        client.create_table(
            TableName="state",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def test_concurrent_updates_of_one_item_are_each_applied_once(dynamodb: DynamoDBClient) -> None:
    def write(writer: int) -> None:
        for n in range(WRITES_EACH):
            # Each write adds an attribute too: the item's size changes under other writers.
            dynamodb.update_item(
                TableName="state",
                Key=KEY,
                UpdateExpression="SET #w = :w ADD writes :one",
                ExpressionAttributeNames={"#w": f"w{writer}_{n}"},
                ExpressionAttributeValues={":w": {"N": str(n)}, ":one": {"N": "1"}},
            )

    with ThreadPoolExecutor(WRITERS) as pool:
        for done in [pool.submit(write, writer) for writer in range(WRITERS)]:
            done.result()  # a 500 raises here

    item = dynamodb.get_item(TableName="state", Key=KEY, ConsistentRead=True)["Item"]
    assert item["writes"] == {"N": str(WRITERS * WRITES_EACH)}
    assert len(item) == 2 + 1 + WRITERS * WRITES_EACH


def test_a_condition_checked_by_two_writers_at_once_passes_for_one(
    dynamodb: DynamoDBClient,
) -> None:
    """Optimistic versioning, as the thread store and the launch ledger write: each writer
    reads the version and writes version + 1 on condition; every version is won once."""
    dynamodb.put_item(TableName="state", Item={**KEY, "version": {"N": "0"}})
    won: list[int] = []

    def write(writer: int) -> None:
        for _ in range(WRITES_EACH):
            seen = int(
                dynamodb.get_item(TableName="state", Key=KEY, ConsistentRead=True)["Item"][
                    "version"
                ]["N"]
            )
            try:
                dynamodb.update_item(
                    TableName="state",
                    Key=KEY,
                    UpdateExpression="SET version = :next",
                    ConditionExpression="version = :seen",
                    ExpressionAttributeValues={
                        ":seen": {"N": str(seen)},
                        ":next": {"N": str(seen + 1)},
                    },
                )
                won.append(seen + 1)
            except dynamodb.exceptions.ConditionalCheckFailedException:
                pass

    with ThreadPoolExecutor(WRITERS) as pool:
        for done in [pool.submit(write, writer) for writer in range(WRITERS)]:
            done.result()

    final = int(dynamodb.get_item(TableName="state", Key=KEY)["Item"]["version"]["N"])
    assert sorted(won) == list(range(1, final + 1))
