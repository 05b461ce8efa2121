"""Every step reports: a status event on the bus and the step in the migration's history.

Inside :func:`reports_deferred` (one step's Lambda invocation) what the step reports of its
migration is kept and written when the invocation ends, in one record write per migration
(the sequence numbers, the step it is at, the history entries, its status), then its events
are put (``events_deferred``: ten to a ``PutEvents`` call). A step that reports STARTED and
its outcome, or its outcome and an event (``MigrationCompleted``, ``ApprovalRequested``),
writes the record once, not twice. An invocation that reports of many migrations (the launch
coordinator's, for a batch) writes their records together: their sequence numbers read in
one call and the records written in one transaction per 100, each conditioned on the number
read (one that another writer moved meanwhile is written alone, numbered after it). The
reports are written however the invocation ends (a
step that raises still says what it reported first); a write refused then is logged and the
step's own error is the one raised, as the state machine's Retry and Catch expect.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from orchestration.adapters.event_bus import EventBus, events_deferred
from orchestration.adapters.state_store import MigrationStore, ReportWrite, history_entry
from orchestration.clock import Clock
from orchestration.events import EventDetail, EventRouting, MigrationStatusUpdated, Step, StepStatus
from orchestration.migration_request import MigrationRequest
from orchestration.observability import logger

E = TypeVar("E", bound=EventDetail)


class MigrationIdentity(Protocol):
    """What an event needs to name its migration and route it (a spec or a stored record)."""

    @property
    def migration_id(self) -> str: ...
    @property
    def wave(self) -> str: ...
    @property
    def app_name(self) -> str: ...
    @property
    def target_vm_name(self) -> str: ...
    @property
    def correlation_id(self) -> str: ...
    @property
    def slack_channel(self) -> str | None: ...
    @property
    def callback_urls(self) -> Sequence[str]: ...
    @property
    def target_account_id(self) -> str: ...
    @property
    def target_region(self) -> str: ...


def routing_of(migration: MigrationIdentity) -> EventRouting:
    """Where the migration's events go: every event carries it, so no consumer reads the
    migration record to route one."""
    return EventRouting(
        slack_channel=migration.slack_channel or "", callback_urls=list(migration.callback_urls)
    )


@dataclass(frozen=True, slots=True)
class Identity:
    """A migration's identity before any spec exists (the ingress has only the request)."""

    migration_id: str
    wave: str
    app_name: str
    target_vm_name: str
    correlation_id: str
    slack_channel: str | None = None
    callback_urls: tuple[str, ...] = ()
    target_account_id: str = ""
    target_region: str = ""

    @classmethod
    def of(cls, request: MigrationRequest, correlation_id: str) -> Identity:
        vm = request.effective_vm
        return cls(
            request.migration_id,
            request.wave,
            request.app_name,
            request.target_vm_name,
            correlation_id,
            vm.slack_channel if vm is not None else None,
            tuple(vm.callback_urls) if vm is not None else (),
            vm.target_account_id if vm is not None else "",
            vm.target_region if vm is not None else "",
        )


def _named(migration: MigrationIdentity) -> dict[str, Any]:
    """What every event says of its migration: who it is, where it goes, how it is routed."""
    return {
        "migration_id": migration.migration_id,
        "wave": migration.wave,
        "app_name": migration.app_name,
        "target_vm_name": migration.target_vm_name,
        "target_account_id": migration.target_account_id,
        "target_region": migration.target_region,
        "correlation_id": migration.correlation_id,
        "routing": routing_of(migration),
    }


@dataclass(frozen=True, slots=True)
class _Report:
    """One report kept for the end of the invocation: an event to number (and put), and for
    a step, the step it moves the migration to and its history entry."""

    event_type: type[EventDetail]
    fields: dict[str, Any]
    at: tuple[str, str] | None = None
    entry: dict[str, str] | None = None
    migration_status: str | None = None


@dataclass(slots=True)
class _Kept:
    """The invocation's reports, per migration in the order made (with the reporter that
    made them: it writes them)."""

    reports: dict[str, tuple[StatusReporter, list[_Report]]] = field(default_factory=dict)

    def add(self, reporter: StatusReporter, migration_id: str, report: _Report) -> None:
        self.reports.setdefault(migration_id, (reporter, []))[1].append(report)

    def take(self, migration_id: str) -> tuple[StatusReporter, list[_Report]] | None:
        return self.reports.pop(migration_id, None)


# A report that marks the migration running is written when made, not when the invocation
# ends: made as its step starts, it would otherwise land after anything another writer did
# meanwhile (a rollback of the execution, stopped while this step ran, that ended first:
# ROLLED_BACK overwritten by RUNNING). A status that ends the migration is reported as its
# invocation ends, so writing it then moves it by nothing.
STATUSES_WRITTEN_AT_ONCE = frozenset({"RUNNING"})

_kept: ContextVar[_Kept | None] = ContextVar("wavepilot_deferred_reports", default=None)


@contextmanager
def reports_deferred() -> Iterator[None]:
    """Keep the reports made inside and write them when it ends: one record write per
    migration, then its events (put in batches, ``events_deferred``)."""
    if _kept.get() is not None:  # nested: the outer one writes them
        yield
        return
    kept = _Kept()
    token = _kept.set(kept)
    with events_deferred():
        try:
            yield
        except BaseException:
            _kept.reset(token)
            _write_all(kept, raising=False)  # the step's own error is the one raised
            raise
        _kept.reset(token)
        _write_all(kept, raising=True)


# From this many migrations in one invocation (the launch coordinator's batches), their
# reports are written together: two calls per 100 migrations, not one each.
WRITTEN_TOGETHER_FROM = 3


def _write_all(kept: _Kept, *, raising: bool) -> None:
    taken, kept.reports = kept.reports, {}
    by_reporter: dict[int, tuple[StatusReporter, dict[str, list[_Report]]]] = {}
    for migration_id, (reporter, reports) in taken.items():
        by_reporter.setdefault(id(reporter), (reporter, {}))[1][migration_id] = reports
    for reporter, migrations in by_reporter.values():
        try:
            if len(migrations) >= WRITTEN_TOGETHER_FROM:
                reporter._write_many(migrations)
            else:
                for migration_id, reports in migrations.items():
                    reporter._write(migration_id, reports)
        except Exception:
            if raising:
                raise
            logger.exception(
                "the step's reports could not be written after its error",
                extra={"migrations": len(migrations)},
            )


class StatusReporter:
    def __init__(self, store: MigrationStore, bus: EventBus, clock: Clock) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock

    def emit(self, migration: MigrationIdentity, event_type: type[E], **fields: Any) -> E | None:
        """Put one event, numbered with the migration's next sequence number (None: inside
        ``reports_deferred``, numbered and put when the invocation ends)."""
        kept = _kept.get()
        if kept is not None:
            report_fields = {**_named(migration), "timestamp": self._clock.now(), **fields}
            kept.add(self, migration.migration_id, _Report(event_type, report_fields))
            return None
        return self.put_numbered(
            migration, event_type, self._store.next_sequence(migration.migration_id), **fields
        )

    def put_numbered(
        self, migration: MigrationIdentity, event_type: type[E], sequence: int, **fields: Any
    ) -> E:
        """Put one event with the sequence number its writer allocated already."""
        event = self.numbered(migration, event_type, sequence, **fields)
        self._bus.put(event)
        return event

    def numbered(
        self, migration: MigrationIdentity, event_type: type[E], sequence: int, **fields: Any
    ) -> E:
        """The event, with the sequence number its writer allocated already, not put (the
        ingress puts a batch's announcements together: ``put_each``)."""
        return event_type.model_validate(
            {
                **_named(migration),
                "sequence": sequence,
                "timestamp": self._clock.now(),
                **fields,
            }
        )

    def put_each(self, events: Sequence[EventDetail]) -> list[str]:
        """Put events numbered already, together; per event why it was not put ("" if put)."""
        return self._bus.put_each(events)

    def step(
        self,
        migration: MigrationIdentity,
        step: Step,
        status: StepStatus,
        message: str,
        *,
        migration_status: str | None = None,
        only_while_at: Step | None = None,
        started: tuple[str, str] | None = None,
        **data: Any,
    ) -> MigrationStatusUpdated | None:
        """Move the migration to the step and keep it in its history (one write), then
        announce it; with ``only_while_at``, only if it is still at that step (None: it moved
        on, nothing said); with ``started`` (revision, execution ARN), the record names that
        execution in the same write (``MigrationStore.record_reports``). Inside
        ``reports_deferred``, kept (None) and written when the invocation ends, with the
        migration's other reports (an ``only_while_at`` or ``started`` report, or one that
        marks the migration running, is written at once, after those kept before it)."""
        now = self._clock.now()
        kept = _kept.get()
        if kept is not None:
            fields = {
                **_named(migration),
                "timestamp": now,
                "step": step,
                "status": status,
                "message": message,
                "data": data,
            }
            report = _Report(
                MigrationStatusUpdated,
                fields,
                at=(step, status),
                entry=history_entry(step, status, message, now),
                migration_status=migration_status,
            )
            if (
                only_while_at is None
                and started is None
                and migration_status not in STATUSES_WRITTEN_AT_ONCE
            ):
                kept.add(self, migration.migration_id, report)
                return None
            earlier = kept.take(migration.migration_id)
            if earlier is not None:
                earlier[0]._write(migration.migration_id, earlier[1])
        sequence = self._store.advance(
            migration.migration_id,
            step=step,
            status=status,
            now=now,
            message=message,
            migration_status=migration_status,
            only_while_at=only_while_at,
            started=started,
        )
        if sequence is None:
            return None
        event = MigrationStatusUpdated.model_validate(
            {
                **_named(migration),
                "sequence": sequence,
                "timestamp": now,
                "step": step,
                "status": status,
                "message": message,
                "data": data,
            }
        )
        self._bus.put(event)
        return event

    def _write(self, migration_id: str, reports: Sequence[_Report]) -> None:
        """Write one migration's kept reports in one record write, then put their events."""
        write = _record_write(migration_id, reports)
        last = self._store.record_reports(
            migration_id,
            sequences=write.sequences,
            now=self._clock.now(),
            at=write.at,
            history=write.history,
            migration_status=write.migration_status,
        )
        assert last is not None  # only_while_at is never kept
        self._put(reports, last)

    def _write_many(self, migrations: dict[str, list[_Report]]) -> None:
        """Write many migrations' kept reports together (``record_reports_many``), then put
        their events, each migration's in order."""
        last = self._store.record_reports_many(
            [_record_write(migration_id, reports) for migration_id, reports in migrations.items()],
            self._clock.now(),
        )
        for migration_id, reports in migrations.items():
            self._put(reports, last[migration_id])

    def _put(self, reports: Sequence[_Report], last: int) -> None:
        """Put a migration's reports as events, numbered up to ``last``."""
        first = last - len(reports) + 1
        for offset, report in enumerate(reports):
            self._bus.put(
                report.event_type.model_validate({**report.fields, "sequence": first + offset})
            )


def _record_write(migration_id: str, reports: Sequence[_Report]) -> ReportWrite:
    """What a migration's kept reports write to its record: a sequence number each, the last
    step reached, the steps' history entries, the last status set."""
    steps = [report for report in reports if report.at is not None]
    statuses = [report.migration_status for report in reports if report.migration_status]
    return ReportWrite(
        migration_id,
        sequences=len(reports),
        at=steps[-1].at if steps else None,
        history=tuple(report.entry for report in steps if report.entry is not None),
        migration_status=statuses[-1] if statuses else None,
    )
