"""DynamoDB Query on the local runtime: moto's answers, reading only the queried partition.

moto's base-table Query sorts every item of the table (``Table.all_items``) to keep the ones
of its hash key; the runtime (``moto_patches``) has it read that partition only. The answers
must stay moto's (and DynamoDB's): key conditions, order, limits and pages, filters,
projections, an index. boto3 against the runtime's moto server, as the system calls it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto.dynamodb.models.table import Table

from orchestration.local.runtime import MOTO_PATCH_POINTS, start_local_aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

REGION = "us-east-1"
PARTITIONS, PER_PARTITION = 20, 15


@pytest.fixture
def dynamodb() -> Iterator[DynamoDBClient]:
    with start_local_aws(poll_event_sources=False) as runtime:
        client: DynamoDBClient = boto3.client(
            "dynamodb", endpoint_url=runtime.endpoint_url, region_name=REGION
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
                {"AttributeName": "wave", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "byWave",
                    "KeySchema": [
                        {"AttributeName": "wave", "KeyType": "HASH"},
                        {"AttributeName": "pk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for p in range(PARTITIONS):
            for n in range(PER_PARTITION):
                client.put_item(
                    TableName="state",
                    Item={
                        "pk": {"S": f"MIG#{p:03d}"},
                        "sk": {"S": f"{'STEP' if n % 3 else 'AUDIT'}#{n:04d}"},
                        "n": {"N": str(n)},
                        "wave": {"S": f"wave-{p % 2}"},
                    },
                )
        yield client


def _keys(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(item["pk"]["S"], item["sk"]["S"]) for item in items]


def test_a_query_answers_as_moto_does_from_its_partition_only(
    dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    scans = 0
    original = next(p for p in MOTO_PATCH_POINTS if p.symbol.endswith("Table.all_items"))
    moto_all_items = original.original()

    def counting_all_items(self: Table) -> list[Any]:
        nonlocal scans
        scans += 1
        return moto_all_items(self)  # type: ignore[no-any-return]

    monkeypatch.setattr(original.owner, "all_items", original.replacement(counting_all_items))
    partition = "MIG#007"

    everything = dynamodb.query(
        TableName="state",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": partition}},
    )["Items"]
    steps_backwards = dynamodb.query(
        TableName="state",
        KeyConditionExpression="pk = :pk AND begins_with(sk, :step)",
        ExpressionAttributeValues={":pk": {"S": partition}, ":step": {"S": "STEP#"}},
        ScanIndexForward=False,
    )["Items"]
    first_page = dynamodb.query(
        TableName="state",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": partition}},
        Limit=4,
    )
    second_page = dynamodb.query(
        TableName="state",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": partition}},
        Limit=4,
        ExclusiveStartKey=first_page["LastEvaluatedKey"],
    )
    filtered = dynamodb.query(
        TableName="state",
        KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
        FilterExpression="n > :five",
        ProjectionExpression="sk",
        ExpressionAttributeValues={
            ":pk": {"S": partition},
            ":low": {"S": "STEP#0004"},
            ":high": {"S": "STEP#0011"},
            ":five": {"N": "5"},
        },
    )["Items"]
    nothing = dynamodb.query(
        TableName="state",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "MIG#999"}},
    )["Items"]
    assert scans == 0  # none of those Queries read the whole table

    expected = sorted(
        (partition, f"{'STEP' if n % 3 else 'AUDIT'}#{n:04d}") for n in range(PER_PARTITION)
    )
    assert _keys(everything) == expected
    assert _keys(steps_backwards) == sorted(
        (k for k in expected if k[1].startswith("STEP#")), reverse=True
    )
    assert _keys(first_page["Items"]) + _keys(second_page["Items"]) == expected[:8]
    assert [item["sk"]["S"] for item in filtered] == [
        "STEP#0007",
        "STEP#0008",
        "STEP#0010",
        "STEP#0011",
    ]
    assert nothing == []

    # An index's Query (only the items of its hash key: tests/test_moto_patches_scale.py) and a
    # Scan (moto's own, every item) answer as before.
    by_wave = dynamodb.query(
        TableName="state",
        IndexName="byWave",
        KeyConditionExpression="wave = :wave",
        ExpressionAttributeValues={":wave": {"S": "wave-1"}},
    )["Items"]
    assert len(by_wave) == PARTITIONS // 2 * PER_PARTITION
    assert dynamodb.scan(TableName="state", Select="COUNT")["Count"] == PARTITIONS * PER_PARTITION
