"""Batched launches: the records a lane's launch coordinator keeps and hands back.

Plain types shared by the coordinator's planning (``orchestration.pipeline``), its ledger
port and the ledger's DynamoDB adapter (``orchestration.adapters.launch_ledger``): the
adapters may not import the pipeline, so what both speak lives here, importing neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

LaunchKind = Literal["test", "cutover"]

JobKind = Literal["test", "cutover", "retire"]
"""What a coordinator's job does: a test launch, a cutover launch, or ``retire``: a
TERMINATE job (``TerminateTargetInstances``) of the test instances of servers whose cutover
was requested, before their cutover job."""

RequestRecorded = Literal["new", "open", "answered", "reanswered"]
"""What ``record_request`` made of a request: ``new``; ``open`` (asked already and not yet
answered: the latest task token waits); ``answered`` (this very task was answered: nothing
to do); ``reanswered`` (this execution's launch was answered, to a task that no longer
waits, e.g. one retried after its Lambda failed: the recorded outcome goes to the new task,
and no second job is started)."""

LaunchStatus = Literal[
    "LAUNCHED",
    "FAILED",
    "TERMINATED",
    "REFUSED",
    "WINDOW_CLOSED",
    "REPLICATION_STALLED",
    "DEPENDENCY_FAILED",
]
"""How a server's launch ended. The first three are MGN's ``participatingServers``
``launchStatus``; the coordinator adds four of its own: ``REFUSED`` (MGN's
ConflictException named the server when its job was started: its state forbids the launch),
``WINDOW_CLOSED`` (a cutover whose window closed before it could start),
``REPLICATION_STALLED`` (a test launch whose server's replication stalled, disconnected or
stopped while it waited to become launchable) and ``DEPENDENCY_FAILED`` (a cutover never
started because a VM of an application it goes after, ``dependsOn``, rolled back or
failed)."""

# The tag on every job the coordinator starts: how a restarted coordinator recognises the job
# a crashed one started (MGN has no client token on StartTest / StartCutover).
INTENT_TAG = "wavepilot:launch-intent"


class LedgerConflictError(Exception):
    """Another coordinator wrote to the lane's ledger since this one read it: stop, re-read."""


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """A migration whose server is ready for its test launch or cutover, asking for it.

    ``window_start`` / ``window_end`` bound a cutover (None: no bound on that side); a test
    launch has none.
    """

    migration_id: str
    source_server_id: str
    kind: LaunchKind
    wave: str
    requested_at: datetime
    window_start: datetime | None = None
    window_end: datetime | None = None
    # The Step Functions execution asking (``$$.Execution.Id``): a request repeated by the
    # same execution is the same launch, whatever its task token.
    execution: str = ""
    # A cutover's server's test instance, still running: the coordinator retires it (a
    # batched TERMINATE job) before the cutover starts. None: nothing to retire.
    test_instance_id: str | None = None
    # What the requester needs said on its behalf when its job starts (the migration's spec,
    # as JSON: the coordinator reports StartTestLaunch / StartCutover for it); opaque here.
    payload: str = field(default="", compare=False, repr=False)
    # The migration's application, and the applications of its wave whose VMs must all have
    # cut over before this cutover starts (the manifest's ``dependsOn``): none for a test.
    application: str = ""
    cutover_after: tuple[str, ...] = ()
    # The MGN application the server is to join (its preparation left the association to
    # the coordinator, which associates the servers it sees launchable in bulk): a test's.
    mgn_application_id: str = ""

    @property
    def key(self) -> tuple[str, LaunchKind]:
        """What makes a request the same request: one launch of each kind per migration."""
        return (self.migration_id, self.kind)


@dataclass(frozen=True, slots=True)
class WaitingLaunch:
    """An open request and the task token of the execution waiting for its outcome.

    ``replication_ready``: the coordinator saw the server launchable (a test request waits
    for its server's replication before it is planned; a cutover's server is ready).
    ``test_instance_retired``: a cutover request's test instance was retired (its TERMINATE
    job completed): the cutover may be planned. ``dependencies_reported``: the cutover was
    reported waiting for the applications it goes after (``dependsOn``). ``held_reported``:
    the operator's pause (its mark) the request was reported held by ("" if none)."""

    request: LaunchRequest
    task_token: str
    replication_ready: bool = False
    test_instance_retired: bool = False
    dependencies_reported: bool = False
    held_reported: str = ""

    @property
    def to_retire(self) -> bool:
        """A cutover request whose server's test instance is still to be retired."""
        return (
            self.request.kind == "cutover"
            and self.request.test_instance_id is not None
            and not self.test_instance_retired
        )


@dataclass(frozen=True, slots=True)
class LaunchIntent:
    """A job the coordinator decided to start, recorded before MGN is asked.

    ``members`` maps each source server to the migration it is launched for; ``job_id`` is
    None until MGN's answer is recorded. An intent without a job ID after a crash is either
    a job MGN started (found by the ``INTENT_TAG`` tag) or one never started.
    """

    intent_id: str
    kind: JobKind
    members: Mapping[str, str] = field(hash=False)
    created_at: datetime
    job_id: str | None = None

    @property
    def server_ids(self) -> tuple[str, ...]:
        return tuple(self.members)

    @property
    def request_kind(self) -> LaunchKind:
        """The kind of the requests the intent's job serves (a retirement: cutovers)."""
        return "test" if self.kind == "test" else "cutover"


@dataclass(frozen=True, slots=True)
class LedgerSnapshot:
    """The lane's open requests and intents as read at one moment, and the ledger's version
    (each intent written increments it: a coordinator writes its intents only on the
    version it planned from)."""

    waiting: tuple[WaitingLaunch, ...]
    intents: tuple[LaunchIntent, ...]
    version: int
    # Answered requests whose outcome had not reached its execution (the outbox), seen in
    # the same read: with none, and none answered since, there is nothing to deliver.
    undelivered: int = 0


@dataclass(frozen=True, slots=True)
class Instance:
    """An EC2 instance as the checks after a launch see it: its state, address, and the two
    status checks (``unknown`` when EC2 reports none yet)."""

    instance_id: str
    state: str
    private_ip: str | None
    instance_type: str
    system_status: str
    instance_status: str

    def as_data(self) -> dict[str, str]:
        """As the ledger keeps it and the execution's state carries it (camelCase)."""
        return {
            "instanceId": self.instance_id,
            "state": self.state,
            "privateIp": self.private_ip or "",
            "instanceType": self.instance_type,
            "systemStatus": self.system_status,
            "instanceStatus": self.instance_status,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, object]) -> Instance:
        """The inverse of :meth:`as_data` (a status not said is ``unknown``)."""
        return cls(
            instance_id=str(data["instanceId"]),
            state=str(data.get("state") or "unknown"),
            private_ip=str(data.get("privateIp") or "") or None,
            instance_type=str(data.get("instanceType") or ""),
            system_status=str(data.get("systemStatus") or "unknown"),
            instance_status=str(data.get("instanceStatus") or "unknown"),
        )

    @property
    def up(self) -> bool:
        """Running, and neither status check impaired (checks still initializing are no
        reason to wait: the VM's own health checks say whether it serves)."""
        return self.state == "running" and "impaired" not in {
            self.system_status,
            self.instance_status,
        }


@dataclass(frozen=True, slots=True)
class LaunchOutcome:
    """How one server's launch ended, for the execution waiting on ``task_token``."""

    migration_id: str
    task_token: str
    kind: LaunchKind
    job_id: str | None
    source_server_id: str
    launch_status: LaunchStatus
    launched_ec2_instance_id: str | None = None
    detail: str = ""
    execution: str = ""  # the execution whose request this answers
    # The launched instance as the coordinator saw it when the job completed (one bulk
    # read for the job's servers); None when it could not look.
    instance: Instance | None = None
