"""Intake: turn a queue message into an accepted request, or a clear reason it never can be."""

from __future__ import annotations

import hashlib
import json

from pydantic import ValidationError

from orchestration.manifests.validation import spec_revision
from orchestration.migration_request import MigrationRequest


class RequestRejectedError(Exception):
    """The message can never succeed: not JSON, or not a valid migration request."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_request(body: str) -> tuple[MigrationRequest, str]:
    """The request and its revision.

    ``wavepilot publish`` sends the revision (the hash of the effective spec it carries,
    checked here). A hand-written request, like the seed's Quick Start message, has none:
    its revision is the hash of its own canonical body, so resending it is a repeat and
    changing any field is a new revision.
    """
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise RequestRejectedError(
            f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise RequestRejectedError(
            f"the body is JSON but not an object (found {type(data).__name__})"
        )
    try:
        request = MigrationRequest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(body)'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise RequestRejectedError(f"not a valid migration request: {problems}") from None
    if request.revision is None:
        return request, body_revision(request)
    if request.spec is not None and spec_revision(request.spec) != request.revision:
        raise RequestRejectedError(
            f"revision {request.revision} does not match the spec it carries "
            f"({spec_revision(request.spec)}): the message was altered after publishing"
        )
    return request, request.revision


def body_revision(request: MigrationRequest) -> str:
    canonical = json.dumps(request.body(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
