"""The VM stand-ins' listeners: one acceptor thread for all of them, HTTP and HTTPS answers as
the manifest's health checks expect, a TCP-only check of a TLS port harmless, nothing left
listening after stop()."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Callable

import pytest

from orchestration.local.vm_standins import _Acceptor, _handler


def _get(port: int, path: str, *, tls: bool = False) -> int:
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # health checks do not verify, by design
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=10, context=context
        )
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def test_one_thread_serves_every_listener_as_its_checks_expect() -> None:
    healthy = {"a": True, "b": True}
    threads_before = threading.active_count()
    acceptor = _Acceptor()
    try:

        def is_healthy(name: str) -> Callable[[], bool]:
            return lambda: healthy[name]

        ports = {
            name: acceptor.listen(_handler({"/health": 200}, is_healthy(name)), tls=False)
            for name in ("a", "b")
        }
        secure = acceptor.listen(_handler({"/ready": 204}, lambda: True), tls=True)
        # Many listeners, one acceptor thread (connections get threads of their own, briefly).
        assert threading.active_count() == threads_before + 1
        assert _get(ports["a"], "/health") == 200
        assert _get(ports["a"], "/health?probe=1") == 200
        assert _get(ports["a"], "/other") == 404
        healthy["b"] = False
        assert _get(ports["b"], "/health") == 503
        assert _get(ports["a"], "/health") == 200
        with socket.create_connection(("127.0.0.1", secure), timeout=10):
            pass  # a TCP check of the TLS port: connects, hangs up
        assert _get(secure, "/ready", tls=True) == 204
    finally:
        acceptor.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", ports["a"]), timeout=10)
