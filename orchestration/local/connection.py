"""How another terminal reaches a running embedded system: ``.wavepilot/local.json``.

While ``wavepilot demo --approve manual`` runs, it writes the environment the CLI needs to
talk to its emulated AWS (the loopback endpoints, moto's placeholder credentials, the
resource names) to a file in the current directory, readable by its owner only, and removes
it at the end. ``wavepilot status|approve|reject --local`` loads that file into the process
environment before building the state store, so the same commands work against AWS (the
usual AWS environment) and against the embedded runtime.

Nothing secret is written: the credentials are moto's documented placeholders.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_CONNECTION_FILE = Path(".wavepilot") / "local.json"
FORMAT_VERSION = 1
# What the CLI needs to reach the embedded runtime; nothing else is written.
CONNECTION_KEYS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_MGN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "DYNAMODB_TABLE_NAME",
    "EVENTBRIDGE_BUS_NAME",
    "STATE_MACHINE_ARN",
    "SQS_QUEUE_URL",
    "REQUEST_DLQ_URL",
    "DEFAULT_APPROVERS",
    "MGN_REGION",
    "WAVEPILOT_LOCAL_GROUP_MEMBERS",
)
# Not a setting: who the embedded runtime's simulated directory puts in every Slack user
# group, so `--local` decisions can stand for a group's member (on AWS only Slack knows).
LOCAL_GROUP_MEMBERS_KEY = "WAVEPILOT_LOCAL_GROUP_MEMBERS"
REQUIRED_KEYS = ("AWS_ENDPOINT_URL", "DYNAMODB_TABLE_NAME")
# A profile or a per-service endpoint left in the shell would send calls elsewhere.
ENDPOINT_PREFIX = "AWS_ENDPOINT_URL_"
REMOVED_KEYS = ("AWS_PROFILE",)


class ConnectionFileError(Exception):
    """No usable connection file; the message says what to do."""


def connection_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The :data:`CONNECTION_KEYS` set in ``environ`` (default: this process's environment)."""
    source = os.environ if environ is None else environ
    return {key: source[key] for key in CONNECTION_KEYS if key in source}


def write_connection_file(path: Path, environment: Mapping[str, str]) -> Path:
    """Write ``environment`` (only :data:`CONNECTION_KEYS`) to ``path``, mode 0600, atomically."""
    values = connection_environment(environment)
    missing = [key for key in REQUIRED_KEYS if not values.get(key)]
    if missing:
        raise ValueError(f"cannot publish the connection: {', '.join(missing)} not set")
    document = {
        "version": FORMAT_VERSION,
        "writtenAt": datetime.now(UTC).isoformat(),
        "pid": os.getpid(),
        "environment": values,
    }
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp creates the file 0600; os.replace makes it appear whole, never half written.
    descriptor, temporary = tempfile.mkstemp(prefix=".local-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=2)
            stream.write("\n")
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_connection_file(path: Path) -> dict[str, str]:
    """The environment written by :func:`write_connection_file`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConnectionFileError(
            f"no {path} in {Path.cwd()}: is `make demo` running (with --approve manual), "
            "and is this the folder it runs in?"
        ) from None
    except OSError as exc:
        raise ConnectionFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        document: Any = json.loads(text)
        environment = document["environment"]
        if document.get("version") != FORMAT_VERSION or not isinstance(environment, dict):
            raise ValueError
        values = {str(key): str(value) for key, value in environment.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConnectionFileError(
            f"{path} is not a Wavepilot connection file (version {FORMAT_VERSION}); "
            "restart `make demo` to rewrite it"
        ) from None
    missing = [key for key in REQUIRED_KEYS if not values.get(key)]
    if missing:
        raise ConnectionFileError(f"{path} lacks {', '.join(missing)}; restart `make demo`")
    return connection_environment(values)


def remove_connection_file(path: Path, *, endpoint: str | None = None) -> None:
    """Remove ``path``; with ``endpoint``, only if it still describes that runtime."""
    if endpoint is not None:
        try:
            if read_connection_file(path).get("AWS_ENDPOINT_URL") != endpoint:
                return  # another runtime has published itself since
        except ConnectionFileError:
            return
    path.unlink(missing_ok=True)


@contextmanager
def published_connection(
    path: Path | None = None, *, extra: Mapping[str, str] | None = None
) -> Iterator[Path]:
    """While the block runs, ``path`` (default :data:`DEFAULT_CONNECTION_FILE`) says how to
    reach the runtime this process's environment points at; afterwards it is removed."""
    target = path or DEFAULT_CONNECTION_FILE
    environment = {**connection_environment(), **(extra or {})}
    write_connection_file(target, environment)
    try:
        yield target
    finally:
        remove_connection_file(target, endpoint=environment["AWS_ENDPOINT_URL"])


def endpoint_reachable(url: str, *, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``url``'s host and port."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def apply_connection(environment: Mapping[str, str], path: Path | None = None) -> None:
    """Point this process at the runtime ``environment`` describes (checks it is up first)."""
    endpoint = environment["AWS_ENDPOINT_URL"]
    if not endpoint_reachable(endpoint):
        where = f" ({path})" if path else ""
        raise ConnectionFileError(
            f"nothing answers at {endpoint}{where}: is `make demo` still running? "
            "(a demo that was killed leaves the file behind; delete it)"
        )
    for key in [k for k in os.environ if k.startswith(ENDPOINT_PREFIX) and k not in environment]:
        del os.environ[key]
    for key in REMOVED_KEYS:
        os.environ.pop(key, None)
    os.environ.update(environment)


def load_connection(path: Path = DEFAULT_CONNECTION_FILE) -> dict[str, str]:
    """Read ``path`` and apply it to this process's environment; return what was set."""
    environment = read_connection_file(path)
    apply_connection(environment, path)
    return environment
