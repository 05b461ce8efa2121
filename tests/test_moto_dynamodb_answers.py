"""DynamoDB's answers on the local runtime: item operations dumped as they are, unchanged.

moto serializes every DynamoDB answer through botocore's shape model, value by value; the
runtime (``moto_patches``) dumps item operations' results, already DynamoDB's JSON, as they
are. The answers must stay moto's: the same operations against a table answered by the fast
path, then against a new one answered by moto's serializer, give the same responses through
boto3 (sets, nested maps, pages, ALL_OLD, transactions, batches; binary values, which the
serializer keeps answering).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from orchestration.local.runtime import moto_patches, start_local_aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

REGION = "us-east-1"


TABLE = "state"


def _create_table(client: DynamoDBClient) -> None:
    client.create_table(
        TableName=TABLE,
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


@pytest.fixture
def dynamodb() -> Iterator[DynamoDBClient]:
    with start_local_aws(poll_event_sources=False) as runtime:
        yield boto3.client("dynamodb", endpoint_url=runtime.endpoint_url, region_name=REGION)


def _item(n: int) -> dict[str, Any]:
    """Odd items hold binary values (answered by moto's serializer), even ones none."""
    binary: dict[str, Any] = {"b": {"B": b"\x00\x01binary"}, "bs": {"BS": [b"x", b"y"]}}
    return {
        **(binary if n % 2 else {}),
        "pk": {"S": "MIGRATION#m1"},
        "sk": {"S": f"STEP#{n:03d}"},
        "n": {"N": str(n)},
        "f": {"N": "1.5"},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2"]},
        "ok": {"BOOL": True},
        "none": {"NULL": True},
        "map": {"M": {"list": {"L": [{"S": "x"}, {"N": "2"}, {"M": {"deep": {"S": "y"}}}]}}},
    }


def _operations(client: DynamoDBClient, table: str) -> list[dict[str, Any]]:
    """The same calls against ``table``: their responses, without request metadata."""
    answers: list[Any] = []
    for n in range(5):
        answers.append(client.put_item(TableName=table, Item=_item(n)))
    key = {"pk": {"S": "MIGRATION#m1"}, "sk": {"S": "STEP#001"}}
    answers.append(client.get_item(TableName=table, Key=key, ConsistentRead=True))
    answers.append(client.get_item(TableName=table, Key={**key, "sk": {"S": "none"}}))
    answers.append(
        client.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="ADD n :one SET s = :s",
            ExpressionAttributeValues={":one": {"N": "1"}, ":s": {"S": "text"}},
            ReturnValues="ALL_NEW",
        )
    )
    answers.append(
        client.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET s = :s",
            ExpressionAttributeValues={":s": {"S": "again"}},
            ReturnValues="UPDATED_OLD",
        )
    )
    answers.append(
        client.put_item(TableName=table, Item=_item(2), ReturnValues="ALL_OLD"),
    )
    pages = client.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "MIGRATION#m1"}},
        PaginationConfig={"PageSize": 2},
    )
    answers.extend(pages)
    answers.append(client.scan(TableName=table, Limit=3))
    answers.append(
        client.batch_get_item(
            RequestItems={table: {"Keys": [key, {**key, "sk": {"S": "STEP#003"}}]}}
        )
    )
    answers.append(
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": _item(9)}},
                {"Delete": {"TableName": table, "Key": {**key, "sk": {"S": "STEP#004"}}}},
            ]
        )
    )
    answers.append(
        client.delete_item(
            TableName=table, Key={**key, "sk": {"S": "STEP#000"}}, ReturnValues="ALL_OLD"
        )
    )
    for answer in answers:
        answer.pop("ResponseMetadata", None)
    return answers


def test_item_operations_answer_as_moto_serializes_them(
    dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    dumped: list[str] = []
    content_type = moto_patches._dynamodb_content_type

    def noted(operation: Any) -> str:  # called by the fast path only
        dumped.append(operation.name)
        return content_type(operation)

    monkeypatch.setattr(moto_patches, "_dynamodb_content_type", noted)
    _create_table(dynamodb)
    fast = _operations(dynamodb, TABLE)
    dynamodb.delete_table(TableName=TABLE)
    _create_table(dynamodb)
    monkeypatch.setattr(moto_patches, "_PLAIN_JSON_RESULTS", frozenset())
    serialized = _operations(dynamodb, TABLE)

    assert fast == serialized
    # AND the item operations without binary values were dumped as they are
    assert {"PutItem", "GetItem", "UpdateItem", "Query"} <= set(dumped), dumped
    # AND the answers carry what was written (the comparison is not of two empty lists)
    assert any(answer.get("Item", {}).get("b") == {"B": b"\x00\x01binary"} for answer in fast)
    assert sum(len(answer.get("Items", [])) for answer in fast) >= 5
