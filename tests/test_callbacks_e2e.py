"""Status callbacks end to end on the embedded system: the bus rule, the real handler, the
real https transport and the loopback receiver standing in for the CMDB and billing-ops."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from orchestration.local.callback_receiver import CallbackReceiver, ReceivedCallback, ReceiverMode
from orchestration.local.driver import MigrationDriver
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.migration_request import MigrationRequest
from orchestration.statemachine import Timings
from tests.support.pipeline import example_requests, spec_of

FAST = replace(Timings.local(), launch_timeout_seconds=3, approval_timeout_seconds=60)
CALLBACK_HOSTS = {
    "cmdb.contoso.com": "/hooks/wavepilot",
    "billing-ops.contoso.com": "/api/migration-events",
}


@pytest.fixture
def system() -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(SystemOptions(timings=FAST)) as running:
        yield running


def _receiver(system: EmbeddedSystem) -> CallbackReceiver:
    assert system.callbacks is not None
    return system.callbacks


def _billing_app_vm() -> MigrationRequest:
    """A wave-2 VM whose manifest lists both callback URLs."""
    [request] = [r for r in example_requests("wave-2") if r.target_vm_name == "billing-app-prod-01"]
    assert request.effective_vm is not None
    assert len(request.effective_vm.callback_urls) == 2
    return request


def _migrate(system: EmbeddedSystem, request: MigrationRequest) -> str:
    system.seed([spec_of(request)])
    driver = MigrationDriver(system)
    driver.send([request])
    outcome = driver.wait([request.migration_id])[request.migration_id]
    return outcome.status if outcome.status == "SUCCEEDED" else f"{outcome.status}: {outcome.cause}"


def _wait_until_complete(receiver: CallbackReceiver, timeout: float = 20.0) -> None:
    """Deliveries are asynchronous (EventBridge -> Lambda): wait for the last ones to land."""
    deadline = time.monotonic() + timeout
    while not _complete(receiver.received()) and time.monotonic() < deadline:
        time.sleep(0.2)


def _complete(deliveries: list[ReceivedCallback]) -> bool:
    """Every host has its MigrationCompleted and every sequence before it."""
    for host in CALLBACK_HOSTS:
        sequences = {d.sequence for d in deliveries if d.host == host}
        completed = [
            d for d in deliveries if d.host == host and d.detail_type == "MigrationCompleted"
        ]
        if not completed or sequences != set(range(2, completed[0].sequence + 1)):
            return False
    return True


def test_every_status_event_reaches_every_callback_url_signed_and_in_sequence(
    system: EmbeddedSystem,
) -> None:
    # GIVEN a wave-2 VM with two callback URLs and a receiver standing in for both
    request = _billing_app_vm()
    receiver = _receiver(system)

    # WHEN it migrates
    assert _migrate(system, request) == "SUCCEEDED"
    _wait_until_complete(receiver)

    # THEN each host got every event but MigrationRequested (sequence 1), once, signed,
    # over verified TLS, ending with MigrationCompleted
    deliveries = receiver.received()
    assert {d.host for d in deliveries} == set(CALLBACK_HOSTS)
    for host, path in CALLBACK_HOSTS.items():
        mine = sorted((d for d in deliveries if d.host == host), key=lambda d: d.sequence)
        sequences = [d.sequence for d in mine]
        assert sequences == list(range(2, len(mine) + 2)), f"{host}: {sequences}"
        assert all(d.verified and d.answered == 204 for d in mine)
        assert all(d.path == path for d in mine)
        assert {d.event["detail"]["migrationId"] for d in mine} == {request.migration_id}
        # every event names the lane the VM migrates into, as the manifest says
        vm = request.effective_vm
        assert vm is not None
        assert {
            (d.event["detail"]["targetAccountId"], d.event["detail"]["targetRegion"]) for d in mine
        } == {(vm.target_account_id, vm.target_region)}
        types = [d.detail_type for d in mine]
        assert types[-1] == "MigrationCompleted"
        assert {"MigrationStatusUpdated", "ApprovalRequested", "ApprovalDecided"} <= set(types)
        assert "MigrationRequested" not in types
    counters = system.counters()
    assert counters.lambda_errors.get(system.names.function("callback_handler"), 0) == 0


@pytest.mark.parametrize("mode", [ReceiverMode.REFUSING, ReceiverMode.UNAVAILABLE])
def test_a_dead_callback_endpoint_never_stops_a_migration(
    system: EmbeddedSystem, mode: ReceiverMode
) -> None:
    # GIVEN callback endpoints that refuse connections, or answer 503 to everything
    request = _billing_app_vm()
    receiver = _receiver(system)
    receiver.mode = mode

    # WHEN the VM migrates
    status = _migrate(system, request)

    # THEN it succeeds; the handler gave up on each delivery without raising
    assert status == "SUCCEEDED"
    counters = system.counters()
    function = system.names.function("callback_handler")
    assert counters.lambda_invocations.get(function, 0) > 0
    assert counters.lambda_errors.get(function, 0) == 0
    deliveries = receiver.received()
    if mode is ReceiverMode.REFUSING:
        assert deliveries == []
    else:
        assert deliveries
        assert {d.answered for d in deliveries} == {503}
        attempts: dict[tuple[str, str], int] = {}
        for delivery in deliveries:
            key = (delivery.host, delivery.event["id"])
            attempts[key] = attempts.get(key, 0) + 1
        assert max(attempts.values()) <= 3  # bounded retries, per event and URL
