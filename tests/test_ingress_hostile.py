"""Hostile requests on the queue: refused at once, with a reason, and nothing reaches Step
Functions. ``ingress_handler`` runs in-process against emulated SQS, DynamoDB and EventBridge
(moto); the only way to an execution is the ``MigrationRequested`` event, captured here."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from orchestration import wiring
from orchestration.adapters import aws
from orchestration.adapters.state_store import MigrationStore
from orchestration.execution_names import (
    MAX_EXECUTION_NAME,
    MAX_MIGRATION_ID_LENGTH,
    execution_name,
    migration_prefix,
    rollback_execution_name,
)
from orchestration.gitops.publish import message_body
from orchestration.gitops.requests import request_for
from orchestration.handlers import ingress_handler
from orchestration.manifests.fields import escape_unprintable
from orchestration.manifests.validation import ManifestFile, validate_files
from orchestration.pipeline.intake import RequestRejectedError, parse_request
from tests.conftest import NOW, REPO_ROOT
from tests.support.aws_fixtures import EmulatedAws, emulated_aws, sqs_event
from tests.support.lambda_context import FakeLambdaContext

__all__ = ["emulated_aws"]  # the fixture, re-exported for pytest

SEED = json.loads((Path(__file__).parent / "events" / "seed_quick_start_request.json").read_text())
IDENTIFIERS = [
    "migrationId",
    "appName",
    "environment",
    "wave",
    "sourceVmId",
    "targetVmName",
    "instanceType",
    "subnetId",
    "securityGroupIds",
    "revision",
]
_HOMOGLYPHS = {
    "a": "\u0430",
    "e": "\u0435",
    "i": "\u0456",
    "o": "\u043e",
    "s": "\u0455",
    "v": "\u0475",
}


def _homoglyph(value: str) -> str:
    """``value`` with its first letter that has a Cyrillic twin replaced by that twin."""
    for index, char in enumerate(value):
        if char in _HOMOGLYPHS:
            return value[:index] + _HOMOGLYPHS[char] + value[index + 1 :]
    raise AssertionError(f"no homoglyph for {value!r}")


HOSTILE: dict[str, Callable[[str], object]] = {
    "dollar": lambda base: f"{base}$(rm -rf /)",
    "parentheses": lambda base: f"{base}()",
    "nul": lambda base: f"{base}\x00",
    "right-to-left-override": lambda base: f"\u202e{base}",
    "newline": lambda base: f"{base}\nx",
    "too-long": lambda base: base + "a" * 600,
    "empty": lambda base: "",
    "wrong-type": lambda base: 12345,
    "homoglyph": _homoglyph,
    "lone-surrogate": lambda base: f"{base}\ud800",
}


@pytest.fixture(autouse=True)
def _fresh_handler_dependencies() -> None:
    wiring.reset()


def _with(field: str, value: object) -> dict[str, Any]:
    if field == "securityGroupIds":
        return {**SEED, field: [value]}
    return {**SEED, field: value}


def _base(field: str) -> str:
    if field == "revision":
        return "0123456789abcdef"
    if field == "securityGroupIds":
        return str(SEED[field][0])
    return str(SEED[field])


def _invoke(env: EmulatedAws, body: str) -> tuple[dict[str, Any], str]:
    event = sqs_event(body, queue_arn=env.resources.request_queue_arn)
    response = ingress_handler.handler(event, FakeLambdaContext(function_name="ingress_handler"))
    return dict(response), event["Records"][0]["messageId"]


def _store() -> MigrationStore:
    from orchestration.settings import settings

    config = settings()
    return MigrationStore(aws.state_table(config.table_name, config.aws_region))


def _assert_refused_at_once(env: EmulatedAws, body: str, *reason_parts: str) -> str:
    """The message is dead-lettered at once with its reason, recorded, and nothing follows."""
    response, message_id = _invoke(env, body)

    assert response == {"batchItemFailures": []}  # not retried: SQS deletes it
    [dead] = env.dead_letters()
    attributes = dead["MessageAttributes"]
    reason = str(attributes["failureReason"]["StringValue"])
    for part in reason_parts:
        assert part in reason
    assert escape_unprintable(reason) == reason, "control characters echoed raw"
    assert attributes["sourceMessageId"]["StringValue"] == message_id
    rejection = _store().rejection(message_id)
    assert rejection is not None
    assert rejection["reason"] == reason
    assert env.captured() == []  # no MigrationRequested: start_migration never runs
    assert _store().get(SEED["migrationId"]) is None
    return reason


# --- the seed's message with one identifier made hostile ------------------------------


@pytest.mark.parametrize("kind", list(HOSTILE))
@pytest.mark.parametrize("field", IDENTIFIERS)
def test_a_hostile_identifier_is_dead_lettered_at_once_naming_the_field(
    emulated_aws: EmulatedAws, field: str, kind: str
) -> None:
    # GIVEN the seed's Quick Start message with one identifier made hostile
    body = json.dumps(_with(field, HOSTILE[kind](_base(field))))

    # WHEN it arrives THEN it is refused with a reason that names the field
    reason = _assert_refused_at_once(emulated_aws, body, "not a valid migration request", field)
    assert f"{field}" in reason.split(": ", 1)[1]


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("migrationId", "mig-$(rm)", "1 to 43 characters of A-Z a-z 0-9 - _"),
        ("migrationId", "m" * 44, "Step Functions executions"),
        ("sourceVmId", "vm-(1)", "userProvidedID"),
        ("instanceType", "t3.larg", "did you mean 't3.large'"),
        ("securityGroupIds", [], "at least 1 item"),
        ("securityGroupIds", "sg-12345", "valid list"),
        ("source", "gcp", "'azure'"),
        ("provenance", {"commit": "HEAD", "manifestPath": "w.yaml", "line": 1}, "commit"),
        (
            "provenance",
            {"commit": "a" * 40, "manifestPath": "w.yaml", "line": 1, "author": "Eve\u202e"},
            "U+202E",
        ),
    ],
)
def test_the_reason_says_the_rule(
    emulated_aws: EmulatedAws, field: str, value: object, rule: str
) -> None:
    reason = _assert_refused_at_once(emulated_aws, json.dumps({**SEED, field: value}), field, rule)
    assert "\u202e" not in reason


def test_an_unknown_field_with_a_hostile_name_is_refused_and_its_name_escaped(
    emulated_aws: EmulatedAws,
) -> None:
    reason = _assert_refused_at_once(
        emulated_aws, json.dumps({**SEED, "x\u202e\x00": 1}), "unknown field"
    )
    assert "\\u202e" in reason


def test_a_hostile_tag_in_the_spec_is_refused(emulated_aws: EmulatedAws) -> None:
    path = REPO_ROOT / "manifests" / "waves" / "wave-2.yaml"
    [vm, *_] = validate_files([ManifestFile(str(path), path.read_text())], now=NOW).vms
    body = json.loads(message_body(request_for(vm, commit="a" * 40, author="Ann")))
    body["spec"]["tags"]["Owner"] = "billing\u202etxt.exe"

    _assert_refused_at_once(emulated_aws, json.dumps(body), "spec.tags", "U+202E")


# --- bodies that are not a request at all ---------------------------------------------

_SEED_TEXT = json.dumps(SEED)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param("[1, 2]", "not an object (found list)", id="array"),
        pytest.param('"mig-12345"', "not an object (found str)", id="string"),
        pytest.param("12345", "not an object (found int)", id="number"),
        pytest.param("null", "not an object (found NoneType)", id="null"),
        pytest.param("", "not JSON", id="empty"),
        pytest.param("[" * 100_000 + "]" * 100_000, "nested too deeply", id="deep-array"),
        pytest.param('{"a":' * 40_000 + "1" + "}" * 40_000, "nested too deeply", id="deep-obj"),
        pytest.param(
            json.dumps({**SEED, "spec": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}}),
            "nested more than 8 levels",
            id="deep-within-parser",
        ),
        pytest.param(
            '{"migrationId": "' + "a" * 10_000_000 + '"}', "bytes: a request is at most", id="10MB"
        ),
        pytest.param(
            b"\xff\xfe{}".decode("utf-8", "surrogateescape"), "not JSON", id="invalid-utf-8"
        ),
        pytest.param('{"migrationId": "\ud800"}', "migrationId", id="raw-lone-surrogate"),
        pytest.param('{"migrationId": "\\ud800"}', "migrationId", id="escaped-lone-surrogate"),
        pytest.param(_SEED_TEXT + " garbage", "not JSON: Extra data", id="trailing-garbage"),
        pytest.param(_SEED_TEXT[:-1] + ', "line": NaN}', "NaN is not a JSON number", id="nan"),
        pytest.param(_SEED_TEXT[:-1] + ', "x": -Infinity}', "-Infinity", id="infinity"),
        pytest.param(_SEED_TEXT[:-1] + ', "x": 1e999}', "out of range", id="huge-float"),
        pytest.param(_SEED_TEXT[:-1] + ', "x": 1' + "0" * 5000 + "}", "cannot be read", id="int"),
        pytest.param(
            _SEED_TEXT[:-1] + ', "migrationId": "mig-2"}', "repeats the key 'migrationId'", id="dup"
        ),
        pytest.param("\ufeff" + _SEED_TEXT, "not JSON", id="byte-order-mark"),
        pytest.param("{\x00}", "not JSON", id="raw-nul"),
    ],
)
def test_a_body_that_is_not_a_request_is_dead_lettered_at_once(
    emulated_aws: EmulatedAws, body: str, reason: str
) -> None:
    _assert_refused_at_once(emulated_aws, body, reason)


def test_an_unsendable_body_is_kept_escaped_and_cut_with_a_note(emulated_aws: EmulatedAws) -> None:
    _invoke(emulated_aws, "\ud800" + "x" * 100_000)

    [dead] = emulated_aws.dead_letters()
    assert dead["Body"].startswith("\\ud800xxx")
    assert len(dead["Body"]) < 40_000
    note = dead["MessageAttributes"]["bodyChanged"]["StringValue"]
    assert "truncated from 100001 characters" in note
    assert "escaped" in note


# --- what must still pass -------------------------------------------------------------


def test_the_seed_quick_start_message_still_passes() -> None:
    request, revision = parse_request(_SEED_TEXT)

    assert request.migration_id == "mig-12345"
    assert len(revision) == 16


def test_every_vm_of_the_repository_manifests_passes_the_ingress_rules() -> None:
    paths = sorted((REPO_ROOT / "manifests" / "waves").glob("*.yaml"))
    result = validate_files([ManifestFile(str(p), p.read_text()) for p in paths], now=NOW)
    assert result.vms

    for vm in result.vms:
        request = request_for(vm, commit="c" * 40, author="Dana \u202eMigration <d@contoso.com>")
        parsed, revision = parse_request(message_body(request))
        assert (parsed, revision) == (request, vm.revision)


def test_every_execution_of_a_longest_migration_id_is_named_whole() -> None:
    migration_id = "m" * MAX_MIGRATION_ID_LENGTH
    now = datetime(2286, 11, 20, 17, 46, 39, tzinfo=UTC)  # the last 10-digit Unix time

    names = [
        execution_name(migration_id, "0" * 16),
        rollback_execution_name(migration_id, "0" * 16, now),
    ]

    for name in names:
        assert len(name) <= MAX_EXECUTION_NAME
        assert name.startswith(f"{migration_id}-{'0' * 16}")
        assert name.startswith(migration_prefix(migration_id))
    with pytest.raises(RequestRejectedError, match="migrationId"):
        parse_request(json.dumps({**SEED, "migrationId": migration_id + "m"}))


# --- AWS failures stay transient ------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "Put"),
        ClientError({"Error": {"Code": "InternalException", "Message": "oops"}}, "PutEvents"),
        EndpointConnectionError(endpoint_url="https://events.us-east-1.amazonaws.com"),
    ],
    ids=["throttled", "5xx", "unreachable"],
)
def test_an_aws_failure_fails_the_record_for_a_retry_and_dead_letters_nothing(
    emulated_aws: EmulatedAws, failure: Exception
) -> None:
    # GIVEN the event bus refuses every PutEvents call (a botocore hook: moto stays real)
    def refuse(**_: object) -> None:
        raise failure

    aws.events().meta.events.register("before-call.events.PutEvents", refuse)

    # WHEN the seed's valid message arrives in a batch with a hostile one
    event = sqs_event(
        _SEED_TEXT,
        json.dumps({**SEED, "migrationId": "mig-$(rm)"}),
        queue_arn=emulated_aws.resources.request_queue_arn,
    )
    valid, hostile = (record["messageId"] for record in event["Records"])
    response = ingress_handler.handler(event, FakeLambdaContext(function_name="ingress_handler"))

    # THEN the valid record fails (SQS redelivers it) and is neither dead-lettered nor
    # recorded as rejected; the hostile one is dead-lettered at once all the same
    assert response == {"batchItemFailures": [{"itemIdentifier": valid}]}
    [dead] = emulated_aws.dead_letters()
    assert dead["MessageAttributes"]["sourceMessageId"]["StringValue"] == hostile
    assert _store().rejection(valid) is None


# --- the manifest refuses what the ingress would --------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "tags: {Tier: web}",
            'tags: {Tier: "web\\u202Etxt.exe"}',
            "tags: the value of tag 'Tier' contains a control or invisible character, "
            "U+202E (RIGHT-TO-LEFT OVERRIDE) at position 4",
        ),
        (
            "path: /billing/health",
            'path: "/billing/health\\0"',
            "contains a control or invisible character, U+0000",
        ),
        (
            "iamInstanceProfile: wavepilot-ssm-instance",
            "iamInstanceProfile: wavepilot-ssm-\u0456nstance",
            "is not an IAM instance profile name (1 to 128 ASCII letters",
        ),
    ],
    ids=["tag-bidi", "path-nul", "profile-homoglyph"],
)
def test_a_manifest_value_the_ingress_would_refuse_is_a_manifest_error(
    old: str, new: str, message: str
) -> None:
    path = REPO_ROOT / "manifests" / "waves" / "wave-2.yaml"
    text = path.read_text()
    assert old in text

    result = validate_files([ManifestFile(str(path), text.replace(old, new, 1))], now=NOW)

    assert any(message in finding.message for finding in result.errors), result.errors
