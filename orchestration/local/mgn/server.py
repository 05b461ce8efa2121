"""The loopback HTTP server in front of the MGN emulator (stdlib, a thread per connection).

botocore clients in the same process reach the handler without the socket
(`orchestration.local.runtime.in_process_transport`); other processes use the server.

What answers a request is a `RequestHandler`: one lane's `RestJsonEndpoint` for a single
`MgnEmulator`, or `MgnFleet`'s router, which picks the lane from the request's signature.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from orchestration.local.runtime.in_process_transport import (
    Reply,
    in_process_enabled,
    register_answer,
)

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# How often serve_forever checks for shutdown: stop() waits at most this long.
_SHUTDOWN_POLL_SECONDS = 0.02


class RequestHandler(Protocol):
    """Answers one HTTP request; `headers` has lower-case names."""

    def __call__(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Reply: ...


class _MgnRequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps botocore's pooled connections alive; every reply sets Content-Length.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every kept-alive request.
    disable_nagle_algorithm = True
    server: _MgnHttpServer

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.answer(self.command, self.path, headers, body)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class _MgnHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # The pipeline opens many connections at once; the default backlog of 5 drops some.
    request_queue_size = 128

    def __init__(self, answer: RequestHandler) -> None:
        self.answer = answer
        super().__init__((LOOPBACK, 0), _MgnRequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-reply is not news; socketserver would print a traceback.
        logger.debug("MGN emulator connection from %s failed", client_address, exc_info=True)


class LoopbackServer:
    """Serves one request handler on 127.0.0.1 at an ephemeral port until stopped."""

    def __init__(self, answer: RequestHandler) -> None:
        self._answer = answer
        self._server: _MgnHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._unregister: Callable[[], None] | None = None

    @property
    def url(self) -> str | None:
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        if self._server is not None:
            raise RuntimeError("the MGN emulator is already serving")
        self._server = _MgnHttpServer(self._answer)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _SHUTDOWN_POLL_SECONDS},
            name="mgn-emulator",
            daemon=True,
        )
        self._thread.start()
        url = self.url
        assert url is not None
        if in_process_enabled():  # in-process botocore clients skip the socket
            self._unregister = register_answer(url, self._answer_in_process)
        return url

    def _answer_in_process(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Reply:
        return self._answer(method, path, {k.lower(): v for k, v in headers.items()}, body)

    def stop(self) -> None:
        if self._server is None:
            return
        if self._unregister is not None:
            self._unregister()
            self._unregister = None
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
