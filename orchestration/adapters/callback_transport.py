"""The network port of status callbacks: POST a body to an https URL, report the status.

The delivery logic (signing, retries, what counts as delivered) lives in
``orchestration/pipeline/callbacks.py`` and only sees :class:`CallbackTransport`, so it is
tested with an in-memory fake. :class:`HttpsCallbackTransport` is the real adapter on
``http.client``: TLS verified against the system CAs, no redirects followed (a 3xx is an
answer, not an invitation to post the event somewhere else), nothing read beyond the status
line and headers. Like the health checks, addresses go through a resolver, so the embedded
runtime can point ``cmdb.contoso.com`` at a loopback receiver, with an SSL context that
trusts that receiver's certificate and nothing else, while the code stays the AWS code.
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Protocol
from urllib.parse import urlsplit

USER_AGENT = "wavepilot-callbacks/1"


@dataclass(frozen=True, slots=True)
class CallbackResponse:
    """What delivery needs from an answer: the status and, for 429/503, ``Retry-After``."""

    status: int
    retry_after: str | None = None


class CallbackTransportError(Exception):
    """No HTTP answer: the connection failed, timed out, or TLS did not verify.

    ``retryable`` is false when trying again cannot help (a certificate that does not
    verify stays that way for the seconds a retry would wait).
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class CallbackTransport(Protocol):
    """Send one POST; return the answer or raise :class:`CallbackTransportError`."""

    def send(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> CallbackResponse: ...


@dataclass(frozen=True, slots=True)
class CallbackRoute:
    """Where to connect for a URL's host and port, and which certificates to trust there."""

    host: str
    port: int
    tls: ssl.SSLContext


CallbackRouteResolver = Callable[[str, int], CallbackRoute]


@cache
def system_tls_context() -> ssl.SSLContext:
    """The system CAs, hostname checked: what every real callback endpoint must satisfy."""
    return ssl.create_default_context()


def public_route(host: str, port: int) -> CallbackRoute:
    """On AWS: connect to the URL's own host, verified against the system CAs."""
    return CallbackRoute(host, port, system_tls_context())


class HttpsCallbackTransport:
    """POST over https with ``http.client``; refuses any other scheme outright."""

    def __init__(self, resolve: CallbackRouteResolver = public_route) -> None:
        self._resolve = resolve

    def send(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> CallbackResponse:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            # The delivery logic refuses these first; this is the last line, not the policy.
            raise ValueError("callbacks are sent to https URLs only")
        port = parts.port or 443
        route = self._resolve(parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection = http.client.HTTPSConnection(
            route.host, route.port, timeout=timeout, context=route.tls
        )
        request_headers = {
            # The URL's host, even when the route connects elsewhere (the local receiver).
            "Host": _host_header(parts.hostname, parts.port),
            "User-Agent": USER_AGENT,
            **headers,
        }
        try:
            connection.request("POST", target, body=body, headers=request_headers)
            response = connection.getresponse()
            return CallbackResponse(response.status, response.getheader("Retry-After"))
        except ssl.SSLCertVerificationError as exc:
            raise CallbackTransportError(
                f"TLS verification failed: {exc.verify_message}", retryable=False
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            # OSError covers refused connections, resets, DNS failures, timeouts and TLS errors.
            raise CallbackTransportError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            connection.close()


def _host_header(hostname: str, port: int | None) -> str:
    host = f"[{hostname}]" if ":" in hostname else hostname
    return f"{host}:{port}" if port and port != 443 else host
