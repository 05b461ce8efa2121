"""Finalize now (a finalizeAfter hold cut short) over the real MigrationStore on moto: only
the wave's operators, only while the cutover is held, audited either way."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import boto3
import pytest
from moto import mock_aws

from orchestration.adapters.state_store import MigrationStore
from orchestration.local.provision import provision
from orchestration.migration_request import MigrationRequest
from orchestration.naming import ResourceNames
from orchestration.pipeline.finalize_now import FinalizeNowError, FinalizeNowService
from tests.support.fakes import SEED_REQUEST, FixedClock

OPERATOR = "U07ALICE001"  # the deployment's default operator (a hand-written request)
MIGRATION = str(SEED_REQUEST["migrationId"])


@pytest.fixture
def store(aws_env: None) -> Iterator[MigrationStore]:
    with mock_aws():
        resources = provision(
            ResourceNames(environment="test"),
            sqs=boto3.client("sqs", region_name="us-east-1"),
            dynamodb=boto3.client("dynamodb", region_name="us-east-1"),
            events=boto3.client("events", region_name="us-east-1"),
        )
        table = boto3.resource("dynamodb", region_name="us-east-1").Table(resources.table_name)
        store = MigrationStore(table)
        clock = FixedClock()
        store.record_request(
            MigrationRequest.model_validate(SEED_REQUEST), "0123456789abcdef", "corr-1", clock.now()
        )
        yield store


def _audits(store: MigrationStore) -> list[tuple[str, str]]:
    return [(a["actor"], a["outcome"]) for a in store.migration_audit_trail(MIGRATION)]


def test_a_held_cutover_is_asked_to_finalize_and_the_hold_finds_it(
    store: MigrationStore,
) -> None:
    clock = FixedClock()
    store.advance(MIGRATION, step="FinalizeCutover", status="WAITING", now=clock.now())
    service = FinalizeNowService(store, clock, [OPERATOR])

    done = service.request(MIGRATION, user=OPERATOR, reason="owners signed off")

    assert done.user == OPERATOR
    assert store.finalize_request(MIGRATION) == (OPERATOR, clock.now())
    assert _audits(store) == [(OPERATOR, "requested")]


def test_only_a_held_cutover_can_be_finalized_early(store: MigrationStore) -> None:
    clock = FixedClock()
    service = FinalizeNowService(store, clock, [OPERATOR])
    # Still testing: nothing to finalize
    store.advance(MIGRATION, step="VerifyTestLaunch", status="SUCCEEDED", now=clock.now())
    with pytest.raises(FinalizeNowError, match="not held before FinalizeCutover"):
        service.request(MIGRATION, user=OPERATOR)
    # Finalizing already (the hold ended): too late to ask
    clock.advance(timedelta(hours=1))
    store.advance(MIGRATION, step="FinalizeCutover", status="IN_PROGRESS", now=clock.now())
    with pytest.raises(FinalizeNowError, match="not held"):
        service.request(MIGRATION, user=OPERATOR)

    assert store.finalize_request(MIGRATION) is None
    assert _audits(store) == [(OPERATOR, "refused"), (OPERATOR, "refused")]


def test_only_the_waves_operators_may_finalize_now(store: MigrationStore) -> None:
    clock = FixedClock()
    store.advance(MIGRATION, step="FinalizeCutover", status="WAITING", now=clock.now())
    service = FinalizeNowService(store, clock, [OPERATOR])

    with pytest.raises(FinalizeNowError, match="is not an operator"):
        service.request(MIGRATION, user="U07MALLORY9")

    assert store.finalize_request(MIGRATION) is None
    assert _audits(store) == [("U07MALLORY9", "refused")]
