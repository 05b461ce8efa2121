"""Serve a slack_bolt `App` over plain HTTP on loopback, the way Slack reaches it in production.

The stand-in sends real signed HTTP requests; this turns each into a `BoltRequest` and hands it
to `app.dispatch`, so the app's signature check, ack timing and listeners all run unmodified.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from slack_bolt import App
from slack_bolt.request import BoltRequest


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
        response = self.server.app.dispatch(
            BoltRequest(body=body, query=url.query, headers=dict(headers))
        )
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

    def __init__(self, app: App, path: str) -> None:
        super().__init__(("127.0.0.1", 0), _BoltHandler)
        self.app = app
        self.path = path


class BoltHttpServer:
    """A Bolt `App` on 127.0.0.1 (port chosen by the OS); `start()` returns its request URL."""

    def __init__(self, app: App, *, path: str = "/slack/events") -> None:
        self._app = app
        self._path = path
        self._server: _BoltServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        if self._server is None:
            self._server = _BoltServer(self._app, self._path)
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
