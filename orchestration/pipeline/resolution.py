"""Find the MGN source server of a VM: explicit ID, then userProvidedID, then a unique hostname.

Matching by hostname is the fragile last resort (servers without an agent report no hints;
two agents can report the same short name), so ambiguity is an error that lists the
candidates, never a guess.

Matching by userProvidedID or hostname needs the lane's whole list of source servers (MGN
filters by ID, not by name). A wave of hundreds validates its VMs within a minute, each
listing every server of the lane: quadratic, and a 1,000-VM wave moves a million server
descriptions. ``SourceServerDirectory`` keeps a lane's list for a minute (per warm Lambda
container; every VM it finds is looked up by ID afterwards), and never answers "not found" or
"ambiguous" from a kept list: an error is confirmed against a fresh one first.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from datetime import datetime, timedelta

from orchestration.adapters.mgn import SourceServer, SourceServerNotFoundError
from orchestration.clock import Clock
from orchestration.pipeline.ports import SourceServers
from orchestration.pipeline.spec import SourceHints

LISTING_MAX_AGE = timedelta(minutes=1)


def _short(name: str | None) -> str:
    return (name or "").lower().split(".")[0]


def resolve_source_server(mgn: SourceServers, hints: SourceHints) -> SourceServer:
    """The one non-archived source server the hints name.

    Raises:
        SourceServerNotFoundError: with what was tried and what to fix.
    """
    if hints.source_server_id:
        try:
            server = mgn.source_server(hints.source_server_id)
        except SourceServerNotFoundError:
            raise SourceServerNotFoundError(
                f"source server {hints.source_server_id} does not exist in MGN in this account "
                "and Region: check source.sourceServerId (MGN console, Source servers)"
            ) from None
        if server.is_archived:
            raise SourceServerNotFoundError(
                f"source server {hints.source_server_id} is archived: unarchive it in MGN or "
                "point source.sourceServerId at the live server"
            )
        return server

    return match_source_server(mgn.source_servers(), hints)


def match_source_server(servers: list[SourceServer], hints: SourceHints) -> SourceServer:
    """The one server of ``servers`` (a lane's live ones) that ``hints`` name by
    userProvidedID or hostname; raises ``SourceServerNotFoundError`` naming what was tried."""
    tried: list[str] = []
    if hints.user_provided_id:
        matches = [s for s in servers if s.user_provided_id == hints.user_provided_id]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise SourceServerNotFoundError(
                f"{len(matches)} source servers have userProvidedID {hints.user_provided_id!r} "
                f"({', '.join(s.source_server_id for s in matches)}): set source.sourceServerId"
            )
        tried.append(f"userProvidedID {hints.user_provided_id!r}")
    if hints.hostname:
        wanted = hints.hostname.lower()
        exact = [
            s for s in servers if wanted in {(s.fqdn or "").lower(), (s.hostname or "").lower()}
        ]
        matches = exact or [s for s in servers if _short(s.hostname) == _short(wanted)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise SourceServerNotFoundError(
                f"hostname {hints.hostname!r} matches {len(matches)} source servers "
                f"({', '.join(s.source_server_id for s in matches)}): set source.sourceServerId "
                "or source.userProvidedId"
            )
        tried.append(f"hostname {hints.hostname!r}")
    if not tried:
        raise SourceServerNotFoundError(
            "no way to find the MGN source server: set source.sourceServerId, "
            "source.userProvidedId or source.hostname"
        )
    raise SourceServerNotFoundError(
        f"no live source server matches {' or '.join(tried)} among {len(servers)} in MGN: is "
        "the replication agent installed on the VM, in this account and Region?"
    )


class SourceServerDirectory:
    """``resolve_source_server`` with each lane's list of servers kept for ``max_age`` on the
    clock (see the module's docstring). One thread lists a lane at a time; the others wait for
    its list instead of listing too."""

    def __init__(self, clock: Clock, max_age: timedelta = LISTING_MAX_AGE) -> None:
        self._clock = clock
        self._max_age = max_age
        self._listings: dict[Hashable, tuple[datetime, list[SourceServer]]] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def resolve(self, lane: Hashable, mgn: SourceServers, hints: SourceHints) -> SourceServer:
        if hints.source_server_id:
            return resolve_source_server(mgn, hints)
        with self._guard:
            lock = self._locks.setdefault(lane, threading.Lock())
        with lock:
            kept = self._listings.get(lane)
            now = self._clock.now()
            if kept is not None and now - kept[0] <= self._max_age:
                try:
                    return match_source_server(kept[1], hints)
                except SourceServerNotFoundError:
                    if kept[0] == now:
                        raise  # listed this instant: a fresh list says the same
            servers = mgn.source_servers()
            self._listings[lane] = (now, servers)
        return match_source_server(servers, hints)
