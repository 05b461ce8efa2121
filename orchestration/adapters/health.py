"""TCP and HTTP(S) checks against a launched instance.

Addresses go through a resolver: on AWS the instance's private IP as it is; on the embedded
default the runtime maps each emulated instance to a loopback listener, so the code that
runs here is the code that runs in AWS.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable

from orchestration.health_checks import CheckResult, HealthCheckSpec

AddressResolver = Callable[[str, int], tuple[str, int]]


def direct(address: str, port: int) -> tuple[str, int]:
    return address, port


class HealthProber:
    def __init__(self, resolve: AddressResolver = direct) -> None:
        self._resolve = resolve

    def run(self, address: str, check: HealthCheckSpec) -> CheckResult:
        host, port = self._resolve(address, check.effective_port)
        name = (
            f"tcp {check.effective_port}"
            if check.type == "tcp"
            else f"{check.scheme} {check.effective_port}{check.path}"
        )
        target = (
            f"{address}:{check.effective_port}"
            if check.type == "tcp"
            else f"{check.scheme}://{address}:{check.effective_port}{check.path}"
        )
        try:
            if check.type == "tcp":
                with socket.create_connection((host, port), timeout=check.timeout_seconds):
                    passed, detail = True, "connected"
            else:
                passed, detail = self._http(host, port, check)
        except OSError as exc:
            passed, detail = False, f"{type(exc).__name__}: {exc}"
        return CheckResult(name, passed, detail, check.type, target)

    @staticmethod
    def _http(host: str, port: int, check: HealthCheckSpec) -> tuple[bool, str]:
        connection: http.client.HTTPConnection
        if check.scheme == "https":
            # A liveness probe by private address: the certificate cannot name the IP.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            connection = http.client.HTTPSConnection(
                host, port, timeout=check.timeout_seconds, context=context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=check.timeout_seconds)
        try:
            connection.request("GET", check.path, headers={"User-Agent": "wavepilot-health/1"})
            status = connection.getresponse().status
        finally:
            connection.close()
        passed = status == check.expected_status
        return passed, f"HTTP {status} (expected {check.expected_status})"
