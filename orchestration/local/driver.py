"""Drive migrations on the embedded system: send requests, watch executions, play approver.

The demo and the end-to-end tests use this. The simulated approver clicks the real Approve
or Reject button of the migration's approval message in the embedded Slack: the stand-in
sends Slack's signed request to the bot's Bolt app, which decides through ``ApprovalService``
(authorisation, conditional write, audit, SendTaskSuccess), exactly as for a person.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3

from bot.app import REASON_BLOCK, REASON_INPUT, REJECT_MODAL
from bot.group_approvals import (
    GROUP_APPROVE_SELECTED_ACTION,
    POSTING,
    SELECT_BLOCK,
    SELECT_INPUT,
    SELECT_MODAL,
    GroupStore,
)
from bot.thread_store import ThreadStore
from bot.threads import APPROVE_ACTION, REJECT_ACTION
from orchestration import wiring
from orchestration.adapters.state_store import MigrationRecord, MigrationStore
from orchestration.events import Step
from orchestration.gitops.publish import message_body
from orchestration.local.runtime import LOCAL_REGION
from orchestration.local.system import LOCAL_GROUP_MEMBER, EmbeddedSystem, local_group_membership
from orchestration.migration_request import MigrationRequest
from orchestration.pipeline.approvals import ApprovalError

# An approver picks who decides a pending approval, or None to leave it waiting.
Approver = Callable[[MigrationRecord, tuple[str, ...]], tuple[str, str] | None]
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def first_listed_approver(
    record: MigrationRecord, approvers: tuple[str, ...]
) -> tuple[str, str] | None:
    """Approve as the first user the wave lists, else as the member of its first group."""
    users = [a for a in approvers if a[:1] in {"U", "W"}]
    if users:
        return "APPROVED", users[0]
    return ("APPROVED", LOCAL_GROUP_MEMBER) if approvers else None


@dataclass
class MigrationOutcome:
    migration_id: str
    target_vm_name: str
    wave: str
    app_name: str
    status: str  # the execution's status, or the record's when no execution started
    record_status: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    cause: str | None = None
    execution_arn: str | None = None


class MigrationDriver:
    def __init__(self, system: EmbeddedSystem) -> None:
        self.system = system
        # A session of its own: watching is not the pipeline's work, and the API call
        # counts (on boto3's default session) should not include it.
        session = boto3.Session(region_name=LOCAL_REGION)
        self._sqs = session.client("sqs")
        self._sfn = session.client("stepfunctions")
        table = session.resource("dynamodb").Table(os.environ["DYNAMODB_TABLE_NAME"])
        self._store = MigrationStore(table)
        self._threads = ThreadStore(table)
        self._groups = GroupStore(table)

    def send(self, requests: Iterable[MigrationRequest | str]) -> int:
        """Put request bodies on the request queue, as ``wavepilot publish`` would."""
        assert self.system.resources is not None
        count = 0
        for request in requests:
            body = request if isinstance(request, str) else message_body(request)
            self._sqs.send_message(
                QueueUrl=self.system.resources.request_queue_url, MessageBody=body
            )
            count += 1
        return count

    def executions(self) -> list[dict[str, Any]]:
        paginator = self._sfn.get_paginator("list_executions")
        found: list[dict[str, Any]] = []
        for page in paginator.paginate(stateMachineArn=self.system.state_machine_arn):
            found.extend(dict(execution) for execution in page["executions"])
        return found

    def wait(
        self,
        migration_ids: Iterable[str],
        *,
        approver: Approver | None = first_listed_approver,
        timeout: float = 120.0,
        on_tick: Callable[[dict[str, str], dict[str, MigrationRecord]], None] | None = None,
        poll_seconds: float = 0.5,
    ) -> dict[str, MigrationOutcome]:
        """Wait until every migration's execution has ended (or ``timeout``)."""
        wanted = set(migration_ids)
        clock = wiring.clock()  # the system's: simulated when the embedded system runs on one
        deadline = clock.monotonic() + timeout
        store = self._store
        decided: set[str] = set()
        records: dict[str, MigrationRecord] = {}
        while True:
            statuses = self._latest_statuses(wanted)
            for migration_id in wanted:
                if statuses.get(migration_id) in TERMINAL and migration_id in records:
                    continue  # finished: its record no longer changes
                record = store.get(migration_id)
                if record is None:
                    continue
                records[migration_id] = record
                if approver is not None and record.step == Step.AWAIT_APPROVAL:
                    self._maybe_decide(record, approver, decided)
            if on_tick is not None:
                on_tick(statuses, records)
            if len(statuses) == len(wanted) and all(s in TERMINAL for s in statuses.values()):
                break
            if clock.monotonic() > deadline:
                break
            clock.sleep(poll_seconds)
        return self._outcomes(wanted)

    def _outcomes(self, wanted: set[str]) -> dict[str, MigrationOutcome]:
        store = self._store
        outcomes: dict[str, MigrationOutcome] = {}
        executions = self.latest_executions(wanted)
        for migration_id in wanted:
            record = store.get(migration_id)
            execution = executions.get(migration_id)
            error = cause = None
            if execution is not None and execution["status"] != "RUNNING":
                described = self._sfn.describe_execution(executionArn=execution["executionArn"])
                error, cause = described.get("error"), described.get("cause")
            outcomes[migration_id] = MigrationOutcome(
                migration_id=migration_id,
                target_vm_name=record.target_vm_name if record else "?",
                wave=record.wave if record else "?",
                app_name=record.app_name if record else "?",
                status=execution["status"] if execution else "NOT_STARTED",
                record_status=record.status if record else "UNKNOWN",
                steps=store.history(migration_id),
                error=error,
                cause=cause,
                execution_arn=execution["executionArn"] if execution else None,
            )
        return outcomes

    def latest_executions(self, wanted: set[str]) -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for execution in self.executions():
            # Executions are named <migrationId>-<revision>[-rollback-<time>] (an operator's
            # rollback runs in an execution of its own).
            migration_id = _migration_of(execution["name"], wanted)
            if migration_id:
                current = latest.get(migration_id)
                if current is None or execution["startDate"] > current["startDate"]:
                    latest[migration_id] = execution
        return latest

    def _latest_statuses(self, wanted: set[str]) -> dict[str, str]:
        return {m: e["status"] for m, e in self.latest_executions(wanted).items()}

    def _maybe_decide(self, record: MigrationRecord, approver: Approver, decided: set[str]) -> None:
        store = self._store
        approval_id = record.approval_id
        if approval_id is None or approval_id in decided:
            return
        approval = store.approval(approval_id)
        if approval is None or approval.status != "PENDING":
            return
        choice = approver(record, approval.approvers)
        if choice is None:
            return
        decision, user = choice
        if self.system.slack is not None:
            if self.click(record.migration_id, approval_id, decision, user):
                decided.add(approval_id)
            return  # the approval message is not in Slack yet: click on a later tick
        decided.add(approval_id)
        # ApprovalError: decided elsewhere (a person, the CLI) in the meantime.
        with contextlib.suppress(ApprovalError):
            wiring.approvals().decide(
                approval_id,
                "APPROVED" if decision == "APPROVED" else "REJECTED",
                user=user,
                reason="" if decision == "APPROVED" else "rejected by the simulated approver",
                is_member=local_group_membership,
            )

    def click(self, migration_id: str, approval_id: str, decision: str, user: str) -> bool:
        """Click Approve (or Reject, then give a reason in the modal) as ``user`` in Slack;
        False while the approval message is not posted yet.

        A VM approved with its group (``approval.scope`` application or wave) is approved
        alone through the group message's Approve selected (only it ticked in the modal), or
        rejected alone with ``/wavepilot reject <migration> <reason>``."""
        slack = self.system.slack
        assert slack is not None
        approval = self._store.approval(approval_id)
        if approval is not None and approval.group:
            return self._click_in_group(approval.group, migration_id, approval_id, decision, user)
        thread = self._threads.get(migration_id)
        if thread is None or thread.approval_id != approval_id or not thread.approval_ts:
            return False
        action = APPROVE_ACTION if decision == "APPROVED" else REJECT_ACTION
        response = slack.click_button(
            user=user, channel=thread.channel, message_ts=thread.approval_ts, action_id=action
        )
        if response.status != 200:
            return False
        if decision == "APPROVED":
            return True
        views = [
            v for v in slack.opened_views(user) if v.callback_id == REJECT_MODAL and not v.closed
        ]
        if not views:
            return False
        slack.submit_view(
            user=user,
            view_id=views[-1].id,
            values={REASON_BLOCK: {REASON_INPUT: "rejected by the simulated approver"}},
        )
        return True

    def _click_in_group(
        self, group: str, migration_id: str, approval_id: str, decision: str, user: str
    ) -> bool:
        slack = self.system.slack
        assert slack is not None
        state = self._groups.get(group)
        if decision != "APPROVED":
            record = self._store.get(migration_id)
            channel = (state.channel if state else "") or (record and record.slack_channel)
            response = slack.slash_command(
                user=user,
                channel=channel or "C0000000000",
                text=f"reject {migration_id} rejected by the simulated approver",
            )
            return response.status == 200
        if (
            state is None
            or state.ts in {"", POSTING}
            or approval_id not in {m.approval_id for m in state.ready}
        ):
            return False  # the group message is not in Slack yet, or does not list it as ready
        try:
            response = slack.click_button(
                user=user,
                channel=state.channel,
                message_ts=state.ts,
                action_id=GROUP_APPROVE_SELECTED_ACTION,
            )
        except LookupError:
            # The group's state is saved before its message is edited: the button shows once
            # the edit is made (a person sees nothing to click before; tried again later).
            return False
        views = [
            v for v in slack.opened_views(user) if v.callback_id == SELECT_MODAL and not v.closed
        ]
        if response.status != 200 or not views:
            return False
        submitted = slack.submit_view(
            user=user, view_id=views[-1].id, values={SELECT_BLOCK: {SELECT_INPUT: [approval_id]}}
        )
        return submitted.status == 200


def _migration_of(execution_name: str, wanted: set[str]) -> str:
    """The wanted migration an execution named ``<migrationId>-<revision>...`` belongs to, ""
    if none: each of the name's dash-separated prefixes looked up once (not every wanted ID
    tried against every execution: a 1,000-VM rehearsal's watch compared a million)."""
    parts = execution_name.split("-")
    for end in range(len(parts) - 1, 0, -1):
        prefix = "-".join(parts[:end])
        if prefix in wanted:
            return prefix
    return ""
