"""MGN's "Actively replicating source servers" quota: replication slots, first come first served.

AWS allows 150 actively replicating source servers per account and Region by default
(adjustable; `QuotaLimits.replicating_servers`). In the emulator:

  - A non-archived source server holds a slot from agent install (`add_source_server`) until
    its replication ends: FinalizeCutover, DisconnectFromService or MarkAsArchived.
  - A server added while every slot is taken waits, in the order servers were added. It reports
    `dataReplicationState` INITIATING with the first initiation step (WAIT) IN_PROGRESS, no
    progress and no ETA.
  - At the instant a slot frees (inside the operation that ends a replication), the first
    waiting server gets it and its replication starts then: its plan's `started_at` becomes
    that instant, and `replication` computes everything after from the plan as usual.

Slots change hands only at instants something happens (a seed, an operation), so replication
stays a pure function of its plan: no background loop hands slots out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestration.local.mgn.model import SourceServerRecord


@dataclass(slots=True)
class ReplicationSlots:
    """Who replicates and who waits, in one account and Region (mutated under the lock).

    Attributes:
        limit: the quota (`QuotaLimits.replicating_servers`).
        holders: IDs of the servers that hold a slot.
        waiting: servers waiting for one, first come first served.
    """

    limit: int
    holders: set[str] = field(default_factory=set)
    waiting: deque[SourceServerRecord] = field(default_factory=deque)

    def admit(self, server: SourceServerRecord) -> None:
        """A newly installed agent: replication starts at agent install if a slot is free,
        else the server joins the queue."""
        if len(self.holders) < self.limit:
            self._grant(server, server.replication.agent_installed_at)
        else:
            self.waiting.append(server)

    def release(self, server: SourceServerRecord, now: datetime) -> None:
        """The server's replication ended at `now` (or, if it was still waiting, it no longer
        waits); freed slots go to the servers waiting longest, starting now."""
        if server.source_server_id in self.holders:
            self.holders.discard(server.source_server_id)
        elif any(waiting is server for waiting in self.waiting):
            self.waiting = deque(waiting for waiting in self.waiting if waiting is not server)
        while self.waiting and len(self.holders) < self.limit:
            self._grant(self.waiting.popleft(), now)

    def _grant(self, server: SourceServerRecord, start: datetime) -> None:
        self.holders.add(server.source_server_id)
        server.replication = server.replication.starting_at(start)
