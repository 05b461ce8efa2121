"""moto patches that keep a large wave's reads from scanning everything (``moto_patches``).

An index Query reads only the items of its hash key values (not every item of the table,
sorted), a Query's results are not deep-copied in a request served under the DynamoDB lock
(nor sized twice, nor walked with moto's generic ``dynamo_to_dict``, nor searched for an XML
``<RequestId>``),
an EC2 lookup by instance ID copies only the reservations it keeps, and a resource's tags are
its own (not a pattern matched against every tag). Each answer must stay moto's: every test
asks the same questions with the patches and with moto's own methods put back, and compares.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

from orchestration.local.runtime import (
    LOCAL_ACCOUNT_ID,
    MOTO_PATCH_POINTS,
    MotoPatchPointMissingError,
    moto_patches,
    start_local_aws,
)
from orchestration.local.runtime.moto_patches import (
    DYNAMODB_ANSWER_PATCH_POINTS,
    ORIGINAL_ATTRIBUTE,
    QUERY_COPY_PATCH_POINTS,
    STATE_DATA_COPY_PATCH_POINTS,
    UPDATE_COPY_PATCH_POINTS,
    USER_AGENT_PATCH_POINTS,
    ModuleNamePatchPoint,
    MotoPatchPoint,
    _attribute_size,
    json_tree_copy,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_ec2.type_defs import FilterTypeDef

REGION = "us-east-1"
MIGRATIONS = 72
WAVES = 4
TABLE_QUERY = "moto.dynamodb.models.table.Table.query"
TABLE_ALL_ITEMS = "moto.dynamodb.models.table.Table.all_items"
ITEM_SIZE = "moto.dynamodb.models.dynamo_type.Item.size"
UPDATE_ITEM = "moto.dynamodb.models.DynamoDBBackend.update_item"
ENRICH_RESPONSE = "moto.core.responses.BaseResponse._enrich_response"
ACCOUNT_BACKEND = "moto.core.base_backend.BackendDict._create_account_specific_backend"
EC2_LOOKUPS = (
    "moto.ec2.models.instances.InstanceBackend.all_reservations",
    "moto.ec2.models.instances.InstanceBackend.get_reservations_by_instance_ids",
    "moto.ec2.models.instances.InstanceBackend.get_multi_instances_by_id",
    "moto.ec2.models.instances.InstanceBackend.get_instance",
    "moto.ec2.models.core.TaggedEC2Resource.get_tags",
)


def _point(symbol: str) -> MotoPatchPoint:
    return next(point for point in MOTO_PATCH_POINTS if point.symbol == symbol)


@contextmanager
def _moto_as_is(
    *symbols: str, module_points: tuple[ModuleNamePatchPoint, ...] = ()
) -> Iterator[None]:
    """moto's own methods (and module names) in place of these patches, for a while."""
    with pytest.MonkeyPatch.context() as patch:
        for symbol in symbols:
            point = _point(symbol)
            defined = point.owner.__dict__[point.attribute]
            # moto's own definition: a function, or a property or static method as it was
            patch.setattr(
                point.owner, point.attribute, getattr(defined, ORIGINAL_ATTRIBUTE, defined)
            )
        for module_point in module_points:
            patch.setattr(module_point._module(), module_point.name, module_point.expected)
        yield


def _answer(call: Callable[[], Any]) -> Any:
    """A call's answer without its metadata, or the error it raised (code and message)."""
    try:
        answer = call()
    except ClientError as error:
        return ("error", error.response["Error"]["Code"], error.response["Error"]["Message"])
    answer.pop("ResponseMetadata", None)
    return answer


# --------------------------------------------------------------------------- DynamoDB


def _thread_item(v: int) -> dict[str, Any]:
    """A wave's thread record: in one of WAVES index partitions, with repeated index sort
    keys (moto then orders by the table's keys), some without a sort key (not indexed)."""
    item: dict[str, Any] = {
        "pk": {"S": f"MIG#{v:03d}"},
        "sk": {"S": "SLACK"},
        "gsi1pk": {"S": f"WAVE#{v % WAVES}#THREADS"},
        "seq": {"N": str(v % 7)},
        "state": {"M": {"category": {"S": "DONE" if v % 3 else "WAITING"}, "n": {"N": str(v)}}},
        "tags": {"SS": [f"t{v % 5}", "all"]},
        "history": {"L": [{"S": f"step-{k}"} for k in range(v % 4)]},
    }
    if v % 11:
        item["gsi1sk"] = {"S": f"{(v * 7) % 40:03d}"}
    return item


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
                {"AttributeName": name, "AttributeType": kind}  # type: ignore[typeddict-item]
                for name, kind in (
                    ("pk", "S"),
                    ("sk", "S"),
                    ("gsi1pk", "S"),
                    ("gsi1sk", "S"),
                    ("lane", "N"),
                    ("status", "S"),
                )
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "gsi1",
                    "KeySchema": [
                        {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                        {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                },
                {
                    "IndexName": "byLane",  # a number hash key, no sort key, keys only
                    "KeySchema": [{"AttributeName": "lane", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
                {
                    "IndexName": "byStatus",
                    "KeySchema": [
                        {"AttributeName": "status", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["seq"]},
                },
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for v in range(MIGRATIONS):
            client.put_item(TableName="state", Item=_thread_item(v))
            client.put_item(
                TableName="state",
                Item={
                    "pk": {"S": f"MIG#{v:03d}"},
                    "sk": {"S": "META"},
                    # "1" and "1.0" are the same number: both in lane 1's partition
                    "lane": {"N": f"{v % 3}.0" if v % 2 else str(v % 3)},
                    "status": {"S": "PENDING" if v % 5 == 0 else "DECIDED"},
                    "seq": {"N": str(v)},
                },
            )
            for k in range(2):
                client.put_item(
                    TableName="state",
                    Item={"pk": {"S": f"MIG#{v:03d}"}, "sk": {"S": f"REPORT#{k}"}, "x": {"S": "y"}},
                )
        yield client


def _queries(dynamodb: DynamoDBClient) -> list[Any]:
    """Index Queries of every kind the system makes, and a few it does not."""
    answers: list[Any] = []

    def ask(**request: Any) -> Any:
        answer = _answer(lambda: dynamodb.query(TableName="state", **request))
        answers.append((request, answer))
        return answer

    def pages(**request: Any) -> None:
        start: dict[str, Any] | None = None
        for _ in range(100):
            answer = ask(**request, **({"ExclusiveStartKey": start} if start else {}))
            start = answer.get("LastEvaluatedKey") if isinstance(answer, dict) else None
            if not start:
                return
        raise AssertionError("pages do not end")

    wave = {"KeyConditionExpression": "gsi1pk = :w", "IndexName": "gsi1"}
    for w in range(WAVES + 1):  # and a partition with no items
        values = {":w": {"S": f"WAVE#{w}#THREADS"}}
        ask(**wave, ExpressionAttributeValues=values)
        ask(**wave, ExpressionAttributeValues=values, ScanIndexForward=False)
        for forward in (True, False):
            pages(**wave, ExpressionAttributeValues=values, Limit=4, ScanIndexForward=forward)
            pages(
                **wave,
                ExpressionAttributeValues={**values, ":c": {"S": "WAITING"}},
                FilterExpression="#s.category = :c",
                ExpressionAttributeNames={"#s": "state"},
                Limit=3,
                ScanIndexForward=forward,
            )
        ask(
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :w AND gsi1sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={
                **values,
                ":lo": {"S": "010"},
                ":hi": {"S": "025"},
                ":t": {"S": "t1"},
                ":one": {"N": "1"},
            },
            FilterExpression="contains(tags, :t) OR size(history) > :one",
            ProjectionExpression="pk, gsi1sk, history[0], #s.n",
            ExpressionAttributeNames={"#s": "state"},
        )
        ask(
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :w AND begins_with(gsi1sk, :p)",
            ExpressionAttributeValues={**values, ":p": {"S": "00"}},
            Select="COUNT",
        )
    for lane in ("0", "1", "1.0", "2", "7"):
        ask(
            IndexName="byLane",
            KeyConditionExpression="lane = :l",
            ExpressionAttributeValues={":l": {"N": lane}},
        )
        pages(
            IndexName="byLane",
            KeyConditionExpression="lane = :l",
            ExpressionAttributeValues={":l": {"N": lane}},
            Limit=5,
            ScanIndexForward=False,
        )
    for status in ("PENDING", "DECIDED"):
        pages(
            IndexName="byStatus",
            KeyConditionExpression="#st = :s",
            ExpressionAttributeNames={"#st": "status"},
            ExpressionAttributeValues={":s": {"S": status}},
            Limit=6,
        )
    # the old KeyConditions interface, and refusals
    ask(
        IndexName="gsi1",
        KeyConditions={
            "gsi1pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "WAVE#1#THREADS"}]}
        },
    )
    ask(
        IndexName="nope",
        KeyConditionExpression="gsi1pk = :w",
        ExpressionAttributeValues={":w": {"S": "WAVE#1#THREADS"}},
    )
    ask(
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :w",
        ExpressionAttributeValues={":w": {"S": "WAVE#1#THREADS"}},
        ConsistentRead=True,
    )
    # base-table Queries, for the deep copy's sake
    for v in (0, 5, 71, 99):
        pages(
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": f"MIG#{v:03d}"}},
            Limit=2,
        )
    return answers


def _counting_all_items(patch: pytest.MonkeyPatch) -> list[int]:
    """Counts the items moto's own all_items() lists (the whole table, sorted)."""
    point = _point(TABLE_ALL_ITEMS)
    moto_all_items = point.original()
    listed = [0]

    def counting(self: Table) -> list[Any]:
        items: list[Any] = moto_all_items(self)
        listed[0] += len(items)
        return items

    patch.setattr(point.owner, point.attribute, point.replacement(counting))
    return listed


def test_index_queries_answer_as_moto_does_without_listing_the_table(
    dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = _counting_all_items(monkeypatch)

    patched = _queries(dynamodb)
    assert listed == [0]  # no Query listed the whole table

    with _moto_as_is(TABLE_QUERY, TABLE_ALL_ITEMS, module_points=QUERY_COPY_PATCH_POINTS):
        as_moto = _queries(dynamodb)

    assert len(patched) == len(as_moto) > 100
    for (request, answer), (_, expected) in zip(patched, as_moto, strict=True):
        assert answer == expected, request
    # the questions were not trivial: items, pages, filters, errors
    answers = [answer for _, answer in patched]
    assert sum(len(a.get("Items", [])) for a in answers if isinstance(a, dict)) > 500
    assert sum(1 for a in answers if isinstance(a, dict) and "LastEvaluatedKey" in a) > 50
    errors = sorted(a[1] for a in answers if isinstance(a, tuple))
    assert errors == ["ResourceNotFoundException", "ValidationException"]  # index, read
    lane_one = [a for r, a in patched if r.get("ExpressionAttributeValues") == {":l": {"N": "1"}}]
    assert len(lane_one[0]["Items"]) == MIGRATIONS // 3  # "1" and "1.0" alike


def test_an_index_query_keeps_moto_order_when_an_index_key_has_two_types(
    dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an index sort key stored with two types (DynamoDB refuses it; moto stores it)
    # whose values compare neither less nor greater, so moto's sort keeps them in the order
    # it gets them; written in the reverse of the table's key order
    for v, value in ((202, {"N": "0"}), (201, {"BOOL": True}), (200, {"N": "1"})):
        dynamodb.put_item(
            TableName="state",
            Item={
                "pk": {"S": f"MIG#{v}"},
                "sk": {"S": "X"},
                "gsi1pk": {"S": "MIXED"},
                "gsi1sk": value,
            },
        )
    request: dict[str, Any] = {
        "TableName": "state",
        "IndexName": "gsi1",
        "KeyConditionExpression": "gsi1pk = :w",
        "ExpressionAttributeValues": {":w": {"S": "MIXED"}},
    }
    with _moto_as_is(TABLE_QUERY, TABLE_ALL_ITEMS, module_points=QUERY_COPY_PATCH_POINTS):
        as_moto = [item["pk"]["S"] for item in dynamodb.query(**request)["Items"]]
    listed = _counting_all_items(monkeypatch)

    # WHEN the index is queried for that partition
    mixed = [item["pk"]["S"] for item in dynamodb.query(**request)["Items"]]

    # THEN moto's own list, filtered, and moto's answer
    assert listed[0] > 0
    assert mixed == as_moto
    # (the items in the order they were written would have answered otherwise)
    monkeypatch.setattr(moto_patches, "_one_type_each", lambda items, names: True)
    unsorted = [item["pk"]["S"] for item in dynamodb.query(**request)["Items"]]
    assert sorted(unsorted) == sorted(as_moto)
    assert unsorted != as_moto
    # and a partition whose index keys have one type each lists nothing more
    listed[0] = 0
    request["ExpressionAttributeValues"] = {":w": {"S": "WAVE#1#THREADS"}}
    dynamodb.query(**request)
    assert listed == [0]


def test_an_index_querys_items_are_those_moto_keeps(dynamodb: DynamoDBClient) -> None:
    # What all_items() gives an index Query: the items of moto's whole list that pass moto's
    # own hash key check ("item_value != expected_value"), for a string and a number key.
    table = dynamodb_backends[LOCAL_ACCOUNT_ID][REGION].get_table("state")
    moto_all_items = _point(TABLE_ALL_ITEMS).original()
    for name, value in (("gsi1pk", {"S": "WAVE#2#THREADS"}), ("lane", {"N": "1.00"})):
        expected_value = DynamoType(value)
        conditions = ((name, expected_value),)
        queried = moto_patches._TableQuery(table, None, conditions, (name,), shallow_results=False)
        kept = moto_patches._index_query_items(table, queried, moto_all_items)
        everything = moto_all_items(table)
        moto_keeps = [
            item
            for item in everything
            if item.attrs.get(name) is not None and item.attrs[name] == expected_value
        ]
        assert 0 < len(kept) < len(everything)
        assert sorted(map(id, kept)) == sorted(map(id, moto_keeps))


def _recording_deepcopy(installed: Any, seen: Callable[[Any, Any], None]) -> Any:
    """A stand-in for a moto module's ``copy`` that answers as ``installed`` (the runtime's)
    and tells ``seen`` of each deep copy: what was copied, and what came back."""

    class _Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(installed, name)

        @staticmethod
        def deepcopy(x: Any, memo: Any = None) -> Any:
            result = installed.deepcopy(x, memo)
            seen(x, result)
            return result

    return _Recording()


def test_query_results_are_not_deep_copied_in_a_serialized_request(
    dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import moto.dynamodb.models.table as moto_table

    installed = moto_table.__dict__["copy"]  # the runtime's stand-in for the module
    copies: list[tuple[bool, bool]] = []  # (a list of items, the same items came back)

    def seen(x: Any, result: Any) -> None:
        if isinstance(x, list) and x and all(isinstance(i, Item) for i in x):
            copies.append((True, all(a is b for a, b in zip(x, result, strict=True))))

    monkeypatch.setattr(moto_table, "copy", _recording_deepcopy(installed, seen))
    # a request: served under the DynamoDB lock, the items are moto's own, unchanged
    answer = dynamodb.query(
        TableName="state",
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :w",
        ExpressionAttributeValues={":w": {"S": "WAVE#3#THREADS"}},
    )
    base = dynamodb.query(
        TableName="state",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "MIG#003"}},
    )
    assert copies == [(True, True), (True, True)]
    assert len(answer["Items"]) > 10
    assert len(base["Items"]) == 4
    table = dynamodb_backends[LOCAL_ACCOUNT_ID][REGION].get_table("state")
    stored = table.items[DynamoType({"S": "MIG#003"})][DynamoType({"S": "SLACK"})]
    assert stored.attrs["history"] == DynamoType(
        {"L": [{"S": "step-0"}, {"S": "step-1"}, {"S": "step-2"}]}
    )

    # the backend called outside a request (no lock held): moto's deep copies
    copies.clear()
    no_limit: Any = None
    items, _, _ = table.query(
        None,
        None,
        [],
        no_limit,
        no_limit,  # no ExclusiveStartKey
        True,
        None,
        index_name="gsi1",
        hash_key_conditions=[("gsi1pk", DynamoType({"S": "WAVE#3#THREADS"}))],
    )
    assert copies == [(True, False)]
    assert items
    assert all(item is not stored for item in items)


def test_moto_still_only_reads_query_results_after_its_deep_copy() -> None:
    # What moto does to the results between the copy and the return: an index projection,
    # the filter, a projection expression (each reads an item or builds a new one).
    source = inspect.getsource(_point(TABLE_QUERY).original())
    tail = source[source.index("results = copy.deepcopy(results)") :]
    assert [line.strip() for line in tail.splitlines() if line.strip()] == [
        "results = copy.deepcopy(results)",
        "if index_name:",
        "index = self.get_index(index_name)",
        "results = [index.project(r) for r in results]",
        "if filter_expression is not None:",
        "results = [item for item in results if filter_expression.expr(item)]",
        "if projection_expressions:",
        "results = [r.project(projection_expressions) for r in results]",
        "return results, scanned_count, last_evaluated_key",
    ]


def _installed_stand_in(point: ModuleNamePatchPoint) -> Any:
    """What the module's name is bound to once the patches are installed (checked first)."""
    moto_patches.install_moto_patches()
    point.verify()
    assert point.is_installed(), f"{point.symbol}: the patch did not install"
    return point._module().__dict__[point.name]


@pytest.mark.parametrize("point", QUERY_COPY_PATCH_POINTS, ids=lambda point: point.symbol)
def test_canary_moto_still_deep_copies_query_results_through_its_copy_module(
    point: ModuleNamePatchPoint,
) -> None:
    stand_in = _installed_stand_in(point)
    assert stand_in.copy is copy.copy  # everything but deepcopy is copy's own
    assert stand_in.deepcopy([{"a": [1]}]) == [{"a": [1]}]
    assert stand_in.deepcopy([{"a": [1]}])[0] is not None


@pytest.mark.parametrize("point", UPDATE_COPY_PATCH_POINTS, ids=lambda point: point.symbol)
def test_canary_moto_still_copies_an_updated_item_through_its_copy_module(
    point: ModuleNamePatchPoint,
) -> None:
    stand_in = _installed_stand_in(point)
    assert stand_in.copy is copy.copy  # everything but deepcopy is copy's own
    item = Item(DynamoType({"S": "a"}), None, {"l": {"L": [{"S": "x"}]}})
    copied = stand_in.deepcopy(item)  # no update served: copy.deepcopy's own
    assert copied is not item
    assert copied.attrs["l"] == item.attrs["l"]


def _history_updates(dynamodb: DynamoDBClient, key: dict[str, Any]) -> list[Any]:
    """A record's updates as the reporter makes them (history appended, a sequence number
    allocated, the new values returned), a refused condition, an update of a new item."""
    answers = []
    for n in range(4):

        def update(n: int = n) -> Any:
            return dynamodb.update_item(
                TableName="state",
                Key=key,
                UpdateExpression="ADD seq :one SET #h = list_append(if_not_exists(#h, :e), :n)",
                ConditionExpression="attribute_not_exists(#h) OR size(#h) < :limit",
                ExpressionAttributeNames={"#h": "history"},
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":e": {"L": []},
                    ":n": {"L": [{"M": {"step": {"S": f"s{n}"}}}]},
                    ":limit": {"N": "3"},
                },
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )

        answers.append(_answer(update))
    answers.append(_answer(lambda: dynamodb.get_item(TableName="state", Key=key)))
    return answers


def test_an_updated_item_is_not_copied_for_a_table_without_a_stream_and_answers_as_motos(
    dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import moto.dynamodb.models as moto_models

    installed = moto_models.__dict__["copy"]  # the runtime's stand-in for the module
    copied: list[bool] = []  # per item deep-copied by update_item: whether a copy came back

    def seen(x: Any, result: Any) -> None:
        if isinstance(x, Item):
            copied.append(result is not x)

    monkeypatch.setattr(moto_models, "copy", _recording_deepcopy(installed, seen))
    key = {"pk": {"S": "R"}, "sk": {"S": "1"}}
    patched = _history_updates(dynamodb, key)
    # the state table has no stream: the item was not copied by the three updates that found
    # it (the first created it; the last was refused, after the copy moto takes first)
    assert copied == [False, False, False]
    dynamodb.delete_item(TableName="state", Key=key)
    with _moto_as_is(UPDATE_ITEM, module_points=UPDATE_COPY_PATCH_POINTS):
        as_moto = _history_updates(dynamodb, key)
    assert patched == as_moto
    assert patched[3][1] == "ConditionalCheckFailedException"  # the history was full


def test_an_updated_item_of_a_table_with_a_stream_gives_the_stream_its_old_image(
    dynamodb: DynamoDBClient,
) -> None:
    dynamodb.create_table(
        TableName="streamed",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    key = {"pk": {"S": "a"}}
    dynamodb.put_item(TableName="streamed", Item={**key, "v": {"L": [{"S": "old"}]}})
    dynamodb.update_item(
        TableName="streamed",
        Key=key,
        UpdateExpression="SET v = list_append(v, :n)",
        ExpressionAttributeValues={":n": {"L": [{"S": "new"}]}},
    )

    table = dynamodb_backends[LOCAL_ACCOUNT_ID][REGION].get_table("streamed")
    assert table.stream_shard is not None
    update = table.stream_shard.items[-1].to_json()["dynamodb"]
    assert update["OldImage"]["v"] == {"L": [{"S": "old"}]}
    assert update["NewImage"]["v"] == {"L": [{"S": "old"}, {"S": "new"}]}


@pytest.mark.parametrize("point", STATE_DATA_COPY_PATCH_POINTS, ids=lambda point: point.symbol)
def test_canary_the_interpreter_still_copies_state_data_through_its_copy_module(
    point: ModuleNamePatchPoint,
) -> None:
    stand_in = _installed_stand_in(point)
    assert stand_in.copy is copy.copy  # everything but deepcopy is copy's own
    document = {"a": [1, {"b": None}]}
    assert stand_in.deepcopy(document) == document  # no runtime: copy.deepcopy's own
    assert stand_in.deepcopy(document)["a"] is not document["a"]


class _Opaque:
    def __init__(self, items: list[int]) -> None:
        self.items = items

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Opaque) and other.items == self.items

    __hash__ = None  # type: ignore[assignment]


def test_a_json_tree_copy_equals_deepcopys_and_shares_nothing_mutable() -> None:
    shared = {"k": [1]}
    document: dict[Any, Any] = {
        "text": "é",
        "n": 3,
        "x": 2.5,
        "flag": False,
        "none": None,
        "nested": [{"deep": [[], {}, [shared, shared]]}],
        "tuple": (1, [2]),
        "object": _Opaque([4]),
        7: "a non-string key",
    }

    copied = json_tree_copy(document)

    assert copied == copy.deepcopy(document)
    copied["nested"][0]["deep"][2][0]["k"].append(2)
    copied["tuple"][1].append(3)
    copied["object"].items.append(5)
    assert shared == {"k": [1]}  # nothing of the original changed
    assert document["tuple"] == (1, [2])
    assert document["object"] == _Opaque([4])
    assert copied["nested"][0]["deep"][2][1] == {"k": [1]}  # two references: two copies


_ATTRIBUTE_VALUES: tuple[dict[str, Any], ...] = (
    {"S": "plain"},
    {"S": "été ✓"},
    {"N": "-12.50"},
    {"B": b"\x00\x01binary"},
    {"BOOL": True},
    {"BOOL": False},
    {"NULL": True},
    {"SS": ["a", "bé"]},
    {"NS": ["1", "22.5"]},
    {"BS": [b"x", b"yz"]},
    {"L": []},
    {"M": {}},
    {
        "L": [
            {
                "M": {
                    "step": {"S": "PrepareSource"},
                    "at": {"N": "3"},
                    "tags": {"SS": ["x"]},
                    "more": {"L": [{"M": {"deep": {"L": [{"S": "é"}, {"NULL": True}]}}}]},
                }
            }
            for _ in range(20)
        ]
    },
    {"M": {"kéy": {"M": {"inner": {"BOOL": False}, "list": {"L": [{"N": "1"}, {"B": b"b"}]}}}}},
)


@pytest.mark.parametrize("value", _ATTRIBUTE_VALUES, ids=lambda value: next(iter(value)))
def test_an_attributes_size_is_the_size_moto_computes(value: dict[str, Any]) -> None:
    moto_size = _point("moto.dynamodb.models.dynamo_type.DynamoType.size").original()
    attribute = DynamoType(value)

    assert _attribute_size(attribute, moto_size) == moto_size(attribute)


def test_an_items_history_is_sized_as_moto_sizes_it() -> None:
    moto_size = _point("moto.dynamodb.models.dynamo_type.DynamoType.size").original()
    history = DynamoType(_ATTRIBUTE_VALUES[-2])

    assert _attribute_size(history, moto_size) == moto_size(history) > 20 * 30


@pytest.mark.parametrize("point", USER_AGENT_PATCH_POINTS, ids=lambda point: point.symbol)
def test_canary_botocore_still_sanitizes_user_agent_components_through_that_name(
    point: ModuleNamePatchPoint,
) -> None:
    sanitize = _installed_stand_in(point)
    for raw in ("Boto3", "md/pyimpl#CPython", "app/wavepilot local é", "#"):
        for allow_hash in (True, False):
            assert sanitize(raw, allow_hash) == point.expected(raw, allow_hash)


def test_canary_patch_points_check_the_code_they_rely_on() -> None:
    point = _point(TABLE_QUERY)
    point.verify()
    changed = dataclasses.replace(point, uses=(*point.uses, "something moto never had"))
    with pytest.raises(MotoPatchPointMissingError, match="something moto never had"):
        changed.verify()


# ------------------------------------------------------- DynamoDB answers (size, JSON, body)

ANSWER_PATCHES = (ITEM_SIZE, ENRICH_RESPONSE, ACCOUNT_BACKEND)


def _odd_item(v: int) -> dict[str, Any]:
    """Every kind of attribute value, binaries nested in maps and lists included."""
    return {
        "pk": {"S": "ODD"},
        "sk": {"S": f"{v:03d}"},
        "b": {"B": bytes([v, 0, 255])},
        "bs": {"BS": [b"x", bytes([v])]},
        "ns": {"NS": ["1", "2.5"]},
        "ss": {"SS": ["a", "b"]},
        "flag": {"BOOL": bool(v % 2)},
        "none": {"NULL": True},
        "m": {"M": {"inner": {"B": b"\x00\x01"}, "l": {"L": [{"N": "1"}, {"B": b"z"}, {"M": {}}]}}},
        "l": {"L": [{"S": "s"}, {"NULL": True}, {"L": []}]},
    }


def _big_item(v: int) -> dict[str, Any]:
    """Items of uneven sizes (100 KB to 390 KB): a Query's 1 MB page ends among them."""
    return {
        "pk": {"S": "BIG"},
        "sk": {"S": f"{v:03d}"},
        "blob": {"S": "x" * (100_000 + (v * 37_000) % 290_000)},
        "m": {"M": {"n": {"N": str(v)}, "s": {"SS": ["p" * (v % 50 + 1)]}}},
    }


def _answer_questions(dynamodb: DynamoDBClient) -> list[Any]:
    """Queries of every kind (pages cut by Limit and by the 1 MB size), item reads and writes
    returning values, refusals: the answers moto's dynamo_to_dict and Item.size shape."""
    answers: list[Any] = []

    def ask(name: str, call: Callable[[], Any]) -> Any:
        answer = _answer(call)
        answers.append((name, answer))
        return answer

    for asked, _ in _queries(dynamodb):
        ask(f"query {asked}", functools.partial(dynamodb.query, TableName="state", **asked))
    for forward in (True, False):
        start: dict[str, Any] | None = None
        for page in range(20):
            request: dict[str, Any] = {
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": "BIG"}},
                "ScanIndexForward": forward,
                **({"ExclusiveStartKey": start} if start else {}),
            }
            answer = ask(
                f"big page {page} {forward}",
                functools.partial(dynamodb.query, TableName="state", **request),
            )
            start = answer.get("LastEvaluatedKey")
            if not start:
                break
    ask(
        "odd items",
        lambda: dynamodb.query(
            TableName="state",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "ODD"}},
        ),
    )
    ask(
        "odd filtered and projected",
        lambda: dynamodb.query(
            TableName="state",
            KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :z",
            FilterExpression="attribute_exists(b) AND #f = :t",
            ProjectionExpression="sk, b, m.l[1], bs",
            ExpressionAttributeNames={"#f": "flag"},
            ExpressionAttributeValues={
                ":p": {"S": "ODD"},
                ":a": {"S": "001"},
                ":z": {"S": "005"},
                ":t": {"BOOL": True},
            },
        ),
    )
    key = {"pk": {"S": "ODD"}, "sk": {"S": "003"}}
    ask("get odd", lambda: dynamodb.get_item(TableName="state", Key=key))
    ask(
        "update odd",
        lambda: dynamodb.update_item(
            TableName="state",
            Key=key,
            UpdateExpression="SET m.inner = :b, #c = if_not_exists(#c, :zero) + :one",
            ConditionExpression="attribute_exists(pk) AND #f = :t",
            ExpressionAttributeNames={"#c": "count", "#f": "flag"},
            ExpressionAttributeValues={
                ":b": {"B": b"\x07"},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                ":t": {"BOOL": True},
            },
            ReturnValues="ALL_NEW",
        ),
    )
    ask(
        "failed condition",
        lambda: dynamodb.update_item(
            TableName="state",
            Key=key,
            UpdateExpression="SET x = :x",
            ConditionExpression="attribute_not_exists(pk)",
            ExpressionAttributeValues={":x": {"S": "y"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
    )
    ask("scan odd", lambda: dynamodb.scan(TableName="state", Limit=7))
    ask(
        "batch get",
        lambda: dynamodb.batch_get_item(
            RequestItems={"state": {"Keys": [key, {"pk": {"S": "BIG"}, "sk": {"S": "004"}}]}}
        ),
    )
    return answers


def test_dynamodb_answers_are_motos_with_the_answer_patches(
    dynamodb: DynamoDBClient,
) -> None:
    for v in range(12):
        dynamodb.put_item(TableName="state", Item=_big_item(v))
        dynamodb.put_item(TableName="state", Item=_odd_item(v))

    patched = _answer_questions(dynamodb)
    with _moto_as_is(*ANSWER_PATCHES, module_points=DYNAMODB_ANSWER_PATCH_POINTS):
        as_moto = _answer_questions(dynamodb)

    assert len(patched) == len(as_moto) > 100
    for (name, answer), (_, expected) in zip(patched, as_moto, strict=True):
        assert answer == expected, name
    # the questions were not trivial: size-cut pages, binaries in maps and lists, refusals
    big_pages = [a for n, a in patched if n.startswith("big page") and "True" in n]
    assert len(big_pages) >= 3
    assert all(len(page["Items"]) < 10 for page in big_pages)  # the 1 MB cut, not a Limit
    odd = dict(patched)["odd items"]["Items"]
    assert odd[1]["m"]["M"]["l"]["L"][1] == {"B": b"z"}
    assert odd[1]["bs"]["BS"] == [b"x", b"\x01"]
    assert dict(patched)["failed condition"][1] == "ConditionalCheckFailedException"


def test_a_querys_item_sizes_are_each_items_own(
    dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The size reused within a Query is the item's own: a reuse that ignored which item it
    # was computed for would cut the 1 MB pages elsewhere.
    for v in range(12):
        dynamodb.put_item(TableName="state", Item=_big_item(v))
    request: dict[str, Any] = {
        "TableName": "state",
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "BIG"}},
    }
    with _moto_as_is(ITEM_SIZE):
        expected = dynamodb.query(**request)
    point = _point(ITEM_SIZE)
    moto_size = point.original()
    sized: list[int] = []

    def counting(self: Item) -> int:
        sized.append(id(self))
        result: int = moto_size(self)
        return result

    monkeypatch.setattr(point.owner, point.attribute, point.replacement(counting))
    answer = dynamodb.query(**request)
    assert answer["Items"] == expected["Items"]
    assert answer["LastEvaluatedKey"] == expected["LastEvaluatedKey"]
    assert len(sized) == len(set(sized)) == len(answer["Items"]) + 1  # once each, and the cut
    # a stale size is not reused: a grown item moves the cut
    dynamodb.update_item(
        TableName="state",
        Key={"pk": {"S": "BIG"}, "sk": {"S": "000"}},
        UpdateExpression="SET #blob = :b",
        ExpressionAttributeNames={"#blob": "blob"},
        ExpressionAttributeValues={":b": {"S": "y" * 300_000}},
    )
    grown = dynamodb.query(**request)
    with _moto_as_is(ITEM_SIZE):
        grown_as_moto = dynamodb.query(**request)
    assert grown["Items"] == grown_as_moto["Items"]
    assert grown["LastEvaluatedKey"] == grown_as_moto["LastEvaluatedKey"]
    assert len(grown["Items"]) != len(answer["Items"])


def test_fast_dynamo_to_dict_builds_motos_containers() -> None:
    from moto.dynamodb.models.utilities import dynamo_to_dict

    item = Item(DynamoType({"S": "ODD"}), DynamoType({"S": "001"}), _odd_item(1))
    values: list[Any] = [
        {"Items": [item.attrs], "Count": 1, "LastEvaluatedKey": {"pk": {"S": "ODD"}}},
        item.attrs,
        item,  # an object with to_json: moto's own function's
        DynamoType({"B": "AAE="}),  # a binary as it came on the wire (base64)
        [DynamoType({"N": "1"}), None, 2, 2.5, True, "s"],
    ]
    for value in values:
        expected = dynamo_to_dict(value)
        fast = moto_patches._fast_dynamo_to_dict(value)
        assert fast == expected
        assert type(fast) is type(expected)
    # fresh containers: changing the answer changes nothing moto keeps
    answer = moto_patches._fast_dynamo_to_dict(item.attrs)
    answer["m"]["M"]["l"]["L"].clear()
    answer["ss"]["SS"].append("c")
    assert len(item.attrs["m"].value["l"].value) == 3
    assert item.attrs["ss"].value == ["a", "b"]


@pytest.mark.parametrize(
    "body",
    [
        '{"Items": [{"s": {"S": "a <RequestId> in a value"}}]}',
        "<R><ResponseMetadata><RequestId>old</RequestId></ResponseMetadata></R>",
        '{"Count": 0}',
        "",
        b"<RequestId>bytes</RequestId>",
        None,
    ],
)
def test_enrich_response_answers_as_moto_does(body: Any) -> None:
    from moto.core.responses import BaseResponse
    from moto.moto_api._internal import mock_random

    moto_patches.install_moto_patches()
    with _moto_as_is(ENRICH_RESPONSE):
        mock_random.seed(7)
        expected = BaseResponse._enrich_response(_status_201(), body)
    with moto_patches_active():
        mock_random.seed(7)
        answer = BaseResponse._enrich_response(_status_201(), body)
    assert answer == expected
    headers, rewritten = answer
    assert headers["status"] == "201"
    if isinstance(body, str) and "<RequestId>old" in body:
        assert f"<RequestId>{headers['x-amzn-requestid']}</RequestId>" in rewritten


def _status_201() -> Any:
    return {"status": 201}  # moto's handlers may give the status as a number


@contextmanager
def moto_patches_active() -> Iterator[None]:
    """The hooks a running runtime activates (the patches act only while a runtime runs)."""
    with start_local_aws(poll_event_sources=False):
        yield


def test_an_account_backend_is_created_and_registered_as_moto_does() -> None:
    from moto.core.base_backend import BackendDict
    from moto.sqs.models import sqs_backends

    with moto_patches_active(), pytest.MonkeyPatch.context() as patch:
        account = "000000000042"
        assert account not in dict.keys(sqs_backends)
        backend = sqs_backends[account]["us-east-1"]  # created on first use
        assert sqs_backends[account]["us-east-1"] is backend  # and only then
        assert any(registered is sqs_backends for registered in _registered(BackendDict))
        # a dict no longer registered (moto's reset clears the list) registers again
        patch.setattr(
            BackendDict,
            "_instances",
            [r for r in _registered(BackendDict) if r is not sqs_backends],
        )
        assert sqs_backends[account]["us-east-1"] is backend
        assert any(registered is sqs_backends for registered in _registered(BackendDict))


def _registered(backend_dict_class: Any) -> list[Any]:
    """moto's list of the BackendDicts in use (``BackendDict._instances``)."""
    registered: list[Any] = backend_dict_class._instances
    return registered


@pytest.mark.parametrize(
    "point",
    [*DYNAMODB_ANSWER_PATCH_POINTS, *(_point(symbol) for symbol in ANSWER_PATCHES)],
    ids=lambda point: point.symbol,
)
def test_canary_the_answer_patches_still_fit_moto(point: Any) -> None:
    moto_patches.install_moto_patches()
    point.verify()
    assert point.is_installed(), f"{point.symbol}: the patch did not install"


def test_the_regex_stand_in_compiles_as_re_does() -> None:
    import re

    moto_patches.install_moto_patches()
    from moto.dynamodb import comparisons

    stand_in = comparisons.__dict__["re"]
    compiled = stand_in.compile(r"^ +")
    assert compiled is stand_in.compile(r"^ +")  # kept: compiled once
    # As re compiles it (equal, not the same object: re's own cache may have dropped its copy
    # meanwhile, another thread compiling hundreds of patterns; a full run met that once)
    assert compiled == re.compile(r"^ +")
    assert stand_in.compile(r"^a", re.IGNORECASE).match("A")
    assert stand_in.escape is re.escape
    assert stand_in.compile(b"^x").match(b"x")  # anything else: re's own


# --------------------------------------------------------------------------- EC2


@pytest.fixture
def ec2() -> Iterator[EC2Client]:
    with start_local_aws(poll_event_sources=False) as runtime:
        client: EC2Client = boto3.client(
            "ec2", endpoint_url=runtime.endpoint_url, region_name=REGION
        )
        yield client


def _launch(ec2: EC2Client) -> list[str]:
    """Reservations of one to three instances, tagged at launch or after, among other tagged
    EC2 resources; one instance stopped."""
    image = "ami-12345678"  # the runtime's moto loads no images; it does not check
    launched: list[str] = []
    for r in range(15):
        count = 1 + r % 3
        instances = ec2.run_instances(
            ImageId=image,
            MinCount=count,
            MaxCount=count,
            InstanceType="t3.large",
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": f"vm-{r}"}]}
            ]
            if r % 2
            else [],
        )["Instances"]
        launched.extend(instance["InstanceId"] for instance in instances)
    for n, instance_id in enumerate(launched[::3]):
        ec2.create_tags(
            Resources=[instance_id],
            Tags=[{"Key": "wave", "Value": "w1"}, {"Key": "order", "Value": str(n)}],
        )
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8)["VolumeId"]
    ec2.create_tags(Resources=[volume], Tags=[{"Key": "wave", "Value": "w1"}])
    ec2.stop_instances(InstanceIds=[launched[4]])
    return launched


def _ec2_questions(ec2: EC2Client, launched: list[str]) -> list[Any]:
    unknown = "i-0123456789abcdef0"
    some = [launched[1], launched[4], launched[9], launched[-1]]
    state: FilterTypeDef = {"Name": "instance-state-name", "Values": ["running"]}
    questions: list[tuple[str, Callable[[], Any]]] = [
        ("all", ec2.describe_instances),
        ("by ids", lambda: ec2.describe_instances(InstanceIds=some)),
        ("by ids reversed", lambda: ec2.describe_instances(InstanceIds=some[::-1])),
        ("one id", lambda: ec2.describe_instances(InstanceIds=[launched[2]])),
        ("ids + filter", lambda: ec2.describe_instances(InstanceIds=some, Filters=[state])),
        ("unknown id", lambda: ec2.describe_instances(InstanceIds=[launched[0], unknown])),
        (
            "id filter",
            lambda: ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": some}]),
        ),
        (
            "id filter, unknown",
            lambda: ec2.describe_instances(
                Filters=[{"Name": "instance-id", "Values": [unknown, launched[3]]}]
            ),
        ),
        (
            "id filter, only unknown",
            lambda: ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": [unknown]}]),
        ),
        (
            "id and state filters",
            lambda: ec2.describe_instances(
                Filters=[{"Name": "instance-id", "Values": some}, state]
            ),
        ),
        (
            "tag filter",
            lambda: ec2.describe_instances(Filters=[{"Name": "tag:wave", "Values": ["w1"]}]),
        ),
        (
            "id filter, paged",
            lambda: ec2.describe_instances(
                Filters=[{"Name": "instance-id", "Values": launched}], MaxResults=5
            ),
        ),
        (
            "status",
            lambda: ec2.describe_instance_status(InstanceIds=some, IncludeAllInstances=True),
        ),
        ("status running", lambda: ec2.describe_instance_status(InstanceIds=some)),
        (
            "status unknown",
            lambda: ec2.describe_instance_status(InstanceIds=[unknown, launched[0]]),
        ),
        ("status all", lambda: ec2.describe_instance_status(IncludeAllInstances=True)),
        (
            "attribute",
            lambda: ec2.describe_instance_attribute(
                InstanceId=launched[5], Attribute="instanceType"
            ),
        ),
        (
            "attribute unknown",
            lambda: ec2.describe_instance_attribute(InstanceId=unknown, Attribute="instanceType"),
        ),
        ("tags", ec2.describe_tags),
        (
            "tags of one",
            lambda: ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [launched[3]]}]),
        ),
        ("volumes", ec2.describe_volumes),
    ]
    return [(name, _answer(call)) for name, call in questions]


def test_ec2_lookups_by_id_answer_as_moto_does_copying_only_what_they_keep(
    ec2: EC2Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.ec2.models.tags import TagBackend

    launched = _launch(ec2)
    point = _point(EC2_LOOKUPS[0])
    moto_all_reservations = point.original()
    copied: list[int] = []  # reservations moto's own all_reservations copied, per call

    def counting(self: Any, filters: Any = None) -> list[Any]:
        copied.append(len(self.reservations))
        result: list[Any] = moto_all_reservations(self, filters)
        return result

    monkeypatch.setattr(point.owner, point.attribute, point.replacement(counting))
    moto_describe_tags = TagBackend.describe_tags
    tag_scans = [0]

    def counting_describe_tags(self: Any, filters: Any = None) -> Any:
        tag_scans[0] += 1
        return moto_describe_tags(self, filters)

    monkeypatch.setattr(TagBackend, "describe_tags", counting_describe_tags)

    # The system's reads: by an instance-id filter, status by IDs; a lookup by one ID
    found = ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": launched[:7]}])
    statuses = ec2.describe_instance_status(InstanceIds=launched[:7], IncludeAllInstances=True)
    by_ids = ec2.describe_instances(InstanceIds=launched[5:9])
    ec2.describe_instance_attribute(InstanceId=launched[5], Attribute="instanceType")
    assert copied == []  # moto's copy of every reservation was not made
    assert tag_scans == [0]  # nor a scan of every tag per instance described
    assert sum(len(r["Instances"]) for r in found["Reservations"]) == 7
    assert len(statuses["InstanceStatuses"]) == 7
    assert [i["InstanceId"] for r in by_ids["Reservations"] for i in r["Instances"]] == launched[
        5:9
    ]
    tagged = {i["InstanceId"]: i.get("Tags") for r in found["Reservations"] for i in r["Instances"]}
    assert tagged[launched[3]] == [{"Key": "wave", "Value": "w1"}, {"Key": "order", "Value": "1"}]
    assert tagged[launched[6]] == [
        {"Key": "Name", "Value": "vm-3"},
        {"Key": "wave", "Value": "w1"},
        {"Key": "order", "Value": "2"},
    ]

    patched = _ec2_questions(ec2, launched)
    with _moto_as_is(*EC2_LOOKUPS):
        monkeypatch.setattr(TagBackend, "describe_tags", moto_describe_tags)
        as_moto = _ec2_questions(ec2, launched)
    for (name, answer), (_, expected) in zip(patched, as_moto, strict=True):
        assert answer == expected, name
    errors = {name: answer for name, answer in patched if isinstance(answer, tuple)}
    assert set(errors) == {"unknown id", "status unknown", "attribute unknown"}
    assert {code for _, code, _ in errors.values()} == {"InvalidInstanceID.NotFound"}
    # the reservations a lookup returns are copies: moto's own keep all their instances
    again = ec2.describe_instances(InstanceIds=[launched[-1]])
    assert len(again["Reservations"][0]["Instances"]) == 1
    assert sum(len(r["Instances"]) for r in ec2.describe_instances()["Reservations"]) == len(
        launched
    )


def test_a_resources_tags_are_its_own_with_or_without_the_patch(
    ec2: EC2Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.tags import TagBackend

    launched = _launch(ec2)
    backend = ec2_backends[LOCAL_ACCOUNT_ID][REGION]
    moto_get_tags = _point(EC2_LOOKUPS[-1]).original()
    resources: list[Any] = [backend.get_instance(i) for i in launched]
    resources += list(backend.volumes.values())
    resources += list(backend.describe_security_groups())
    expected = [moto_get_tags(resource) for resource in resources]
    moto_describe_tags = TagBackend.describe_tags
    tag_scans = [0]

    def counting_describe_tags(self: Any, filters: Any = None) -> Any:
        tag_scans[0] += 1
        return moto_describe_tags(self, filters)

    monkeypatch.setattr(TagBackend, "describe_tags", counting_describe_tags)
    assert [resource.get_tags() for resource in resources] == expected
    assert tag_scans == [0]
    assert sum(1 for tags in expected if tags) > len(launched) // 2  # many tagged, not all
