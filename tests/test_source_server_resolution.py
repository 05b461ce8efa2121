"""Finding a VM's source server by name in a lane of many: listed once a minute, errors checked.

``SourceServerDirectory`` against ``FakeMgn`` (counting its listings) on a clock the test
moves: a wave's VMs share one listing, a server that appears later is found, a kept list never
answers "not found" or "ambiguous" without a fresh listing, and lanes keep lists of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from orchestration.adapters.mgn import SourceServer, SourceServerNotFoundError
from orchestration.pipeline.resolution import LISTING_MAX_AGE, SourceServerDirectory
from orchestration.pipeline.spec import SourceHints
from tests.support.fakes import FakeMgn, FixedClock, source_server

LANE = ("444455556666", "eu-west-1")


class ListingMgn(FakeMgn):
    """FakeMgn that counts its full listings (the calls the directory saves)."""

    def __init__(self, *servers: SourceServer) -> None:
        super().__init__(*servers)
        self.listings = 0

    def source_servers(
        self, ids: Sequence[str] | None = None, *, include_archived: bool = False
    ) -> list[SourceServer]:
        if ids is None:
            self.listings += 1
        return super().source_servers(ids, include_archived=include_archived)


def _server(n: int, **changes: Any) -> SourceServer:
    return source_server(f"s-{n:017x}", **{"hostname": f"app{n:03d}", **changes})


def _by_name(hostname: str) -> SourceHints:
    return SourceHints(source_vm_id=f"vm-{hostname}", hostname=hostname)


def test_a_wave_shares_one_listing_per_minute() -> None:
    clock = FixedClock()
    mgn = ListingMgn(*(_server(n) for n in range(50)))
    directory = SourceServerDirectory(clock)

    found = [directory.resolve(LANE, mgn, _by_name(f"app{n:03d}")) for n in range(50)]

    assert [s.source_server_id for s in found] == [f"s-{n:017x}" for n in range(50)]
    assert mgn.listings == 1
    clock.advance(LISTING_MAX_AGE + timedelta(seconds=1))
    directory.resolve(LANE, mgn, _by_name("app007"))
    assert mgn.listings == 2  # the list is a minute old at most


def test_a_server_missing_from_the_kept_list_is_looked_for_in_a_fresh_one() -> None:
    clock = FixedClock()
    mgn = ListingMgn(_server(1))
    directory = SourceServerDirectory(clock)
    directory.resolve(LANE, mgn, _by_name("app001"))

    # in the same instant, a fresh list would say the same: not found, no second listing
    with pytest.raises(SourceServerNotFoundError, match="app002"):
        directory.resolve(LANE, mgn, _by_name("app002"))
    assert mgn.listings == 1

    # its agent is installed a few seconds later: found, from a fresh listing
    clock.advance(timedelta(seconds=5))
    mgn.servers[_server(2).source_server_id] = _server(2)
    assert directory.resolve(LANE, mgn, _by_name("app002")).source_server_id == f"s-{2:017x}"
    assert mgn.listings == 2


def test_ambiguity_and_archiving_are_judged_on_a_fresh_list() -> None:
    clock = FixedClock()
    mgn = ListingMgn(_server(1), _server(2))
    directory = SourceServerDirectory(clock)
    directory.resolve(LANE, mgn, _by_name("app001"))
    clock.advance(timedelta(seconds=5))

    # a second agent now reports app001's name, and app002 was archived: the kept list would
    # still give one answer for each; the directory checks neither there, only errors
    mgn.servers["s-dup"] = source_server("s-dup", hostname="app001")
    mgn.servers[_server(2).source_server_id] = _server(2, is_archived=True)
    assert directory.resolve(LANE, mgn, _by_name("app001")).source_server_id == f"s-{1:017x}"
    assert mgn.listings == 1  # a kept answer is used while the list is young...
    clock.advance(LISTING_MAX_AGE + timedelta(seconds=1))  # ...and renewed within a minute
    with pytest.raises(SourceServerNotFoundError, match="matches 2 source servers"):
        directory.resolve(LANE, mgn, _by_name("app001"))
    with pytest.raises(SourceServerNotFoundError, match="app002"):
        directory.resolve(LANE, mgn, _by_name("app002"))


def test_lanes_keep_lists_of_their_own_and_explicit_ids_are_looked_up() -> None:
    clock = FixedClock()
    ireland, frankfurt = ListingMgn(_server(1)), ListingMgn(_server(1, hostname="web001"))
    directory = SourceServerDirectory(clock)

    directory.resolve(LANE, ireland, _by_name("app001"))
    found = directory.resolve(("444455556666", "eu-central-1"), frankfurt, _by_name("web001"))
    by_id = directory.resolve(
        LANE, ireland, SourceHints(source_vm_id="vm-1", source_server_id=f"s-{1:017x}")
    )

    assert found.hostname == "web001"
    assert by_id.hostname == "app001"
    assert (ireland.listings, frankfurt.listings) == (1, 1)
