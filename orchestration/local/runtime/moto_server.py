"""moto's ``ThreadedMotoServer``, stopping in a tenth of the time.

``ThreadedMotoServer`` serves with werkzeug's ``serve_forever()`` default poll interval of
0.5 s, and ``stop()`` waits for the loop to notice: half a second per runtime, which is most
of the cost of a fresh runtime per test. The override below is moto's own ``_server_entry``
(``moto/moto_server/threaded_moto_server.py``) with a shorter poll interval; a canary test
checks moto's version still has the same shape.

Its dispatcher also remembers which backend serves each host: moto's looks it up on every
request by listing moto's package directory (a ``stat`` per service) under the dispatcher's
lock, which serialised every request behind a few hundred system calls.
"""

from __future__ import annotations

from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

SHUTDOWN_POLL_SECONDS = 0.05


class CachingDispatcherApplication(DomainDispatcherApplication):
    """moto's dispatcher; the backend for a host is looked up once (the answer never changes:
    moto's modules and URL patterns are fixed for the process)."""

    def __init__(self, create_app: Any) -> None:
        super().__init__(create_app)
        self._backend_by_host: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        # Called under the dispatcher's lock (get_application).
        try:
            return self._backend_by_host[host]
        except KeyError:
            backend = super().get_backend_for_host(host)
            self._backend_by_host[host] = backend
            return backend


class LoopbackMotoServer(ThreadedMotoServer):
    """``ThreadedMotoServer`` on an ephemeral 127.0.0.1 port that stops promptly."""

    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.application: CachingDispatcherApplication | None = None  # set once serving

    def _server_entry(self) -> None:
        app = CachingDispatcherApplication(create_backend_app)
        self.application = app
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever(poll_interval=SHUTDOWN_POLL_SECONDS)

    @property
    def port(self) -> int:
        _, port = self.get_host_and_port()
        return int(port)
