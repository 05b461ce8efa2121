"""Serve a slack_bolt `App` over plain HTTP on loopback, the way Slack reaches it in production.

The stand-in sends real signed HTTP requests; this turns each into a `BoltRequest` and hands it
to `app.dispatch`, so the app's signature check, ack timing and listeners all run unmodified.
Given a Lambda function name, each dispatch runs as that function (``api_recorder``), as the
app does on Lambda; its lazy listeners, on Bolt's thread pool, too.
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from slack_bolt import App
from slack_bolt.request import BoltRequest

from orchestration.local.api_recorder import running_function
from orchestration.local.virtual_clock import LENT_HEADER, active_virtual_clock


class _BoltHandler(BaseHTTPRequestHandler):
    server: _BoltServer

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != self.server.path:
            self._reply(404, {"content-type": ["text/plain"]}, "Not Found")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        headers: dict[str, str | list[str]] = {}
        for name in set(self.headers.keys()):
            headers[name.lower()] = list(self.headers.get_all(name) or [])
        request = BoltRequest(body=body, query=url.query, headers=dict(headers))
        clock = active_virtual_clock()
        lent = self.headers.get(LENT_HEADER) == "1"
        with clock.borrowing(lent) if clock is not None else nullcontext():
            if self.server.function_name is None:
                response = self.server.app.dispatch(request)
            else:
                with running_function(self.server.function_name):
                    response = self.server.app.dispatch(request)
        self._reply(response.status, response.headers, response.body)

    def _reply(self, status: int, headers: Any, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        for name, values in headers.items():
            if name.lower() == "content-length":
                continue
            for value in values:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: Bolt logs what matters."""


class _BoltServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: App, path: str, function_name: str | None) -> None:
        super().__init__(("127.0.0.1", 0), _BoltHandler)
        self.app = app
        self.path = path
        self.function_name = function_name


class BoltHttpServer:
    """A Bolt `App` on 127.0.0.1 (port chosen by the OS); `start()` returns its request URL.

    ``function_name``: the Lambda function the app is on AWS; its AWS calls are attributed to it.
    """

    def __init__(
        self, app: App, *, path: str = "/slack/events", function_name: str | None = None
    ) -> None:
        self._app = app
        self._path = path
        self._function_name = function_name
        self._server: _BoltServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        if self._server is None:
            self._server = _BoltServer(self._app, self._path, self._function_name)
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="bolt-http", daemon=True
            )
            self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}{self._path}"

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
