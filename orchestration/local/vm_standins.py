"""Stand-ins for the services of launched instances, on loopback.

An emulated instance has a private IP nobody listens on. When the pipeline's real health
checks (TCP connect, HTTP(S) GET) ask for ``10.0.1.23:443``, the resolver finds the instance
in emulated EC2 (in every lane: each target account and Region is asked, with the landing
zone's administrator credentials, outside any function's IAM attribution), its MGN source
server (the tag MGN puts on what it launches) and that VM's manifest health checks, and
points the check at a loopback listener that behaves as the VM would: it accepts TCP, and
answers each checked path with the status the manifest expects. A VM marked unhealthy
answers 503 and so fails its checks, for fault-injection tests.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterable
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from orchestration.health_checks import HealthCheckSpec
from orchestration.local.api_recorder import unattributed
from orchestration.local.tls import self_signed_loopback_tls

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

# Nothing listens on the discard port on loopback: an unmapped address fails at once.
UNREACHABLE = ("127.0.0.1", 9)


class _Listener:
    def __init__(self, statuses: dict[str, int], tls: bool, healthy: Callable[[], bool]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status = statuses.get(self.path.split("?")[0], 404) if healthy() else 503
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls:
            self.server.socket = _tls_context().wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class VmStandIns:
    def __init__(
        self,
        ec2: Callable[[], Iterable[EC2Client]],
        checks_for_server: Callable[[str], list[HealthCheckSpec]],
        server_tag: str,
    ) -> None:
        self._ec2 = ec2
        self._checks_for_server = checks_for_server
        self._server_tag = server_tag
        self._listeners: dict[tuple[str, int], _Listener] = {}
        self._unhealthy: set[str] = set()
        self._lock = threading.Lock()

    def mark_unhealthy(self, source_server_id: str) -> None:
        self._unhealthy.add(source_server_id)

    def resolve(self, address: str, port: int) -> tuple[str, int]:
        server_id = self._server_at(address)
        if server_id is None:
            return UNREACHABLE
        checks = [c for c in self._checks_for_server(server_id) if c.effective_port == port]
        if not checks:
            return UNREACHABLE
        with self._lock:
            listener = self._listeners.get((server_id, port))
            if listener is None:
                statuses = {c.path: c.expected_status for c in checks if c.type == "http"}
                tls = any(c.type == "http" and c.scheme == "https" for c in checks)
                listener = _Listener(statuses, tls, lambda: server_id not in self._unhealthy)
                self._listeners[(server_id, port)] = listener
        return "127.0.0.1", listener.port

    def _server_at(self, address: str) -> str | None:
        if not address:
            return None
        with unattributed():  # the harness looking, not the function's role
            for ec2 in self._ec2():
                reservations = ec2.describe_instances(
                    Filters=[
                        {"Name": "private-ip-address", "Values": [address]},
                        {"Name": "instance-state-name", "Values": ["pending", "running"]},
                    ]
                )["Reservations"]
                for reservation in reservations:
                    for instance in reservation.get("Instances", []):
                        for tag in instance.get("Tags", []):
                            if tag["Key"] == self._server_tag:
                                return str(tag["Value"])
        return None

    def stop(self) -> None:
        with self._lock:
            for listener in self._listeners.values():
                listener.stop()
            self._listeners.clear()


@cache
def _tls_context() -> ssl.SSLContext:
    """One certificate for every HTTPS stand-in (health checks do not verify it, by design)."""
    context, _ = self_signed_loopback_tls("wavepilot-standin")
    return context
