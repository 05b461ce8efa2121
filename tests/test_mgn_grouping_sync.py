"""``MgnGroupingSync`` against the MGN emulator through the real boto3 client and adapter.

What the pure plan's tests cannot show: how many MGN calls a wave's VMs cost (the emulator
counts them), and that VMs placing themselves at once (one execution each) end with one wave
and one application, MGN's name conflicts answered by listing again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import boto3
import pytest
from botocore.config import Config

from orchestration.adapters.mgn import MgnAdapter, MgnQuotaExceededError
from orchestration.local.mgn import EmulatorSettings, MgnEmulator, QuotaLimits, SimulatedClock
from orchestration.pipeline.mgn_grouping_sync import PLACEMENT_MAX_AGE, MgnGroupingSync
from orchestration.pipeline.spec import MigrationSpec
from tests.support.fakes import FixedClock
from tests.support.pipeline import example_requests, spec_of

SPEC = spec_of(example_requests()[0])  # wave-1, application intranet


class NoEc2:
    """MGN's grouping launches nothing: an EC2 port that only hands out template IDs."""

    def __init__(self) -> None:
        self._count = 0

    def create_launch_template(self, name: str, instance_type: str, tags: Mapping[str, str]) -> str:
        self._count += 1
        return f"lt-{self._count:017x}"

    def run_instance(
        self,
        launch_template_id: str,
        source_server_id: str,
        tags: Mapping[str, str],
        instance_type_override: str | None = None,
    ) -> str:
        raise AssertionError("nothing is launched here")

    def terminate_instances(self, instance_ids: Sequence[str]) -> None:
        raise AssertionError("nothing is launched here")


class OneLane:
    """Every spec's lane is the emulator's (the sync asks its lanes for ``.mgn``)."""

    def __init__(self, mgn: MgnAdapter) -> None:
        self.mgn = mgn

    def for_spec(self, spec: MigrationSpec) -> OneLane:
        return self


def _emulator(quotas: QuotaLimits | None = None) -> Iterator[MgnEmulator]:
    settings = EmulatorSettings(seed=3, quotas=quotas or QuotaLimits())
    emulator = MgnEmulator(NoEc2(), clock=SimulatedClock(speed=0), settings=settings)
    with emulator.serve():
        yield emulator


@pytest.fixture
def emulator() -> Iterator[MgnEmulator]:
    yield from _emulator()


def _adapter(emulator: MgnEmulator) -> MgnAdapter:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    client = session.client(
        "mgn", endpoint_url=emulator.endpoint_url, config=Config(retries={"mode": "standard"})
    )
    return MgnAdapter(client)


def _servers(emulator: MgnEmulator, count: int) -> list[str]:
    return [
        emulator.add_source_server(hostname=f"vm{i:02d}").source_server_id for i in range(count)
    ]


def test_a_wave_costs_its_first_vm_the_setup_and_each_other_vm_one_call(
    emulator: MgnEmulator,
) -> None:
    mgn = _adapter(emulator)
    clock = FixedClock()
    sync = MgnGroupingSync(OneLane(mgn), clock)
    servers = _servers(emulator, 5)
    emulator.reset_metrics()

    first = sync.place(SPEC, servers[0], None)
    setup = dict(emulator.metrics().calls_by_operation)
    for server_id in servers[1:]:
        assert sync.place(SPEC, server_id, None) == first
    # and a VM whose fresh description shows it in place costs nothing
    assert sync.place(SPEC, servers[0], mgn.source_server(servers[0])) == first

    assert setup == {
        "DescribeSourceServers": 1,
        "ListWaves": 1,
        "ListApplications": 1,
        "CreateWave": 1,
        "CreateApplication": 1,
        "AssociateApplications": 1,
        "AssociateSourceServers": 1,
    }
    calls = dict(emulator.metrics().calls_by_operation)
    assert calls["AssociateSourceServers"] == 5
    assert calls["DescribeSourceServers"] == 2  # the first VM's, and the test's own
    assert sum(calls.values()) == sum(setup.values()) + 4 + 1
    grouping = mgn.grouping()
    [wave] = grouping.waves
    [application] = grouping.applications
    assert (wave.name, wave.managed) == ("wave-1", True)
    assert (application.name, application.wave_id) == ("wave-1/intranet", wave.wave_id)
    assert sorted(mgn.servers_in_application(application.application_id)) == sorted(servers)
    # AND after a while the IDs are looked up again (someone may have changed MGN)
    clock.advance(PLACEMENT_MAX_AGE + timedelta(seconds=1))
    emulator.reset_metrics()
    sync.place(SPEC, servers[1], mgn.source_server(servers[1]))
    assert emulator.metrics().calls_by_operation.keys() == {
        "DescribeSourceServers",
        "ListWaves",
        "ListApplications",
    }


def test_vms_placing_themselves_at_once_share_one_wave_and_one_application(
    emulator: MgnEmulator,
) -> None:
    servers = _servers(emulator, 8)
    # one sync per VM: as many Lambda containers, none knowing what the others created
    syncs = [MgnGroupingSync(OneLane(_adapter(emulator)), FixedClock()) for _ in servers]

    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        placed = list(
            pool.map(
                lambda pair: pair[0].place(SPEC, pair[1], None), zip(syncs, servers, strict=True)
            )
        )

    assert len({(p.wave_id, p.application_id) for p in placed}) == 1
    grouping = _adapter(emulator).grouping()
    assert [w.name for w in grouping.waves] == ["wave-1"]
    assert [a.name for a in grouping.applications] == ["wave-1/intranet"]
    in_app = _adapter(emulator).servers_in_application(placed[0].application_id)
    assert sorted(in_app) == sorted(servers)
    conflicts = emulator.metrics().errors_by_code.get("ConflictException", 0)
    assert conflicts <= 2 * (len(servers) - 1)  # each lost race costs a retry, no more


def test_a_wave_moved_back_unarchives_what_it_left(emulator: MgnEmulator) -> None:
    mgn = _adapter(emulator)
    sync = MgnGroupingSync(OneLane(mgn), FixedClock())
    [server_id] = _servers(emulator, 1)
    elsewhere = SPEC.model_copy(update={"wave": "wave-9"})

    sync.place(SPEC, server_id, None)
    away = sync.place(elsewhere, server_id, None)
    back = sync.place(SPEC, server_id, None)

    assert away.archived == ("application wave-1/intranet", "wave wave-1")
    assert back.archived == ("application wave-9/intranet", "wave wave-9")
    grouping = mgn.grouping()
    active = sorted(w.name for w in grouping.waves if not w.is_archived)
    assert active == ["wave-1"]
    assert len(grouping.waves) == 2  # wave-1 came back: unarchived, not created again
    assert all(wave.managed for wave in grouping.waves)
    assert mgn.source_server(server_id).application_id == back.application_id


def test_a_full_account_is_mgns_quota_error() -> None:
    for emulator in _emulator(QuotaLimits(active_waves=1)):
        emulator.add_wave("someone else's wave")
        [server_id] = _servers(emulator, 1)
        sync = MgnGroupingSync(OneLane(_adapter(emulator)), FixedClock())

        with pytest.raises(MgnQuotaExceededError, match="at most 1"):
            sync.place(SPEC, server_id, None)


def test_the_cutover_asks_nothing_while_the_server_is_where_the_test_put_it(
    emulator: MgnEmulator,
) -> None:
    mgn = _adapter(emulator)
    [server_id] = _servers(emulator, 1)
    at_test = MgnGroupingSync(OneLane(mgn), FixedClock()).place(SPEC, server_id, None)
    cutover = MgnGroupingSync(OneLane(mgn), FixedClock())  # hours later: another container
    emulator.reset_metrics()

    still = cutover.place(SPEC, server_id, mgn.source_server(server_id), at_test)

    assert still == at_test
    assert dict(emulator.metrics().calls_by_operation) == {"DescribeSourceServers": 1}
    # AND moved in the console since: put back, and said
    theirs = emulator.add_application("Payroll")
    emulator.move_source_server(server_id, theirs)
    back = cutover.place(SPEC, server_id, mgn.source_server(server_id), at_test)
    assert back.application_id == at_test.application_id
    assert "application Payroll, an application Wavepilot does not manage" in back.drift[0]
    assert mgn.source_server(server_id).application_id == at_test.application_id
