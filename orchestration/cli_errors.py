"""What a person sees when a command fails: one line saying what to do, and an exit status.

Every ``wavepilot`` command runs inside :func:`explained`: a mistake (no credentials, an
unreachable endpoint, an unknown git revision, a missing folder) becomes one line on stderr
and exit status 1 or 2, never a traceback. ``--debug`` (or ``DEBUG=1``, the seed's
variable) adds the traceback, for bug reports.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

EXIT_OK = 0
EXIT_FAILED = 1  # invalid manifests, a refused or failed operation
EXIT_USAGE = 2  # bad arguments: unknown option, missing path, unknown revision
EXIT_INTERRUPTED = 130

IAM_HINT = "the caller's IAM role lacks this permission: see docs/RUNBOOK.md"
DEBUG_HINT = "run with --debug (or DEBUG=1) for the traceback"


class UsageError(Exception):
    """The command was asked for something that cannot be: exit status 2."""


class CommandFailedError(Exception):
    """The command was well formed but could not be carried out: exit status 1."""


@dataclass(frozen=True, slots=True)
class Explanation:
    status: int
    message: str


def debug_requested(flag: bool = False) -> bool:
    """``--debug`` given, or ``DEBUG`` set to a true value (the seed's ``true``/``false``)."""
    return flag or os.environ.get("DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


def explain(
    exc: BaseException, *, where: str = "AWS", iam_hint: str = IAM_HINT
) -> Explanation | None:
    """What to tell a person about ``exc``; ``None`` for an error nobody anticipated (a bug).

    ``where`` names what was called (AWS, SQS, the embedded runtime); ``iam_hint`` is added to
    an access denied, for commands that can say which permissions they need."""
    if isinstance(exc, UsageError):
        return Explanation(EXIT_USAGE, str(exc))
    if isinstance(exc, CommandFailedError):
        return Explanation(EXIT_FAILED, str(exc))
    if isinstance(exc, KeyboardInterrupt):
        return Explanation(EXIT_INTERRUPTED, "interrupted")
    aws = _explain_aws(exc, where, iam_hint)
    if aws is not None:
        return Explanation(EXIT_FAILED, aws)
    if isinstance(exc, OSError) and exc.strerror:
        name = f"{exc.filename}: " if exc.filename else ""
        return Explanation(EXIT_FAILED, f"{name}{exc.strerror}")
    return None


def _explain_aws(exc: BaseException, where: str, iam_hint: str) -> str | None:  # noqa: PLR0911 - one per kind
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            "no AWS credentials: configure a profile (AWS_PROFILE), SSO or a role, or in "
            "GitHub Actions the OIDC step (aws-actions/configure-aws-credentials)"
        )
    if isinstance(exc, NoRegionError):
        return "no AWS Region: set AWS_REGION"
    if isinstance(exc, ProfileNotFound):
        return f"{exc}: check AWS_PROFILE"
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        endpoint = getattr(exc, "kwargs", {}).get("endpoint_url", "")
        return (
            f"cannot reach {where} at {endpoint or 'its endpoint'}: check the network, AWS_REGION "
            "and AWS_ENDPOINT_URL (for the local demo: is `make demo` running?)"
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, text = error.get("Code", "?"), error.get("Message", "")
        hint = f" ({iam_hint})" if access_denied(exc) else ""
        return f"{where} refused {exc.operation_name}: {code}: {text}{hint}"
    if isinstance(exc, BotoCoreError):
        return f"{where}: {exc}"
    return None


def access_denied(exc: ClientError) -> bool:
    """Whether AWS refused the call for want of a permission (IAM, an SCP, a key policy)."""
    code = exc.response.get("Error", {}).get("Code", "")
    return "AccessDenied" in code or code == "UnauthorizedOperation"


@contextmanager
def explained(command: str, *, debug: bool) -> Iterator[list[int]]:
    """Run a command; failures become one line on stderr and the status in ``status[0]``.

    Usage::

        with explained("publish", debug=args.debug) as status:
            status[0] = run()
        return status[0]
    """
    status = [EXIT_OK]
    try:
        yield status
    except (Exception, KeyboardInterrupt) as exc:  # the one place that answers them all
        explanation = explain(exc)
        if debug:
            traceback.print_exc()
        if explanation is None:
            explanation = Explanation(
                EXIT_FAILED,
                f"unexpected error ({type(exc).__name__}: {exc}); this is a bug in wavepilot: "
                f"please report it ({DEBUG_HINT})",
            )
        print(f"wavepilot {command}: {explanation.message}", file=sys.stderr)
        status[0] = explanation.status
