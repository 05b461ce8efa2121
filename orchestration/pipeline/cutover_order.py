"""The order of cutovers within a wave (``dependsOn``): which cutovers may start now.

Both launch designs keep one rule: a cutover of an application that goes after others (its
spec's ``cutover_after``) starts only once every VM of those applications has *cut over*
(:func:`cut_over`: verified, or finalized) in the migrations' records; a dependency that
rolled back or failed rolls the dependent back instead (:func:`dependency_failed`). The
per-VM design asks at each VM's StartCutover (``MigrationSteps.trigger``); the batched design
asks in the lane's launch coordinator, for all the wave's waiting cutovers at once
(:func:`order_cutovers`), so a job never holds a server whose dependencies have not cut over,
and dependents start in a later job.

Pure: the records come from a callable, asked at most once per wave, and only for a wave
where the lane's open requests do not already say a dependency is still on its way (a
dependency with a request open, test or cutover, has not cut over: no read needed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestration.events import Step
from orchestration.launch_records import LaunchKind, LaunchRequest

if TYPE_CHECKING:
    from orchestration.adapters.state_store import MigrationRecord

# A dependency's record in one of these states will never cut over (this execution's).
DEPENDENCY_FAILED = frozenset({"ROLLED_BACK", "FAILED"})


def cut_over(record: MigrationRecord) -> bool:
    """Whether a migration has cut over: COMPLETED (finalized), or its cutover verified in
    its current run (a held finalize: ``finalizeAfter``). A history entry from before its
    last ValidateInput or Rollback belongs to an earlier run and does not count."""
    if record.status == "COMPLETED":
        return True
    for entry in reversed(record.history):
        if entry["step"] == Step.VERIFY_CUTOVER and entry["status"] == "SUCCEEDED":
            return True
        if entry["step"] in {Step.VALIDATE_INPUT, Step.ROLLBACK}:
            return False
    return False


def dependency_failed(cutover_after: Sequence[str], failed: Sequence[MigrationRecord]) -> str:
    """Why a cutover is rolled back rather than started: the dependencies that did not cut
    over (the thread's and the rollback's reason, in both designs)."""
    names = ", ".join(
        f"{r.target_vm_name} ({r.app_name}, {r.status})"
        for r in sorted(failed, key=lambda r: r.target_vm_name)
    )
    return (
        f"this cutover goes after {', '.join(cutover_after)} (dependsOn), but {names} did not "
        "cut over: the migration is rolled back; migrate the dependency again, then this VM"
    )


@dataclass(frozen=True, slots=True)
class DependencyCheck:
    """One cutover's dependencies as the wave's records show them: the failed VMs (the
    cutover must roll back), else the applications not yet cut over (it waits), with the
    records of their VMs that have not (none recorded: no migration requested yet)."""

    failed: tuple[MigrationRecord, ...]
    pending: tuple[str, ...]
    pending_vms: tuple[MigrationRecord, ...]


def check_dependencies(
    migration_id: str, cutover_after: Sequence[str], wave_records: Iterable[MigrationRecord]
) -> DependencyCheck:
    """Whether the applications ``cutover_after`` of the migration's wave have all cut over,
    from the wave's records (the migration's own excluded). An application with no record
    yet is pending: the cutover window bounds that wait."""
    wanted = set(cutover_after)
    records = [r for r in wave_records if r.app_name in wanted and r.migration_id != migration_id]
    failed = tuple(r for r in records if r.status in DEPENDENCY_FAILED)
    pending_vms = tuple(r for r in records if not cut_over(r))
    recorded = {r.app_name for r in records}
    pending = tuple(
        app
        for app in cutover_after
        if app not in recorded or any(r.app_name == app for r in pending_vms)
    )
    return DependencyCheck(failed, pending, pending_vms)


@dataclass(frozen=True, slots=True)
class CutoverOrder:
    """The batched design's decision for the cutovers that could start now: ``ready`` may
    be planned; ``waiting`` wait for the applications named (request key -> applications);
    ``failed`` are answered with the reason (request key -> why) and roll back."""

    ready: tuple[LaunchRequest, ...]
    waiting: Mapping[tuple[str, LaunchKind], tuple[str, ...]]
    failed: Mapping[tuple[str, LaunchKind], str]


def order_cutovers(
    cutovers: Sequence[LaunchRequest],
    open_requests: Iterable[LaunchRequest],
    wave_records: Callable[[str], Sequence[MigrationRecord]],
) -> CutoverOrder:
    """Which of ``cutovers`` (requests whose window is open) start now. A cutover without
    dependencies is ready. One whose dependency application still has a request open in the
    lane (``open_requests``: not yet answered, or in a running job) waits, the records
    unread. The others are judged by their wave's records (``wave_records``, asked once per
    wave): ready once every dependency VM cut over, failed if one rolled back or failed."""
    in_flight: dict[str, set[str]] = {}
    for request in open_requests:
        if request.application:
            in_flight.setdefault(request.wave, set()).add(request.application)
    read: dict[str, Sequence[MigrationRecord]] = {}
    ready: list[LaunchRequest] = []
    waiting: dict[tuple[str, LaunchKind], tuple[str, ...]] = {}
    failed: dict[tuple[str, LaunchKind], str] = {}
    for request in cutovers:
        after = request.cutover_after
        if not after:
            ready.append(request)
            continue
        busy = tuple(app for app in after if app in in_flight.get(request.wave, set()))
        if busy:
            waiting[request.key] = busy
            continue
        if request.wave not in read:
            read[request.wave] = wave_records(request.wave)
        check = check_dependencies(request.migration_id, after, read[request.wave])
        if check.failed:
            failed[request.key] = dependency_failed(after, check.failed)
        elif check.pending:
            waiting[request.key] = check.pending
        else:
            ready.append(request)
    return CutoverOrder(tuple(ready), waiting, failed)
