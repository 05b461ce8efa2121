"""TransactWriteItems on the local runtime: all conditions first, then all writes, under a lock.

boto3 against the runtime's moto server, as the system calls it (the launch ledger's
transactions). moto's own implementation deep-copies every table a transaction names and
restores the copies on failure; the runtime's replacement (``moto_patches``) must keep moto's
answers while touching only the transaction's items. Clients here never retry, so a 500
fails the test instead of being retried away.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models.table import Table

from orchestration.local.runtime import start_local_aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

REGION = "us-east-1"
STATE = "state"  # hash key pk
RANGED = "ranged"  # hash key pk, range key sk
THREADS = 8
TRANSACTIONS_PER_THREAD = 50
PLAIN_WRITERS = 2
PLAIN_WRITES_PER_WRITER = 100


def _client(endpoint_url: str | None = None) -> DynamoDBClient:
    config = Config(retries={"total_max_attempts": 1}, max_pool_connections=THREADS * 2)
    client: DynamoDBClient = boto3.client(
        "dynamodb", endpoint_url=endpoint_url, region_name=REGION, config=config
    )
    return client


def _create_tables(ddb: DynamoDBClient) -> None:
    ddb.create_table(
        TableName=STATE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.create_table(
        TableName=RANGED,
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
def ddb() -> Iterator[DynamoDBClient]:
    with start_local_aws(poll_event_sources=False) as runtime:
        client = _client(runtime.endpoint_url)
        _create_tables(client)
        yield client


def _item(pk: str, **attributes: str | int) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": pk}}
    for name, value in attributes.items():
        item[name] = {"N": str(value)} if isinstance(value, int) else {"S": value}
    return item


def _contents(ddb: DynamoDBClient, table: str = STATE) -> dict[str, dict[str, Any]]:
    """Every item of a table, by its key values joined with '/'."""
    items: list[dict[str, Any]] = []
    pages = ddb.get_paginator("scan").paginate(TableName=table)
    for page in pages:
        items.extend(page["Items"])
    return {"/".join(item[k]["S"] for k in ("pk", "sk") if k in item): item for item in items}


def _cancellation(error: ClientError) -> tuple[str, list[Any]]:
    return error.response["Error"]["Code"], list(error.response.get("CancellationReasons", []))


def test_a_failed_second_condition_writes_nothing_and_reports_each_items_reason(
    ddb: DynamoDBClient,
) -> None:
    ddb.put_item(TableName=STATE, Item=_item("held", n=1))
    with pytest.raises(ClientError) as cancelled:
        ddb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": STATE,
                        "Item": _item("fresh", n=1),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Update": {
                        "TableName": STATE,
                        "Key": {"pk": {"S": "held"}},
                        "UpdateExpression": "SET n = :two",
                        "ConditionExpression": "n = :zero",
                        "ExpressionAttributeValues": {":two": {"N": "2"}, ":zero": {"N": "0"}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
            ]
        )
    assert _cancellation(cancelled.value) == (
        "TransactionCanceledException",
        [
            {"Code": "None"},
            {
                "Code": "ConditionalCheckFailed",
                "Message": "The conditional request failed",
                "Item": _item("held", n=1),
            },
        ],
    )
    assert _contents(ddb) == {"held": _item("held", n=1)}


def test_a_transaction_applies_its_puts_updates_and_deletes_when_every_condition_holds(
    ddb: DynamoDBClient,
) -> None:
    for item in (_item("counter", n=1), _item("gone"), _item("guard")):
        ddb.put_item(TableName=STATE, Item=item)
    ddb.transact_write_items(
        TransactItems=[
            {
                "Put": {
                    "TableName": STATE,
                    "Item": _item("new", state="open"),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Update": {
                    "TableName": STATE,
                    "Key": {"pk": {"S": "counter"}},
                    "UpdateExpression": "SET n = n + :one",
                    "ConditionExpression": "n = :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
            {
                "Delete": {
                    "TableName": STATE,
                    "Key": {"pk": {"S": "gone"}},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
            {
                "ConditionCheck": {
                    "TableName": STATE,
                    "Key": {"pk": {"S": "guard"}},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
        ]
    )
    assert _contents(ddb) == {
        "new": _item("new", state="open"),
        "counter": _item("counter", n=2),
        "guard": _item("guard"),
    }


def _ranged(pk: str, sk: str, value: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}, "v": {"S": value}}


def _ranged_key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


# Transactions moto refuses, each after a setup; moto's own answer and final table contents
# (plain mock_aws, its whole-table rollback) are what the runtime must answer and leave.
SEED = [_ranged("a", "1", "old"), _ranged("gone", "1", "old")]
FAILING: dict[str, list[TransactWriteItemTypeDef]] = {
    "an update's expression fails on the item after other writes": [
        {"Put": {"TableName": RANGED, "Item": _ranged("a", "1", "new")}},
        {"Put": {"TableName": RANGED, "Item": _ranged("b", "1", "new")}},
        {"Delete": {"TableName": RANGED, "Key": _ranged_key("gone", "1")}},
        {
            "Update": {
                "TableName": RANGED,
                "Key": _ranged_key("c", "1"),
                "UpdateExpression": "SET v = #missing + :one",
                "ExpressionAttributeNames": {"#missing": "missing"},
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
    ],
    "a condition fails, with the old item": [
        {"Put": {"TableName": RANGED, "Item": _ranged("b", "1", "new")}},
        {
            "Delete": {
                "TableName": RANGED,
                "Key": _ranged_key("a", "1"),
                "ConditionExpression": "v = :new",
                "ExpressionAttributeValues": {":new": {"S": "new"}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
        {
            "ConditionCheck": {
                "TableName": RANGED,
                "Key": _ranged_key("nothing", "1"),
                "ConditionExpression": "attribute_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
    ],
    "two operations on one item": [
        {"Put": {"TableName": RANGED, "Item": _ranged("b", "1", "new")}},
        {"Delete": {"TableName": RANGED, "Key": _ranged_key("b", "1")}},
    ],
    "a condition check on a table that does not exist": [
        {"Put": {"TableName": RANGED, "Item": _ranged("b", "1", "new")}},
        {
            "ConditionCheck": {
                "TableName": "no-such-table",
                "Key": {"pk": {"S": "x"}},
                "ConditionExpression": "attribute_exists(pk)",
            }
        },
    ],
    "more than 100 items": [
        {"Put": {"TableName": RANGED, "Item": _ranged(f"many-{n}", "1", "new")}} for n in range(101)
    ],
}


def _refusal(ddb: DynamoDBClient, items: list[TransactWriteItemTypeDef]) -> dict[str, Any]:
    for item in SEED:
        ddb.put_item(TableName=RANGED, Item=item)
    with pytest.raises(ClientError) as refused:
        ddb.transact_write_items(TransactItems=items)
    response = refused.value.response
    return {
        "status": response["ResponseMetadata"]["HTTPStatusCode"],
        "error": response["Error"],
        "reasons": response.get("CancellationReasons"),
        "contents": _contents(ddb, RANGED),
    }


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("scenario", FAILING)
def test_a_refused_transaction_answers_and_leaves_the_table_as_moto_does(scenario: str) -> None:
    with mock_aws():
        moto_ddb = _client()
        _create_tables(moto_ddb)
        expected = _refusal(moto_ddb, FAILING[scenario])
    with start_local_aws(poll_event_sources=False) as runtime:
        ddb = _client(runtime.endpoint_url)
        _create_tables(ddb)
        assert _refusal(ddb, FAILING[scenario]) == expected
    assert expected["contents"] == {
        "/".join(k for k in (i["pk"]["S"], i["sk"]["S"])): i for i in SEED
    }


def _run_in_threads(workers: Sequence[Callable[[], None]]) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as error:  # reported by the test (pytest.fail too)
            errors.append(error)

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_transactions_and_single_writes_lose_nothing_and_never_fail(
    ddb: DynamoDBClient,
) -> None:
    # GIVEN a table with a few hundred items (moto copied all of them for every transaction)
    for batch in range(12):
        ddb.batch_write_item(
            RequestItems={
                STATE: [{"PutRequest": {"Item": _item(f"seed-{batch}-{n}")}} for n in range(25)]
            }
        )
    for thread in range(THREADS):
        ddb.put_item(TableName=STATE, Item=_item(f"counter-{thread}", n=0))

    def transactions(thread: int) -> None:
        for n in range(TRANSACTIONS_PER_THREAD):
            ddb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": STATE,
                            "Item": _item(f"txn-{thread}-{n}"),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": STATE,
                            "Key": {"pk": {"S": f"counter-{thread}"}},
                            "UpdateExpression": "SET n = n + :one",
                            "ConditionExpression": "n = :n",
                            "ExpressionAttributeValues": {
                                ":one": {"N": "1"},
                                ":n": {"N": str(n)},
                            },
                        }
                    },
                ]
            )
            # and one that is cancelled (moto put its copy back over everyone's writes)
            with pytest.raises(ClientError) as cancelled:
                ddb.transact_write_items(
                    TransactItems=[
                        {"Put": {"TableName": STATE, "Item": _item(f"never-{thread}-{n}")}},
                        {
                            "ConditionCheck": {
                                "TableName": STATE,
                                "Key": {"pk": {"S": "nobody"}},
                                "ConditionExpression": "attribute_exists(pk)",
                            }
                        },
                    ]
                )
            assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"

    def single_writes(writer: int) -> None:
        for n in range(PLAIN_WRITES_PER_WRITER):
            ddb.put_item(TableName=STATE, Item=_item(f"plain-{writer}-{n}"))

    # WHEN threads run transactions while others write single items
    errors = _run_in_threads(
        [functools.partial(transactions, t) for t in range(THREADS)]
        + [functools.partial(single_writes, w) for w in range(PLAIN_WRITERS)]
    )

    # THEN no request failed and every write is there, and nothing of a cancelled one
    assert errors == []
    contents = _contents(ddb)
    keys = set(contents)
    expected_txn = {f"txn-{t}-{n}" for t in range(THREADS) for n in range(TRANSACTIONS_PER_THREAD)}
    expected_plain = {
        f"plain-{w}-{n}" for w in range(PLAIN_WRITERS) for n in range(PLAIN_WRITES_PER_WRITER)
    }
    assert expected_txn - keys == set()
    assert expected_plain - keys == set()
    assert {key for key in keys if key.startswith("never-")} == set()
    assert {t: contents[f"counter-{t}"]["n"]["N"] for t in range(THREADS)} == {
        t: str(TRANSACTIONS_PER_THREAD) for t in range(THREADS)
    }
    assert len(keys) == 12 * 25 + THREADS + len(expected_txn) + len(expected_plain)


def _counting_deep_copies(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count copy.deepcopy calls by argument type (its recursion included)."""
    copied: Counter[str] = Counter()
    original = copy.deepcopy

    def counting(value: Any, *args: Any, **kwargs: Any) -> Any:
        copied[type(value).__name__] += 1
        return original(value, *args, **kwargs)

    monkeypatch.setattr(copy, "deepcopy", counting)
    return copied


def _transaction(ddb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """What one Put+Update+Delete transaction deep-copies; the table is left as it was."""
    ddb.put_item(TableName=STATE, Item=_item("updated", n=1))
    ddb.put_item(TableName=STATE, Item=_item("deleted"))
    with monkeypatch.context() as patch:
        copied = _counting_deep_copies(patch)
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": STATE, "Item": _item("put")}},
                {
                    "Update": {
                        "TableName": STATE,
                        "Key": {"pk": {"S": "updated"}},
                        "UpdateExpression": "SET n = n + :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {"Delete": {"TableName": STATE, "Key": {"pk": {"S": "deleted"}}}},
            ]
        )
    for key in ("put", "updated"):
        ddb.delete_item(TableName=STATE, Key={"pk": {"S": key}})
    return copied


def test_a_transaction_copies_only_its_own_items_whatever_the_table_size(
    ddb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = _transaction(ddb, monkeypatch)
    for batch in range(20):
        ddb.batch_write_item(
            RequestItems={
                STATE: [{"PutRequest": {"Item": _item(f"bulk-{batch}-{n}")}} for n in range(25)]
            }
        )
    large = _transaction(ddb, monkeypatch)
    # one item copied: the updated one's snapshot (an Update changes it in place); the Put's
    # and the Delete's are kept as they are (moto stores a new item, or only removes it), and
    # moto's own update copies nothing for a table without a stream
    assert small["Item"] == 1
    assert large == small
    assert Table.__name__ not in large


@pytest.mark.usefixtures("aws_env")
def test_canary_moto_transactions_still_copy_whole_tables_unless_patched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Plain mock_aws keeps moto's own TransactWriteItems, which deep-copies the table once
    per item naming it: when that stops, the runtime's replacement may be retired."""
    with mock_aws():
        ddb = _client()
        _create_tables(ddb)
        copied = _transaction(ddb, monkeypatch)
    assert copied[Table.__name__] > 0, (
        "moto.dynamodb.models.DynamoDBBackend.transact_write_items no longer deep-copies the "
        "table: re-check whether the runtime's replacement is still needed"
    )
