"""botocore's requests to the embedded system's own servers, answered without a socket.

The embedded runtime's AWS (moto's WSGI application) and the MGN emulator serve on loopback
HTTP, and a process outside (``wavepilot status --local``, a browser, curl) still reaches
them that way. Clients inside the process that runs them (every handler, the Step Functions
interpreter, the coordinator, the rehearsal) made the same round trip through a TCP
connection: botocore's urllib3 pool, a new connection and a new server thread per request
(werkzeug's development server closes every connection), the server parsing the HTTP
request again. Measured on this machine, a DynamoDB ``GetItem`` costs 3.8 ms of CPU over the
socket and 2.2 ms handed over in process.

Here botocore's ``Endpoint._send`` (where a serialized, signed ``AWSPreparedRequest`` goes
to the wire) gives a request whose URL names a registered server to that server's handler in
the calling thread: the same bytes, headers, method and path the server would have read from
the socket, and the reply comes back as the ``urllib3`` response botocore would have read.
What botocore serializes and parses, and what moto or the emulator does with the request, is
unchanged: only the socket is skipped. A URL no server registered goes over the network as
before (and a server's URL is unregistered when it stops, so a stopped server refuses).

Setting ``WAVEPILOT_LOCAL_TRANSPORT=http`` keeps every request on the socket (to compare, or to
watch the traffic).
"""

from __future__ import annotations

import contextvars
import io
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HeadersDict
from urllib3.response import HTTPResponse

__all__ = [
    "TRANSPORT_ENVIRONMENT_KEY",
    "Reply",
    "in_process_enabled",
    "install",
    "register_answer",
    "register_wsgi",
    "unregister",
]

TRANSPORT_ENVIRONMENT_KEY = "WAVEPILOT_LOCAL_TRANSPORT"
_LOOPBACK_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


# (method, path with its query string as sent, headers, body) -> reply
Answer = Callable[[str, str, Mapping[str, str], bytes], Reply]

_routes: dict[tuple[str, int], Answer] = {}
_routes_lock = threading.Lock()
_installed = False


def in_process_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """False when ``WAVEPILOT_LOCAL_TRANSPORT=http`` asks for sockets only."""
    source = os.environ if environ is None else environ
    return source.get(TRANSPORT_ENVIRONMENT_KEY, "").strip().lower() != "http"


def install() -> None:
    """Patch ``botocore.endpoint.Endpoint._send`` once per process (a no-op without routes)."""
    global _installed  # noqa: PLW0603 - one patch per process
    from botocore.endpoint import Endpoint

    with _routes_lock:
        if _installed:
            return
        original = getattr(Endpoint, "_send")  # noqa: B009 - private in botocore's stubs

        def _send(self: Any, request: AWSPreparedRequest) -> Any:
            answer = _route_for(request.url) if _routes else None
            if answer is None:
                return original(self, request)
            return _answered(answer, request)

        setattr(Endpoint, "_send", _send)  # noqa: B010 - private in botocore's stubs
        _installed = True


def register_answer(url: str, answer: Answer) -> Callable[[], None]:
    """Answer requests to ``url`` (``http://127.0.0.1:<port>``) in process; returns the undo.

    ``localhost`` and ``127.0.0.1`` at that port are the same server (moto's interpreter calls
    back at ``localhost``)."""
    install()
    port = _port_of(url)
    keys = [(name, port) for name in _LOOPBACK_NAMES]
    with _routes_lock:
        for key in keys:
            _routes[key] = answer

    def undo() -> None:
        with _routes_lock:
            for key in keys:
                if _routes.get(key) is answer:
                    del _routes[key]

    return undo


def register_wsgi(url: str, application: Callable[..., Iterable[bytes]]) -> Callable[[], None]:
    """``register_answer`` for a WSGI application (moto's server)."""
    return register_answer(url, _WsgiAnswer(application, url))


def unregister(url: str) -> None:
    port = _port_of(url)
    with _routes_lock:
        for name in _LOOPBACK_NAMES:
            _routes.pop((name, port), None)


def _port_of(url: str) -> int:
    parts = urlsplit(url)
    if parts.hostname not in _LOOPBACK_NAMES or parts.port is None:
        raise ValueError(f"not a loopback server URL with a port: {url}")
    return parts.port


def _route_for(url: str) -> Answer | None:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.port is None:
        return None
    return _routes.get((parts.hostname or "", parts.port))


def _answered(answer: Answer, request: AWSPreparedRequest) -> AWSResponse:
    parts = urlsplit(request.url)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    headers = {
        name: value.decode("latin-1") if isinstance(value, bytes) else str(value)
        for name, value in request.headers.items()
    }
    body = _body_bytes(request.body)
    # The body is whole here: a length, never the chunked framing urllib3 would have added.
    headers = {k: v for k, v in headers.items() if k.lower() != "transfer-encoding"}
    if body or request.method not in {"GET", "HEAD", "DELETE"}:
        headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        headers["Content-Length"] = str(len(body))
    headers.setdefault("Host", parts.netloc)
    # A server thread starts with no context variables: the server's side of the call is not
    # the caller's (the AWS-call recorder attributes calls to the function in its context).
    reply = contextvars.Context().run(answer, request.method, path, headers, body)
    raw = HTTPResponse(
        body=io.BytesIO(reply.body),
        headers=dict(reply.headers),
        status=reply.status,
        preload_content=False,
        decode_content=False,
    )
    headers_read: Any = HeadersDict(reply.headers)  # case-insensitive, as urllib3's are
    return AWSResponse(request.url, reply.status, headers_read, raw)


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if hasattr(body, "read"):  # a stream botocore would have sent as it read it
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return b"".join(bytes(chunk) for chunk in body)


class _WsgiAnswer:
    """One request through a WSGI application, with the environ werkzeug's development server
    (and moto's ``MotoRequestHandler``) would have built for it."""

    def __init__(self, application: Callable[..., Iterable[bytes]], url: str) -> None:
        self._application = application
        parts = urlsplit(url)
        self._server_name = parts.hostname or "127.0.0.1"
        self._server_port = str(parts.port)

    def __call__(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        environ = self._environ(method, path, headers, body)
        started: list[Any] = []

        def start_response(status: str, response_headers: list[tuple[str, str]], *_: Any) -> Any:
            started[:] = [status, response_headers]
            return lambda data: None  # the legacy write(): moto does not use it

        chunks = self._application(environ, start_response)
        try:
            content = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status, response_headers = started
        merged: dict[str, str] = {}
        for name, value in response_headers:  # HTTPHeaders folds repeats the same way
            merged[name] = f"{merged[name]}, {value}" if name in merged else value
        return Reply(int(status.split(" ", 1)[0]), merged, content)

    def _environ(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, Any]:
        from moto.core.request import (
            PRESERVED_HEADER_NAMES_ENVIRON_KEY,
            environ_key_for_header,
            should_preserve_original_header_name,
        )

        path_only, _, query = path.partition("?")
        raw = _dance(path)
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "SERVER_SOFTWARE": "wavepilot-in-process",
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": _dance(unquote(path_only)),
            "QUERY_STRING": _dance(query),
            "REQUEST_URI": raw,
            "RAW_URI": raw,
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": 0,
            "SERVER_NAME": self._server_name,
            "SERVER_PORT": self._server_port,
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        dashed: set[str] = set()
        for name, sent in headers.items():
            if "_" in name:  # werkzeug drops them; moto restores them below
                continue
            key = name.upper().replace("-", "_")
            value = sent.replace("\r\n", "")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = f"HTTP_{key}"
                if key in environ:
                    value = f"{environ[key]},{value}"
            environ[key] = value
            dashed.add(environ_key_for_header(name))
        # moto's MotoRequestHandler: underscored header names (S3 metadata) keep their spelling.
        names: dict[str, str] = {}
        values: dict[str, list[str]] = {}
        for name, value in headers.items():
            if not should_preserve_original_header_name(name):
                continue
            key = environ_key_for_header(name)
            if key in dashed:
                continue
            names.setdefault(key, name)
            values.setdefault(key, []).append(value.replace("\r\n", ""))
        for key, key_values in values.items():
            environ[key] = ",".join(key_values)
        environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = names
        return environ


def _dance(value: str) -> str:
    """PEP 3333: native strings carry the bytes as latin-1 (werkzeug's wsgi encoding dance)."""
    return value.encode("utf-8").decode("latin-1")
