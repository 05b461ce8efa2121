"""``start_migration``: ``MigrationRequested`` -> one Step Functions execution per revision.

An EventBridge rule cannot name the executions it starts (AWS generates the name), so this
small function does: the name is ``<migrationId>-<revision>``, and Step Functions refuses a
second execution of that name, which makes a redelivered event harmless. A new revision of a
migration whose previous execution is still running is not started alongside it (two MGN
jobs on one server would collide): it is reported, and applies once that execution ends.
A revision cancelled before it started (its VM removed from the manifests) never starts.
"""

from __future__ import annotations

from typing import Any, cast

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.envelopes import EventBridgeEnvelope
from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration import wiring
from orchestration.adapters.state_store import MigrationRecord
from orchestration.adapters.stepfunctions import (
    ExecutionAlreadyExistsError,
    ExecutionDoesNotExistError,
)
from orchestration.events import MigrationRequested, Step
from orchestration.execution_names import execution_name, migration_prefix
from orchestration.observability import count, logger, metrics, tracer
from orchestration.pipeline.removal import CANCELLED
from orchestration.pipeline.spec import MigrationSpec
from orchestration.settings import settings


@logger.inject_lambda_context(correlation_id_path="detail.correlationId", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    requested = cast(
        MigrationRequested,
        parse(event=event, model=MigrationRequested, envelope=EventBridgeEnvelope),
    )
    spec = MigrationSpec.from_request(
        requested.request,
        requested.revision,
        requested.correlation_id,
        default_approvers=settings().default_approvers,
    )
    store = wiring.store()
    record = store.get(spec.migration_id)
    if record is not None and record.revision != spec.revision:
        logger.info("a newer revision was recorded since this event; skipping")
        return {"started": False, "reason": "superseded"}
    if record is not None and record.status == CANCELLED:
        logger.info("removed from the manifests before it started; not starting it")
        return {"started": False, "reason": "cancelled"}
    running = _earlier_execution_running(record, spec)
    if running:
        wiring.reporter().step(
            spec,
            Step.INTAKE,
            "WAITING",
            f"revision {spec.revision} waits: execution {running} of an earlier revision is "
            "still running (roll it back to apply this one now)",
        )
        return {"started": False, "reason": "earlier revision running", "running": running}
    name = execution_name(spec.migration_id, spec.revision)
    try:
        execution_arn = wiring.stepfunctions().start(
            settings().state_machine_arn,
            name,
            {"spec": spec.model_dump(mode="json", by_alias=True)},
        )
    except ExecutionAlreadyExistsError:
        logger.info("execution already exists: a redelivered request", extra={"name": name})
        return {"started": False, "reason": "already started", "name": name}
    count("ExecutionsStarted")
    # The record names the execution, RUNNING, in the write that reports it started. The
    # execution may already have reported its first step: never move it back to Intake (the
    # report is then not made, and the record names the execution in a write of its own).
    reported = wiring.reporter().step(
        spec,
        Step.INTAKE,
        "SUCCEEDED",
        f"execution {name} started",
        migration_status="RUNNING",
        only_while_at=Step.INTAKE,
        started=(spec.revision, execution_arn),
        executionArn=execution_arn,
    )
    if reported is None:
        store.set_execution(spec.migration_id, spec.revision, execution_arn, wiring.clock().now())
    return {"started": True, "executionArn": execution_arn}


def _earlier_execution_running(record: MigrationRecord | None, spec: MigrationSpec) -> str | None:
    """The name of a RUNNING execution of another revision of this migration, if any.

    The record names the last execution started for the migration, so that one is looked at
    (none for a new migration: a wave's starts cost no Step Functions call for this). Only a
    record written before it kept that ARN makes the function list the machine's running
    executions, as it did before (a call per 100 running executions, for each start)."""
    this_revision = execution_name(spec.migration_id, spec.revision)
    if record is not None and record.last_execution_arn is not None:
        last = record.last_execution_arn
        if not last or last.rsplit(":", 1)[-1] == this_revision:
            return None
        try:
            execution = wiring.stepfunctions().execution(last)
        except ExecutionDoesNotExistError:
            return None
        return execution.execution_arn.rsplit(":", 1)[-1] if execution.running else None
    return _running_execution(spec.migration_id, spec.revision)


def _running_execution(migration_id: str, revision: str) -> str | None:
    """The name of a RUNNING execution of another revision of this migration, if any."""
    prefix = migration_prefix(migration_id)
    for name in wiring.stepfunctions().running_execution_names(settings().state_machine_arn):
        if name.startswith(prefix) and name != execution_name(migration_id, revision):
            return name
    return None
