"""What the local runtime changes in the process: moto's user config and the environment.

Both are process-wide, so both are applied by one runtime at a time and restored exactly as
found when it stops (tests run many runtimes one after another in one process).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from moto.core import config as moto_config

LOCAL_REGION = "us-east-1"
LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account
# moto's documented placeholder credentials (never real ones) and the Region, for every
# boto3 client in the process: the test's, the handlers' and the ASL interpreter's.
# moto's 1,300 public AMIs, loaded from JSON for every Region's EC2 backend, are never used:
# the MGN emulator registers the images it launches (see moto_backends.reset_moto_state).
NO_STOCK_AMIS: Mapping[str, str] = {"MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
EMULATED_AWS_ENVIRONMENT: Mapping[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's placeholder, not a secret
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": LOCAL_REGION,
    "AWS_DEFAULT_REGION": LOCAL_REGION,
    # No X-Ray daemon on loopback: Powertools' Tracer would only log connection errors.
    "POWERTOOLS_TRACE_DISABLED": "true",
    **NO_STOCK_AMIS,
}
# Profiles and per-service endpoints would send some calls elsewhere than the emulator.
ENVIRONMENT_KEYS_REMOVED = ("AWS_PROFILE",)

# moto's user config for the embedded default: the ASL interpreter really executes state
# machines, and Lambda uses the Docker-free backend (whose invoke the runtime replaces).
MOTO_USER_CONFIG: Mapping[str, Mapping[str, bool]] = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}


@contextmanager
def moto_user_config_applied() -> Iterator[None]:
    """Apply :data:`MOTO_USER_CONFIG` to ``moto.core.config.default_user_config``, then restore.

    This is the dictionary ``mock_aws(config=...)`` patches and ``POST /moto-api/config``
    writes; moto reads it on every request (``moto.awslambda.utils.get_backend``,
    ``moto.stepfunctions.responses.get_backend``), so setting it in-process is enough for a
    ThreadedMotoServer in the same process.
    """
    live: dict[str, Any] = moto_config.default_user_config  # type: ignore[assignment]
    saved = {section: copy.deepcopy(live.get(section)) for section in MOTO_USER_CONFIG}
    for section, values in MOTO_USER_CONFIG.items():
        live[section] = {**(live.get(section) or {}), **values}
    try:
        yield
    finally:
        for section, previous in saved.items():
            if previous is None:
                live.pop(section, None)
            else:
                live[section] = previous


@contextmanager
def environment_overlay(values: Mapping[str, str], removed: tuple[str, ...] = ()) -> Iterator[None]:
    """Set ``values`` (and remove ``removed``) in ``os.environ``, restoring every key afterwards."""
    keys = {*values, *removed}
    saved = {key: os.environ.get(key) for key in keys}
    for key in removed:
        os.environ.pop(key, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for key, previous in saved.items():
            if previous is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = previous


def environment_mismatches(function_environment: Mapping[str, str]) -> list[str]:
    """Which of a function's configured variables the shared process environment lacks.

    Returns human-readable problems (names only, never values: they may be secrets).
    """
    problems = []
    for name, expected in sorted(function_environment.items()):
        actual = os.environ.get(name)
        if actual is None:
            problems.append(f"{name} is not set")
        elif actual != expected:
            problems.append(f"{name} has a different value")
    return problems
