"""Drift in the plan (``wavepilot plan --mgn-drift``): MGN's console grouping read through the
lanes' real boto3 clients (the emulator), compared with the manifests per VM, reported as
warnings at each VM's line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestration import wiring
from orchestration.local.system import EmbeddedSystem, SystemOptions
from orchestration.manifests.findings import Severity
from orchestration.pipeline.mgn_drift import drift_findings, grouping_drift
from tests.support.pipeline import example_requests, spec_of


@pytest.fixture
def system() -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(SystemOptions()) as running:
        yield running


def test_a_server_moved_in_the_console_is_a_warning_at_its_vms_line(
    system: EmbeddedSystem,
) -> None:
    # GIVEN three VMs of wave-1: one MGN groups as the manifests say, one a person moved into
    # an application of their own in the console, one not grouped yet (never run)
    placed, moved, new = example_requests()[:3]
    servers = system.seed([spec_of(r) for r in (placed, moved, new)])
    mgn = system.mgn_of_server(servers[placed.migration_id])
    wave_id = mgn.add_wave("wave-1", tags={"wavepilot:managed": "true"})
    ours = mgn.add_application(
        f"wave-1/{placed.app_name}", wave_id=wave_id, tags={"wavepilot:managed": "true"}
    )
    theirs = mgn.add_application("Payroll servers")
    mgn.move_source_server(servers[placed.migration_id], ours)
    mgn.move_source_server(servers[moved.migration_id], theirs)

    # WHEN the plan looks for drift
    drifts = grouping_drift([placed, moved, new], wiring.lanes())
    findings = drift_findings(drifts)

    # THEN only the moved one is reported, at its line, as a warning that says what MGN has
    assert [d.request.migration_id for d in drifts] == [moved.migration_id]
    [finding] = findings
    assert moved.provenance is not None
    assert (finding.path, finding.line, finding.severity) == (
        moved.provenance.manifest_path,
        moved.provenance.line,
        Severity.WARNING,
    )
    assert finding.message.startswith(f"{moved.target_vm_name}: MGN's grouping differs")
    assert "application Payroll servers" in finding.message
    assert "publishing puts it back" in finding.message
