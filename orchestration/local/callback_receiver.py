"""A loopback HTTPS receiver standing in for every callback endpoint (CMDB, ticketing, ...).

The embedded runtime routes every callback host here, so the real transport runs: real TLS
(a self-signed certificate made per receiver, which only the route's SSL context trusts;
certificate checks stay on), real HTTP, real signatures. The receiver verifies each delivery
the way ``docs/CALLBACKS.md`` tells receivers to, records it, and answers 204 (or 401 when
the signature does not verify). For tests it can play dead: refuse connections, answer 503 to
everything, or answer slowly (after ``slow_answer_seconds`` of real time: past the sender's
attempt timeout, the sender has given up by then).
"""

from __future__ import annotations

import enum
import json
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from orchestration.adapters.callback_transport import CallbackRoute
from orchestration.local.tls import LOOPBACK, self_signed_loopback_tls
from orchestration.pipeline.callbacks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CallbackSignatureError,
    verify_signature,
)

# Nothing listens on the discard port on loopback: connections are refused at once.
REFUSING = (LOOPBACK, 9)
MAX_BODY_BYTES = 256 * 1024


class ReceiverMode(enum.Enum):
    UP = "up"
    REFUSING = "refusing"  # connections refused, as when the endpoint's host is down
    UNAVAILABLE = "unavailable"  # answers 503 with Retry-After: 1, as an overloaded service
    SLOW = "slow"  # answers (204 or 401) after slow_answer_seconds, as a service in trouble


@dataclass(frozen=True, slots=True)
class ReceivedCallback:
    """One POST as the receiver saw it; ``host`` is the Host header, i.e. the URL's host."""

    host: str
    path: str
    headers: dict[str, str]
    body: bytes
    signature_error: str | None  # None when the signature verified
    answered: int
    received_at: float
    # Real seconds the receiver took to answer; the sender may have stopped waiting before.
    answer_seconds: float = 0.0

    @property
    def verified(self) -> bool:
        return self.signature_error is None

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def detail_type(self) -> str:
        return str(self.event["detail-type"])

    @property
    def sequence(self) -> int:
        return int(self.event["detail"]["sequence"])


class CallbackReceiver:
    """Start with ``start()``; point transports at it with :meth:`route`."""

    def __init__(self, signing_secret: str) -> None:
        self._secret = signing_secret
        self._received: list[ReceivedCallback] = []
        self._lock = threading.Lock()
        self._answered = threading.Condition(self._lock)
        self._answering = 0  # POSTs read and not yet answered (a slow answer sleeps first)
        self.mode = ReceiverMode.UP
        self.slow_answer_seconds = 6.0  # past the sender's 5-second attempt timeout
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._client_context: ssl.SSLContext | None = None
        self.port = 0

    def start(self) -> CallbackReceiver:
        server_context, certificate_pem = self_signed_loopback_tls("wavepilot-callback-receiver")
        self._client_context = ssl.create_default_context(cadata=certificate_pem)
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.socket = server_context.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits for one poll
            name="callback-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def route(self, host: str, port: int) -> CallbackRoute:
        """A :data:`CallbackRouteResolver`: every callback host and port leads here.

        The SSL context trusts this receiver's certificate only, and checks that it names
        127.0.0.1, so the transport's verification is exercised, not switched off.
        """
        assert self._client_context is not None, "start() the receiver first"
        if self.mode is ReceiverMode.REFUSING:
            return CallbackRoute(*REFUSING, self._client_context)
        return CallbackRoute(LOOPBACK, self.port, self._client_context)

    def received(self) -> list[ReceivedCallback]:
        with self._lock:
            return list(self._received)

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until every POST that arrived is answered and recorded (a slow answer is
        recorded when it is given, up to ``slow_answer_seconds`` after its sender gave up);
        False if some were still unanswered after ``timeout`` seconds (default: a slow
        answer's delay and a second)."""
        wait = self.slow_answer_seconds + 1.0 if timeout is None else timeout
        with self._answered:
            return self._answered.wait_for(lambda: self._answering == 0, wait)

    def _arrived(self) -> None:
        with self._answered:
            self._answering += 1

    def _record(self, delivery: ReceivedCallback | None) -> None:
        """Record an answered POST (None: it failed before an answer) and let settle() on."""
        with self._answered:
            if delivery is not None:
                self._received.append(delivery)
            self._answering -= 1
            self._answered.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                receiver._arrived()
                delivery: ReceivedCallback | None = None
                try:
                    delivery = self._answer()
                finally:
                    receiver._record(delivery)
                self.send_response(delivery.answered)
                if delivery.answered == 503:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

            def _answer(self) -> ReceivedCallback:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY_BYTES)
                body = self.rfile.read(length)
                started = time.monotonic()
                if receiver.mode is ReceiverMode.SLOW:
                    time.sleep(receiver.slow_answer_seconds)  # real: the sender's timeout is
                error: str | None
                if receiver.mode is ReceiverMode.UNAVAILABLE:
                    status, error = 503, "unavailable"
                else:
                    error = receiver._verification_error(
                        body, self.headers.get(TIMESTAMP_HEADER), self.headers.get(SIGNATURE_HEADER)
                    )
                    status = 204 if error is None and self.headers.get(EVENT_ID_HEADER) else 401
                return ReceivedCallback(
                    host=(self.headers.get("Host") or "").split(":")[0],
                    path=self.path,
                    headers=dict(self.headers.items()),
                    body=body,
                    signature_error=error,
                    answered=status,
                    received_at=time.time(),
                    answer_seconds=time.monotonic() - started,
                )

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    def _verification_error(
        self, body: bytes, timestamp: str | None, signature: str | None
    ) -> str | None:
        try:
            verify_signature(
                self._secret,
                body=body,
                timestamp_header=timestamp,
                signature_header=signature,
                now=time.time(),
            )
        except CallbackSignatureError as exc:
            return exc.reason
        return None
