"""Find the MGN source server of a VM: explicit ID, then userProvidedID, then a unique hostname.

Matching by hostname is the fragile last resort (servers without an agent report no hints;
two agents can report the same short name), so ambiguity is an error that lists the
candidates, never a guess.
"""

from __future__ import annotations

from orchestration.adapters.mgn import SourceServer, SourceServerNotFoundError
from orchestration.pipeline.ports import SourceServers
from orchestration.pipeline.spec import SourceHints


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

    servers = mgn.source_servers()
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
