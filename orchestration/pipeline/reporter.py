"""Every step reports: a status event on the bus and the step in the migration's history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from orchestration.adapters.event_bus import EventBus
from orchestration.adapters.state_store import MigrationStore
from orchestration.clock import Clock
from orchestration.events import EventDetail, EventRouting, MigrationStatusUpdated, Step, StepStatus
from orchestration.migration_request import MigrationRequest
from orchestration.pipeline.spec import MigrationSpec

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


class StatusReporter:
    def __init__(self, store: MigrationStore, bus: EventBus, clock: Clock) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock

    def emit(self, migration: MigrationIdentity, event_type: type[E], **fields: Any) -> E:
        """Put one event, numbered with the migration's next sequence number."""
        event = event_type.model_validate(
            {
                **_named(migration),
                "sequence": self._store.next_sequence(migration.migration_id),
                "timestamp": self._clock.now(),
                **fields,
            }
        )
        self._bus.put(event)
        return event

    def step(
        self,
        spec: MigrationSpec,
        step: Step,
        status: StepStatus,
        message: str,
        *,
        migration_status: str | None = None,
        only_while_at: Step | None = None,
        **data: Any,
    ) -> MigrationStatusUpdated | None:
        """Move the migration to the step and keep it in its history (one write), then
        announce it; with ``only_while_at``, only if it is still at that step (None: it moved
        on, nothing said)."""
        now = self._clock.now()
        sequence = self._store.advance(
            spec.migration_id,
            step=step,
            status=status,
            now=now,
            message=message,
            migration_status=migration_status,
            only_while_at=only_while_at,
        )
        if sequence is None:
            return None
        event = MigrationStatusUpdated.model_validate(
            {
                **_named(spec),
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
