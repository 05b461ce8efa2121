"""MGN's rest-json wire protocol: routing, request checks, replies, and the error mapping.

This is the one place where domain errors become HTTP: status codes come from botocore's
model (so they cannot drift), the code goes in `x-amzn-ErrorType` and the modelled members in
the JSON body. Every reply, success or error, is checked against the model before it is sent;
a reply that fails the check is an emulator bug and is replaced by a loud 500.
"""

from __future__ import annotations

import json
import logging
import uuid
from functools import cache
from typing import Any
from urllib.parse import parse_qs, unquote

import botocore.session
from botocore.model import OperationModel, ServiceModel

from orchestration.local.mgn.conformance import shape_problems
from orchestration.local.mgn.errors import (
    MGN_SERVICE_CODE,
    ConflictError,
    InternalServerError,
    InvalidField,
    MgnError,
    ResourceNotFoundError,
    ServiceQuotaExceededError,
    ThrottlingError,
    UninitializedAccountError,
    UnknownOperationError,
    ValidationError,
)
from orchestration.local.mgn.metrics import MetricsRecorder
from orchestration.local.mgn.operations import MgnOperations
from orchestration.local.mgn.throttling import RequestGate
from orchestration.local.runtime.in_process_transport import Reply

logger = logging.getLogger(__name__)

UNKNOWN_OPERATION = "<unknown>"
_UNKNOWN_OPERATION_STATUS = 404


@cache
def mgn_service_model() -> ServiceModel:
    """botocore's MGN model: the source of truth for shapes, routes and status codes."""
    return botocore.session.get_session().get_service_model("mgn")


class RestJsonEndpoint:
    """Turns one HTTP request into one HTTP reply; thread-safe (state lives behind its parts)."""

    def __init__(
        self,
        *,
        operations: MgnOperations,
        gate: RequestGate,
        metrics: MetricsRecorder,
        check_responses: bool = True,
        service_model: ServiceModel | None = None,
    ) -> None:
        self._operations = operations
        self._check_responses = check_responses
        self._gate = gate
        self._metrics = metrics
        self._model = service_model or mgn_service_model()
        self._routes: dict[tuple[str, str], OperationModel] = {}
        # Operations with a URI label (the tagging ones: ``/tags/{resourceArn}``) by method:
        # the path's prefix, and the label's name.
        self._labelled: dict[str, list[tuple[str, str, OperationModel]]] = {}
        for name in self._model.operation_names:
            operation_model = self._model.operation_model(name)
            uri = operation_model.http["requestUri"]
            if "{" in uri:
                prefix, label = uri.split("{", 1)
                self._labelled.setdefault(operation_model.http["method"], []).append(
                    (prefix, label.rstrip("}+"), operation_model)
                )
                continue
            self._routes[(operation_model.http["method"], uri)] = operation_model

    def _route(self, method: str, path: str) -> tuple[OperationModel | None, dict[str, Any]]:
        """The operation a request names, and the parameters its URI carries (the label,
        the query string's lists)."""
        bare, _, query = path.partition("?")
        found = self._routes.get((method, bare))
        if found is not None:
            return found, {}
        for prefix, label, operation_model in self._labelled.get(method, ()):
            value = bare[len(prefix) :]
            if bare.startswith(prefix) and value and "/" not in value:
                params: dict[str, Any] = {label: unquote(value)}
                members = operation_model.input_shape.members if operation_model.input_shape else {}
                for name, values in parse_qs(query).items():
                    for member_name, member in members.items():
                        if member.serialization.get("name") == name:
                            params[member_name] = (
                                values if member.type_name == "list" else values[0]
                            )
                return operation_model, params
        return None, {}

    def handle(self, method: str, path: str, body: bytes) -> Reply:
        request_id = str(uuid.uuid4())
        operation_model, uri_params = self._route(method, path)
        if operation_model is None or operation_model.name not in self._operations.supported:
            self._metrics.record_call(UNKNOWN_OPERATION)
            return self._error_reply(
                self._unknown_operation(method, path, operation_model), request_id
            )
        name = operation_model.name
        self._metrics.record_call(name)
        try:
            self._gate.admit()
            params = {**self._parse_body(body), **uri_params}
            self._check_request(operation_model, params)
            result = self._operations.invoke(name, params)
        except MgnError as error:
            return self._error_reply(error, request_id)
        except Exception as error:  # a bug must not drop the connection without an answer
            logger.exception("MGN emulator bug while serving %s", name)
            return self._error_reply(
                InternalServerError(f"MGN emulator bug in {name}: {error!r}"), request_id
            )
        return self._success_reply(operation_model, result, request_id)

    def _unknown_operation(
        self, method: str, path: str, operation_model: OperationModel | None
    ) -> UnknownOperationError:
        emulated = ", ".join(sorted(self._operations.supported))
        if operation_model is not None:
            return UnknownOperationError(
                f"MGN operation {operation_model.name} is not emulated; emulated: {emulated}"
            )
        return UnknownOperationError(
            f"No MGN operation at {method} {path}; MGN operations are POST /<OperationName>. "
            f"Emulated: {emulated}"
        )

    @staticmethod
    def _parse_body(body: bytes) -> dict[str, Any]:
        try:
            params = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError) as error:
            raise ValidationError(
                f"Request body is not JSON: {error}", reason="cannotParse"
            ) from error
        if not isinstance(params, dict):
            raise ValidationError("Request body must be a JSON object", reason="cannotParse")
        return params

    @staticmethod
    def _check_request(operation_model: OperationModel, params: dict[str, Any]) -> None:
        shape = operation_model.input_shape
        problems = shape_problems(params, shape) if shape is not None else []
        if problems:
            raise ValidationError(
                f"Invalid {operation_model.name} request: {'; '.join(problems)}",
                fields=tuple(InvalidField(operation_model.name, problem) for problem in problems),
            )

    def _success_reply(
        self, operation_model: OperationModel, result: dict[str, Any], request_id: str
    ) -> Reply:
        if self._check_responses:
            shape = operation_model.output_shape
            problems = shape_problems(result, shape) if shape is not None else []
            if shape is None and result:
                problems = [f"{operation_model.name} has no output, but got {result}"]
            self._metrics.record_response_check(valid=not problems)
            if problems:
                return self._invalid_reply(operation_model.name, problems, request_id)
        status = int(operation_model.http.get("responseCode", 200))
        body = b"" if status == 204 else json.dumps(result).encode()
        return Reply(status, self._headers(request_id, body), body)

    def _error_reply(self, error: MgnError, request_id: str) -> Reply:
        self._metrics.record_error(error.code)
        status, body, extra_headers = self._wire_error(error)
        error_shape = self._error_shape(error)
        if error_shape is not None:
            problems = shape_problems(body, error_shape)
            self._metrics.record_response_check(valid=not problems)
            if problems:
                return self._invalid_reply(error.code, problems, request_id)
        encoded = json.dumps(body).encode()
        headers = {**self._headers(request_id, encoded), "x-amzn-ErrorType": error.code}
        return Reply(status, {**headers, **extra_headers}, encoded)

    def _wire_error(self, error: MgnError) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Status, JSON body and extra headers for a domain error."""
        body: dict[str, Any] = {"message": error.message}
        error_shape = self._error_shape(error)
        if error_shape is not None and "code" in error_shape.members:
            body["code"] = error.code
        headers: dict[str, str] = {}
        match error:
            case ConflictError():
                body.update(
                    _present(resourceId=error.resource_id, resourceType=error.resource_type)
                )
                body["errors"] = [
                    {
                        "message": detail.message,
                        "code": detail.code,
                        "resourceId": detail.resource_id,
                        "resourceType": detail.resource_type,
                    }
                    for detail in error.errors
                ]
            case ResourceNotFoundError():
                body.update(resourceId=error.resource_id, resourceType=error.resource_type)
            case ValidationError():
                body["reason"] = error.reason
                if error.fields:
                    body["fieldList"] = [
                        {"name": field.name, "message": field.message} for field in error.fields
                    ]
            case ServiceQuotaExceededError():
                body.update(
                    serviceCode=MGN_SERVICE_CODE,
                    quotaCode=error.quota_code,
                    quotaValue=error.quota_value,
                    **_present(resourceType=error.resource_type),
                )
            case ThrottlingError():
                body["serviceCode"] = MGN_SERVICE_CODE
                headers["Retry-After"] = str(error.retry_after_seconds)
            case UninitializedAccountError() | InternalServerError() | UnknownOperationError():
                pass
        if error_shape is None:
            return _UNKNOWN_OPERATION_STATUS, body, headers
        return int(error_shape.metadata["error"]["httpStatusCode"]), body, headers

    def _error_shape(self, error: MgnError) -> Any:
        if isinstance(error, UnknownOperationError):
            return None
        return self._model.shape_for(error.code)

    def _invalid_reply(self, what: str, problems: list[str], request_id: str) -> Reply:
        """The emulator produced something the model rejects: answer 500 and say so loudly."""
        message = f"MGN emulator bug: its {what} reply does not match the model: {problems}"
        logger.error(message)
        self._metrics.record_error(InternalServerError.code)
        body = json.dumps({"message": message}).encode()
        headers = {
            **self._headers(request_id, body),
            "x-amzn-ErrorType": InternalServerError.code,
        }
        return Reply(500, headers, body)

    @staticmethod
    def _headers(request_id: str, body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "x-amzn-RequestId": request_id,
        }


def _present(**values: str | None) -> dict[str, str]:
    return {key: value for key, value in values.items() if value is not None}
