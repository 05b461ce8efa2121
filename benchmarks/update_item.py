"""One UpdateItem's CPU on the local runtime, with and without its moto patch, in one run.

`python -m benchmarks.update_item [--rounds 10]`

A migration record as the pipeline keeps it (25 history entries, about 6 KB) is updated as a
step's report updates it (a sequence number, the history appended, ``UPDATED_NEW``), then
trimmed back, on the local runtime; rounds of 50 such pairs alternate between the runtime's
patches and moto's own ``DynamoDBBackend.update_item`` and backend ``copy`` (which deep-copies
the item for a table's stream first), and the process CPU of each is added up. Prints the CPU
per UpdateItem each way and the ratio (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import boto3
import pytest

from orchestration.local.runtime import MOTO_PATCH_POINTS, start_local_aws
from orchestration.local.runtime.moto_patches import (
    ORIGINAL_ATTRIBUTE,
    UPDATE_COPY_PATCH_POINTS,
)

UPDATE_ITEM = "moto.dynamodb.models.DynamoDBBackend.update_item"
PAIRS_PER_ROUND = 50
KEY = {"pk": {"S": "MIGRATION#bench"}, "sk": {"S": "META"}}
ENTRY = {
    "M": {
        "step": {"S": "ValidateInput"},
        "status": {"S": "SUCCEEDED"},
        "message": {"S": "prerequisites met; MGN source server s-0123456789abcdef0 " * 2},
        "at": {"S": "2027-03-01T08:00:00+00:00"},
    }
}


def _report_and_trim(client: Any) -> None:
    client.update_item(
        TableName="state",
        Key=KEY,
        UpdateExpression=(
            "ADD seq :n SET updatedAt = :now, #h = list_append(if_not_exists(#h, :e), :entry)"
        ),
        ConditionExpression=(
            "attribute_exists(pk) AND (attribute_not_exists(#h) OR size(#h) < :limit)"
        ),
        ExpressionAttributeNames={"#h": "history"},
        ExpressionAttributeValues={
            ":n": {"N": "1"},
            ":now": {"S": "2027-03-01T08:00:00+00:00"},
            ":e": {"L": []},
            ":entry": {"L": [ENTRY]},
            ":limit": {"N": "1000"},
        },
        ReturnValues="UPDATED_NEW",
    )
    client.update_item(
        TableName="state",
        Key=KEY,
        UpdateExpression="REMOVE #h[0]",
        ExpressionAttributeNames={"#h": "history"},
    )


def _round(client: Any) -> float:
    started = time.process_time()
    for _ in range(PAIRS_PER_ROUND):
        _report_and_trim(client)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    point = next(p for p in MOTO_PATCH_POINTS if p.symbol == UPDATE_ITEM)
    patched = as_moto = 0.0
    with start_local_aws(poll_event_sources=False) as runtime:
        client = boto3.client(
            "dynamodb", endpoint_url=runtime.endpoint_url, region_name="us-east-1"
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
        client.put_item(
            TableName="state",
            Item={**KEY, "history": {"L": [ENTRY] * 25}, "seq": {"N": "25"}},
        )
        for _ in range(args.rounds):
            patched += _round(client)
            with pytest.MonkeyPatch.context() as moto_own:
                defined = point.owner.__dict__[point.attribute]
                moto_own.setattr(
                    point.owner, point.attribute, getattr(defined, ORIGINAL_ATTRIBUTE, defined)
                )
                for module_point in UPDATE_COPY_PATCH_POINTS:
                    moto_own.setattr(
                        module_point._module(), module_point.name, module_point.expected
                    )
                as_moto += _round(client)
    updates = args.rounds * PAIRS_PER_ROUND * 2
    print(
        f"UpdateItem of a 25-entry migration record, {updates} each way, alternating rounds: "
        f"moto's (the item deep-copied) {1000 * as_moto / updates:.2f} ms CPU, "
        f"patched {1000 * patched / updates:.2f} ms: {as_moto / patched:.2f}x"
    )


if __name__ == "__main__":
    main()
