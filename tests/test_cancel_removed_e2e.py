"""A VM removed from the manifests, published from git with ``--cancel-removed``, end to end.

Real parts: a git repository (tests/support/gitrepo.py), ``wavepilot publish`` onto the
embedded system's request queue, the real handlers and ASL on moto, the MGN emulator in the
wave's lane (read back through the lane's boto3 client), the bot posting to the Slack
stand-in. The wave holds verified cutovers (``finalizeAfter: 24h``). Once one VM waits at
its approval gate and another's cutover is held before finalizing, a merge removes both:
the first is rolled back with the commit as its reason and leaves MGN's application (empty,
archived); the second is left as it is and its thread says so. The same range published
again acts on nothing twice. A removal of a revision that waits for an earlier one's
execution rolls that execution back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from bot.thread_store import ThreadStore
from orchestration import cli, wiring
from orchestration.adapters.mgn import Grouping
from orchestration.adapters.state_store import MigrationRecord
from orchestration.gitops.git import GitRepository
from orchestration.gitops.plan import build_plan
from orchestration.local.driver import MigrationDriver
from orchestration.local.runtime import LOCAL_REGION
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.migration_request import MigrationRequest
from orchestration.request_identity import vm_revision
from orchestration.statemachine import Timings
from tests.conftest import REPO_ROOT
from tests.support.gitrepo import GitRepo
from tests.support.pipeline import WINDOW, example_requests, spec_of

WAVE = "manifests/waves/wave-1.yaml"
FAST = replace(Timings.local(), launch_timeout_seconds=5, approval_timeout_seconds=300)
HELD = ("FinalizeCutover", "WAITING")


@pytest.fixture
def system() -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(SystemOptions(timings=FAST)) as running:
        yield running


def _wave_text() -> str:
    """The example wave-1, its window open now, each VM approved on its own, cutovers held."""
    start = datetime.now(UTC) - timedelta(hours=1)
    times = iter([start.isoformat(), (start + timedelta(hours=3)).isoformat()])
    text = WINDOW.sub(lambda m: f"{m.group(1)}: {next(times)}", (REPO_ROOT / WAVE).read_text())
    return text.replace("\ndefaults:", "\napproval:\n  scope: vm\nfinalizeAfter: 24h\ndefaults:", 1)


def _without(text: str) -> str:
    """The wave after the pull request: the reporting application, intranet-web-01 and
    intranet-db-01 gone."""
    text = text[: text.index("\n  - name: reporting")] + "\n"
    for name in ("intranet-web-01", "intranet-db-01"):
        vm = re.compile(
            rf"      - source:\n          azureResourceId: [^\n]*/{name}\n"
            r"(?:(?!      - source:|  - name:)[^\n]*\n)*"
        )
        assert vm.search(text), name
        text = vm.sub("", text, count=1)
    return text


def _publish(repo: GitRepo, base: str, head: str, system: EmbeddedSystem, *extra: str) -> int:
    assert system.resources is not None
    return cli.main(
        ["publish", "--repo", str(repo.root), "--base", base, "--head", head,
         "--queue-url", system.resources.request_queue_url, *extra]
    )  # fmt: skip


def _requests(repo: GitRepo, base: str, head: str) -> dict[str, MigrationRequest]:
    git = GitRepository(repo.root)
    plan = build_plan(git, git.resolve(base), git.resolve(head), now=datetime.now(UTC))
    return {r.target_vm_name: r for r in plan.requests}


def _wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return found


def _record(migration_id: str) -> MigrationRecord:
    record = wiring.store().get(migration_id)
    assert record is not None
    return record


def _execution_of(migration_id: str) -> str | None:
    record = wiring.store().get(migration_id)
    return record.execution_arn if record is not None else None


def _held(migration_id: str) -> bool:
    record = wiring.store().get(migration_id)
    return record is not None and tuple(record.history[-1].values())[:2] == HELD


def _reply(system: EmbeddedSystem, migration_id: str, text: str) -> Callable[[], str | None]:
    """The first reply of the migration's Slack thread that contains ``text``, once posted."""
    table = boto3.resource("dynamodb", region_name=LOCAL_REGION).Table(wiring.store()._table.name)
    threads = ThreadStore(table)

    def found() -> str | None:
        stored = threads.get(migration_id)
        if stored is None or not stored.ts or system.slack is None:
            return None
        thread = system.slack.thread(stored.channel, stored.ts)
        return next((r.text for r in thread.replies if text in r.text), None)

    return found


def _grouping(request: MigrationRequest) -> Grouping:
    return wiring.lanes().for_spec(spec_of(request)).mgn.grouping()


def _application_of(request: MigrationRequest, server_id: str) -> str | None:
    application_id = wiring.lanes().for_spec(spec_of(request)).mgn.source_server(server_id)
    found = _grouping(request).application(application_id.application_id)
    return found.name if found else application_id.application_id


def _queue_drained(system: EmbeddedSystem) -> bool:
    assert system.resources is not None
    attributes = system.client("sqs").get_queue_attributes(
        QueueUrl=system.resources.request_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(value == "0" for value in attributes.values())


def test_a_removed_vm_rolls_back_before_its_cutover_and_is_left_after_it(
    system: EmbeddedSystem, git_repo: GitRepo
) -> None:
    # GIVEN wave-1 published from git: intranet-web-01 approved (its cutover verified and
    # held before finalizing), its two neighbours rejected (rolled back), rpt-ssrs-01 alone
    # in the reporting application, waiting at its approval gate
    text = _wave_text()
    git_repo.write(WAVE, text)
    base = git_repo.commit("wave-1")
    requests = _requests(git_repo, "empty", base)
    web, report = requests["intranet-web-01"], requests["rpt-ssrs-01"]
    db = requests["intranet-db-01"]
    servers = system.seed([spec_of(r) for r in requests.values()])
    assert _publish(git_repo, "empty", base, system) == cli.EXIT_OK
    driver = MigrationDriver(system)

    def approver(record: MigrationRecord, _: tuple[str, ...]) -> tuple[str, str] | None:
        if record.target_vm_name == "rpt-ssrs-01":
            return None
        if record.target_vm_name == "intranet-web-01":
            return "APPROVED", "U07ALICE001"
        return "REJECTED", "U07ALICE001"

    def settled() -> bool:
        driver.wait([r.migration_id for r in requests.values()], approver=approver, timeout=1)
        # the two rejected ones rolled back to the end (not merely RUNNING their rollback)
        return (
            _held(web.migration_id)
            and _record(report.migration_id).step == "AwaitApproval"
            and {
                r.migration_id: _record(r.migration_id).status
                for r in requests.values()
                if r not in (web, report)
            }
            == {r.migration_id: "ROLLED_BACK" for r in requests.values() if r not in (web, report)}
        )

    _wait_for("the held cutover and the waiting approval", settled, timeout=180)
    assert _application_of(report, servers[report.migration_id]) == "wave-1/reporting"

    # WHEN a merged pull request removes both (and intranet-db-01, rolled back already), and
    # publish --cancel-removed runs
    git_repo.write(WAVE, _without(text))
    head = git_repo.commit("retire reporting; intranet-web-01 leaves the wave")
    assert _publish(git_repo, base, head, system, "--cancel-removed") == cli.EXIT_OK

    # THEN the migration waiting at its gate is rolled back, the commit as its reason
    reason = f"removed from the manifests in {head[:12]} ({WAVE}) by Ann Engineer"
    _wait_for(
        "the removed VM's rollback",
        lambda: _record(report.migration_id).status == "ROLLED_BACK",
        timeout=90,
    )
    [rolled] = [e for e in _record(report.migration_id).history if e["step"] == "Rollback"]
    assert reason in rolled["message"]
    assert _wait_for(
        "the rollback's reply", _reply(system, report.migration_id, "Rolling back after")
    ).endswith(f"Rolling back after AwaitApproval: {reason}")
    trail = wiring.store().migration_audit_trail(report.migration_id)
    assert sorted((a["action"], a["outcome"]) for a in trail) == [
        ("cancel-removed", "rollback-started"),
        ("rollback", "started"),
    ]
    assert {a["actor"] for a in trail} == {"Ann Engineer <ann@contoso.com>"}
    # AND its server left MGN's application, which was left empty and archived; the wave
    # stays (intranet is still in it)
    ungrouped = _wait_for(
        "the removal's reply", _reply(system, report.migration_id, "Removed from the manifests")
    )
    assert "in MGN: out of application wave-1/reporting, archived application" in ungrouped
    assert _application_of(report, servers[report.migration_id]) is None
    grouping = _grouping(report)
    application = grouping.application_named("wave-1/reporting")
    assert application is not None
    assert application.is_archived
    wave = grouping.wave_named("wave-1")
    assert wave is not None
    assert not wave.is_archived

    # AND the held cutover is left as it is, its thread told why
    told = _wait_for(
        "the cut-over VM's reply", _reply(system, web.migration_id, "Removed from the manifests")
    )
    assert "its cutover has started (FinalizeCutover)" in told
    assert "a removal does not roll a cutover back" in told
    assert _held(web.migration_id)
    assert _record(web.migration_id).status == "RUNNING"
    assert _application_of(web, servers[web.migration_id]) == "wave-1/intranet"
    [left] = wiring.store().migration_audit_trail(web.migration_id)
    assert (left["action"], left["outcome"]) == ("cancel-removed", "left-cut-over")

    # AND the migration rolled back already: nothing to stop, its server out of MGN's
    # application at once (not archived: intranet-app-01's server is still in it)
    ended = _wait_for("the ended VM's reply", _reply(system, db.migration_id, "Removed from"))
    assert "it is rolled back already: nothing to stop; in MGN: out of application" in ended
    assert _application_of(db, servers[db.migration_id]) is None
    intranet = _grouping(db).application_named("wave-1/intranet")
    assert intranet is not None
    assert not intranet.is_archived
    assert _record(db.migration_id).status == "ROLLED_BACK"

    # WHEN the same range is published again (a re-run job): each cancel is a repeat
    executions = len(driver.executions())
    assert _publish(git_repo, base, head, system, "--cancel-removed") == cli.EXIT_OK
    _wait_for("the request queue to drain", lambda: _queue_drained(system))

    # THEN nothing is done twice
    assert len(driver.executions()) == executions
    assert len(wiring.store().migration_audit_trail(report.migration_id)) == len(trail)
    assert len(wiring.store().migration_audit_trail(web.migration_id)) == 1
    assert len(wiring.store().migration_audit_trail(db.migration_id)) == 1
    assert _held(web.migration_id)


def test_a_removal_stops_the_earlier_revision_a_waiting_one_waits_for(
    system: EmbeddedSystem,
) -> None:
    # GIVEN a VM whose execution runs (nobody approves it), and a new revision of it recorded
    # meanwhile, waiting for that execution (it has no execution of its own)
    [request] = [r for r in example_requests() if r.target_vm_name == "intranet-web-01"]
    system.seed([spec_of(request)])
    driver = MigrationDriver(system)
    driver.send([request])
    first = _wait_for("the first execution", lambda: _execution_of(request.migration_id))
    assert request.effective_vm is not None
    changed = request.effective_vm.model_copy(update={"instance_type": "m5.2xlarge"})
    revised = request.model_copy(
        update={
            "effective_vm": changed,
            "instance_type": "m5.2xlarge",
            "revision": vm_revision(changed),
        }
    )
    driver.send([revised])
    _wait_for(
        "the waiting revision", lambda: _record(request.migration_id).revision == revised.revision
    )
    assert _record(request.migration_id).execution_arn is None

    # WHEN the VM is removed from the manifests (the cancel names the waiting revision)
    driver.send([revised.model_copy(update={"action": "cancel"})])

    # THEN the execution that runs is rolled back: the VM is not taken for never started
    try:
        _wait_for(
            "the rollback",
            lambda: _record(request.migration_id).status == "ROLLED_BACK",
            timeout=90,
        )
    except AssertionError as exc:
        record = _record(request.migration_id)
        raise AssertionError(
            f"{exc}: the record is {record.status} at {record.step}, its last steps "
            f"{record.history[-4:]}; executions {driver.executions()}"
        ) from None
    # (the rollback runs for the recorded revision; the waiting one's own never started)
    first_name = first.rsplit(":", 1)[-1]
    [rollback] = [e["name"] for e in driver.executions() if e["name"] != first_name]
    assert rollback.startswith(f"{request.migration_id}-{revised.revision}-rollback-")
    [rolled] = [e for e in _record(request.migration_id).history if e["step"] == "Rollback"]
    assert "removed from the manifests in cccccccccccc" in rolled["message"]
    [audit] = [
        a
        for a in wiring.store().migration_audit_trail(request.migration_id)
        if a["action"] == "cancel-removed"
    ]
    assert audit["outcome"] == "rollback-started"
