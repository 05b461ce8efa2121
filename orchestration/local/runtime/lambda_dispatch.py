"""Run the real Python handler of a Lambda function in-process, with AWS's invoke semantics.

Every path into a function ends here: the Invoke API (through the patched moto backend, which
is how the ASL interpreter calls Lambda), EventBridge Lambda targets and SQS event source
mappings. So the handler string, the context, the error payload and the counters behave the
same whichever service called.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from orchestration.local.api_recorder import running_function
from orchestration.local.runtime.config import environment_mismatches
from orchestration.local.runtime.counters import CounterBook
from orchestration.local.runtime.fault_points import active_runtime_faults
from orchestration.local.runtime.lambda_context import LocalLambdaContext
from orchestration.local.virtual_clock import active_virtual_clock

LOGGER = logging.getLogger(__name__)

# The value of the ``x-amz-function-error`` header for every error the Python runtime reports.
UNHANDLED_FUNCTION_ERROR = "Unhandled"
DEFAULT_ASYNC_INVOKE_WORKERS = 8

Handler = Callable[[Any, LocalLambdaContext], Any]


@dataclass(frozen=True, slots=True)
class FunctionConfiguration:
    """The parts of a function's configuration an invocation needs, read from moto once."""

    function_name: str
    function_arn: str
    version: str
    handler: str
    timeout_seconds: int
    memory_mb: int
    log_group_name: str
    environment: Mapping[str, str] = field(default_factory=dict)
    # ReservedConcurrentExecutions (None: unreserved): the SQS pollers keep to it.
    reserved_concurrency: int | None = None

    def invoked_arn(self, qualifier: str | None) -> str:
        """The ARN the caller used: qualified when it named a version or alias."""
        if qualifier and not self.function_arn.endswith(f":{qualifier}"):
            return f"{self.function_arn}:{qualifier}"
        return self.function_arn


@dataclass(frozen=True, slots=True)
class InvocationOutcome:
    """What the Invoke API returns: the payload bytes and, on failure, the function error."""

    payload: bytes
    function_error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.function_error is None

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None


class LambdaRuntimeError(Exception):
    """A failure of the (emulated) Lambda runtime itself, reported with an AWS ``Runtime.*`` type.

    Raised for what happens before or after the handler runs: a handler string that does not
    resolve, an event that is not JSON, a result that cannot be serialised, an environment the
    local runtime cannot provide.
    """

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class InjectedCrashError(LambdaRuntimeError):
    """The fault campaign's crash after the handler returned (fault_points.py): expected, so
    logged as information, not as a runtime failure."""


def resolve_handler(handler: str) -> Handler:
    """Import the module a ``Handler`` setting names and return its callable, as the runtime does.

    ``package.module.function`` and ``path/to/module.function`` are both accepted. Modules are
    imported once per process (like a warm execution environment), so module-level clients
    and Powertools' cold-start flag behave as on AWS after the first call.
    """
    module_name, _, attribute = handler.replace("/", ".").rpartition(".")
    if not module_name or not attribute:
        raise LambdaRuntimeError(
            "Runtime.MalformedHandlerName",
            f"Bad handler '{handler}': not enough values to unpack (expected 2, got 1)",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LambdaRuntimeError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    candidate = getattr(module, attribute, None)
    if not callable(candidate):
        raise LambdaRuntimeError(
            "Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_name}'"
        )
    handler_function: Handler = candidate
    return handler_function


def decode_event(payload: bytes | str | None) -> Any:
    """The event a handler receives: the JSON payload, or ``{}`` when the caller sent none."""
    if payload is None or payload in (b"", ""):
        return {}
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise LambdaRuntimeError(
            "Runtime.InvalidRequestContent", f"Could not parse request body into json: {exc}"
        ) from exc


def encode_result(result: Any) -> bytes:
    """Serialise a handler's return value; ``None`` becomes ``null`` as on AWS."""
    try:
        return json.dumps(result).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise LambdaRuntimeError(
            "Runtime.MarshalError", f"Unable to marshal response: {exc}"
        ) from exc


def error_payload(exc: BaseException, request_id: str) -> bytes:
    """The Python runtime's error document; ``errorType`` is what ASL Retry/Catch match on."""
    if isinstance(exc, LambdaRuntimeError):
        error_type = exc.error_type
    elif isinstance(exc, SystemExit):
        error_type = "Runtime.ExitError"
    else:
        error_type = type(exc).__name__
    stack = traceback.format_list(traceback.extract_tb(exc.__traceback__))
    document = {
        "errorMessage": str(exc),
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack,
    }
    return json.dumps(document).encode("utf-8")


@dataclass(frozen=True, slots=True)
class InvocationDuration:
    """How long an invocation would have run on AWS, as far as the local runtime can tell.

    Without a simulated clock: the real time it took. On the simulated clock, real time says
    little (the rehearsal's hundreds of threads share two cores, and virtual time stands still
    while any of them works): the invocation's simulated waits (Slack pacing, retries' sleeps)
    plus the CPU time of the thread that ran it, an upper bound of its compute (in process,
    the thread also runs the emulated services' side of its calls).
    """

    real_started: float
    cpu_started: float
    virtual_started: float | None

    @classmethod
    def start(cls) -> InvocationDuration:
        clock = active_virtual_clock()
        return cls(
            time.monotonic(),
            time.thread_time(),
            clock.monotonic() if clock is not None else None,
        )

    def seconds(self) -> tuple[float, str]:
        """The duration and how it was measured (for the overrun's log line)."""
        clock = active_virtual_clock()
        if clock is None or self.virtual_started is None:
            return time.monotonic() - self.real_started, "real time"
        waits = clock.monotonic() - self.virtual_started
        cpu = time.thread_time() - self.cpu_started
        return waits + cpu, f"simulated waits {waits:.1f} s + CPU {cpu:.1f} s"


class LambdaDispatcher:
    """Invokes functions in-process, synchronously or on a bounded pool of worker threads.

    Environment: every function shares the process's ``os.environ`` (threads cannot have their
    own), which the runtime sets once at start. Before each call the dispatcher checks that the
    function's configured ``Environment`` is part of it and fails the invocation with
    ``Runtime.LocalEnvironmentMismatch`` (logged as an error) otherwise, instead of letting the
    handler read values it was never configured with.
    """

    def __init__(
        self, counters: CounterBook, *, async_workers: int = DEFAULT_ASYNC_INVOKE_WORKERS
    ) -> None:
        self._counters = counters
        self._async_pool = ThreadPoolExecutor(
            max_workers=async_workers, thread_name_prefix="lambda-async-invoke"
        )
        self._accepting = True
        self._accepting_lock = threading.Lock()

    def invoke(
        self,
        function: FunctionConfiguration,
        payload: bytes | str | None,
        *,
        qualifier: str | None = None,
    ) -> InvocationOutcome:
        """Run the handler once and return what the Invoke API would (RequestResponse)."""
        request_id = str(uuid.uuid4())
        self._counters.lambda_invocations.add(function.function_name)
        started = time.monotonic()
        duration = InvocationDuration.start()
        try:
            result = self._run_handler(function, payload, qualifier, request_id, started)
            faults = active_runtime_faults()
            if faults is not None and faults.crashes_after(function.function_name, payload):
                # The side effects happened; the report never leaves (fault_points.py).
                raise InjectedCrashError(
                    "Runtime.ExitError",
                    "RequestId: " + request_id + " Error: Runtime exited with error: signal: "
                    "killed (after the handler returned: fault campaign)",
                )
            outcome = InvocationOutcome(payload=encode_result(result))
        except (Exception, SystemExit) as exc:
            self._report_failure(function, exc)
            outcome = InvocationOutcome(
                payload=error_payload(exc, request_id), function_error=UNHANDLED_FUNCTION_ERROR
            )
        elapsed, how = duration.seconds()
        if elapsed > function.timeout_seconds:
            # Threads cannot be pre-empted, so the result stands; the overrun is counted and
            # logged so a handler too slow for its configured Timeout is noticed locally.
            self._counters.lambda_timeouts_exceeded.add(function.function_name)
            LOGGER.warning(
                "%s ran %.2f s (%s), longer than its Timeout of %d s (AWS would have stopped it)",
                function.function_name,
                elapsed,
                how,
                function.timeout_seconds,
            )
        return outcome

    def invoke_async(
        self, function: FunctionConfiguration, payload: bytes | str | None
    ) -> Future[InvocationOutcome] | None:
        """Queue an ``Event`` invocation; returns ``None`` once the dispatcher is shutting down."""
        with self._accepting_lock:
            if not self._accepting:
                LOGGER.warning(
                    "dropped an asynchronous invocation of %s: the runtime is stopping",
                    function.function_name,
                )
                return None
            clock = active_virtual_clock()
            if clock is None:
                return self._async_pool.submit(self.invoke, function, payload)
            # Counted from the caller's instant (it is counted: the request is in flight).
            return self._async_pool.submit(clock.counted(self.invoke), function, payload)

    def shutdown(self) -> None:
        """Stop accepting asynchronous invocations and wait for the queued ones to finish."""
        with self._accepting_lock:
            self._accepting = False
        self._async_pool.shutdown(wait=True)

    def _run_handler(
        self,
        function: FunctionConfiguration,
        payload: bytes | str | None,
        qualifier: str | None,
        request_id: str,
        started: float,
    ) -> Any:
        event = decode_event(payload)
        problems = environment_mismatches(function.environment)
        if problems:
            raise LambdaRuntimeError(
                "Runtime.LocalEnvironmentMismatch",
                f"{function.function_name}: {', '.join(problems)} in the shared local "
                "environment; pass the function's variables to LocalAwsRuntime(environment=...)",
            )
        handler = resolve_handler(function.handler)
        context = LocalLambdaContext(
            function_name=function.function_name,
            function_version=function.version,
            invoked_function_arn=function.invoked_arn(qualifier),
            memory_limit_in_mb=function.memory_mb,
            aws_request_id=request_id,
            log_group_name=function.log_group_name,
            log_stream_name=f"{time.strftime('%Y/%m/%d')}/[{function.version}]{uuid.uuid4().hex}",
            deadline_monotonic=started + function.timeout_seconds,
        )
        # The AWS calls made while the handler runs are this function's (api_recorder).
        with running_function(function.function_name):
            return handler(event, context)

    def _report_failure(self, function: FunctionConfiguration, exc: BaseException) -> None:
        self._counters.lambda_errors.add(function.function_name)
        if isinstance(exc, LambdaRuntimeError) and not isinstance(exc, InjectedCrashError):
            LOGGER.error("%s: [%s] %s", function.function_name, exc.error_type, exc)
        else:
            LOGGER.info("%s raised %s: %s", function.function_name, type(exc).__name__, exc)
