"""Stand-ins for the services of launched instances, on loopback.

An emulated instance has a private IP nobody listens on. When the pipeline's real health
checks (TCP connect, HTTP(S) GET) ask for ``10.0.1.23:443``, the resolver finds the instance
in emulated EC2 (every account and Region, read from moto's state in-process: the harness
looking, no call a function makes or AWS would see), its MGN source server (the tag MGN puts
on what it launches) and that VM's manifest health checks, and
points the check at a loopback listener that behaves as the VM would: it accepts TCP, and
answers each checked path with the status the manifest expects. A VM marked unhealthy
answers 503 and so fails its checks, for fault-injection tests.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
from collections.abc import Callable
from functools import cache
from http.server import BaseHTTPRequestHandler
from typing import Any

from orchestration.health_checks import HealthCheckSpec
from orchestration.local.tls import self_signed_loopback_tls

# Nothing listens on the discard port on loopback: an unmapped address fails at once.
UNREACHABLE = ("127.0.0.1", 9)


class _Acceptor:
    """Every stand-in's listening socket, served by one thread.

    A wave of hundreds of VMs has a listener per instance and port; a ``ThreadingHTTPServer``
    each meant a thread per listener waking twice a second to look for its shutdown (a
    1,000-VM rehearsal had a thousand of them). Here one thread waits on all the listening
    sockets at once and hands each accepted connection to a thread of its own, as
    ``ThreadingHTTPServer`` does.
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="vm-standins", daemon=True)
        self._thread.start()

    def listen(self, handler: type[BaseHTTPRequestHandler], tls: bool) -> int:
        """A new loopback listener answering with ``handler``; its port."""
        listening = socket.create_server(("127.0.0.1", 0), backlog=64)
        listening.setblocking(False)
        with self._lock:
            self._sockets.append(listening)
            self._selector.register(listening, selectors.EVENT_READ, (handler, tls))
        self._wake_write.send(b"x")  # the selector picks the new socket up at once
        return int(listening.getsockname()[1])

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
            for key, _ in self._selector.select(timeout=1.0):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_read.recv(4096)
                    continue
                handler, tls = key.data
                try:
                    connection, address = key.fileobj.accept()  # type: ignore[union-attr]
                except (BlockingIOError, OSError):
                    continue
                connection.setblocking(True)
                threading.Thread(
                    target=self._serve, args=(handler, tls, connection, address), daemon=True
                ).start()

    @staticmethod
    def _serve(
        handler: type[BaseHTTPRequestHandler],
        tls: bool,
        connection: socket.socket,
        address: Any,
    ) -> None:
        try:
            if tls:
                connection = _tls_context().wrap_socket(connection, server_side=True)
            handler(connection, address, None)  # type: ignore[arg-type]
        except (OSError, ssl.SSLError):
            pass  # a health check that hung up, or a TCP-only check of a TLS port
        finally:
            with contextlib.suppress(OSError):
                connection.close()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        self._wake_write.send(b"x")
        self._thread.join(timeout=5)
        with self._lock:
            for listening in self._sockets:
                self._selector.unregister(listening)
                listening.close()
            self._sockets.clear()
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()


def _handler(statuses: dict[str, int], healthy: Callable[[], bool]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = statuses.get(self.path.split("?")[0], 404) if healthy() else 503
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


class VmStandIns:
    def __init__(
        self,
        instance_tag_at: Callable[[str, str], str | None],
        checks_for_server: Callable[[str], list[HealthCheckSpec]],
        server_tag: str,
    ) -> None:
        self._instance_tag_at = instance_tag_at
        self._checks_for_server = checks_for_server
        self._server_tag = server_tag
        self._ports: dict[tuple[str, int], int] = {}
        self._unhealthy: set[str] = set()
        self._lock = threading.Lock()
        self._acceptor: _Acceptor | None = None

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
            listening = self._ports.get((server_id, port))
            if listening is None:
                statuses = {c.path: c.expected_status for c in checks if c.type == "http"}
                tls = any(c.type == "http" and c.scheme == "https" for c in checks)
                if self._acceptor is None:
                    self._acceptor = _Acceptor()
                handler = _handler(statuses, lambda: server_id not in self._unhealthy)
                listening = self._acceptor.listen(handler, tls)
                self._ports[(server_id, port)] = listening
        return "127.0.0.1", listening

    def _server_at(self, address: str) -> str | None:
        return self._instance_tag_at(address, self._server_tag) if address else None

    def stop(self) -> None:
        with self._lock:
            acceptor, self._acceptor = self._acceptor, None
            self._ports.clear()
        if acceptor is not None:
            acceptor.stop()


@cache
def _tls_context() -> ssl.SSLContext:
    """One certificate for every HTTPS stand-in (health checks do not verify it, by design)."""
    context, _ = self_signed_loopback_tls("wavepilot-standin")
    return context
