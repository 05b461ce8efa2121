"""Typed domain errors, one class per MGN error code.

Operations raise these; `protocol.error_reply` is the one place that turns them into HTTP
status, `x-amzn-ErrorType` and body. Nothing matches on messages: callers branch on the class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

SOURCE_SERVER_RESOURCE = "SOURCE_SERVER"
JOB_RESOURCE = "JOB"
WAVE_RESOURCE = "WAVE"
APPLICATION_RESOURCE = "APPLICATION"
MGN_SERVICE_CODE = "mgn"


class MgnError(Exception):
    """Base of every error the emulator answers with; `code` is the wire error code."""

    code: ClassVar[str]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ConflictDetail:
    """One refused resource in a batch call (`ConflictException.errors[]`)."""

    message: str
    code: str
    resource_id: str
    resource_type: str = SOURCE_SERVER_RESOURCE


@dataclass(frozen=True, slots=True)
class InvalidField:
    """One rejected request field (`ValidationException.fieldList[]`)."""

    name: str
    message: str


class ConflictError(MgnError):
    """The resource's state forbids the call (409)."""

    code = "ConflictException"

    def __init__(
        self,
        message: str,
        *,
        resource_id: str | None = None,
        resource_type: str | None = None,
        errors: tuple[ConflictDetail, ...] = (),
    ) -> None:
        super().__init__(message)
        self.resource_id = resource_id
        self.resource_type = resource_type
        self.errors = errors


class ResourceNotFoundError(MgnError):
    """The named resource does not exist (404)."""

    code = "ResourceNotFoundException"

    def __init__(self, message: str, *, resource_id: str, resource_type: str) -> None:
        super().__init__(message)
        self.resource_id = resource_id
        self.resource_type = resource_type


class ValidationError(MgnError):
    """The request is malformed or breaks a documented limit (400)."""

    code = "ValidationException"

    def __init__(
        self,
        message: str,
        *,
        reason: str = "fieldValidationFailed",
        fields: tuple[InvalidField, ...] = (),
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.fields = fields


class ServiceQuotaExceededError(MgnError):
    """A quota (concurrent jobs, servers in active jobs, non-archived servers) is full (402)."""

    code = "ServiceQuotaExceededException"

    def __init__(
        self,
        message: str,
        *,
        quota_code: str,
        quota_value: int,
        resource_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.quota_code = quota_code
        self.quota_value = quota_value
        self.resource_type = resource_type


class ThrottlingError(MgnError):
    """Too many requests (429); the client should wait `retry_after_seconds`."""

    code = "ThrottlingException"

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class UninitializedAccountError(MgnError):
    """MGN was never initialized in this account (InitializeService not called)."""

    code = "UninitializedAccountException"


class InternalServerError(MgnError):
    """The emulator broke its own contract (e.g. produced a response the model rejects)."""

    code = "InternalServerException"


class UnknownOperationError(MgnError):
    """The path names no operation the emulator serves; not an MGN error code (404)."""

    code = "UnknownOperationException"
