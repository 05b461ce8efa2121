"""``LocalAwsRuntime``: moto in server mode plus the patches that make it run the real system."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from types import TracebackType

from orchestration.local.runtime.config import (
    EMULATED_AWS_ENVIRONMENT,
    ENVIRONMENT_KEYS_REMOVED,
    LOCAL_REGION,
    environment_mismatches,
    environment_overlay,
    moto_user_config_applied,
)
from orchestration.local.runtime.counters import CounterBook, RuntimeCounters
from orchestration.local.runtime.errors import (
    LocalEnvironmentMismatchError,
    RuntimeAlreadyActiveError,
    RuntimeNotStartedError,
)
from orchestration.local.runtime.eventbridge_targets import EventTargetDelivery
from orchestration.local.runtime.in_process_transport import in_process_enabled, register_wsgi
from orchestration.local.runtime.lambda_dispatch import (
    DEFAULT_ASYNC_INVOKE_WORKERS,
    LambdaDispatcher,
    resolve_handler,
)
from orchestration.local.runtime.moto_backends import (
    EventSourceMappingRef,
    all_functions,
    instance_tag_at,
    reset_moto_state,
    sqs_event_source_mappings,
    state_transitions_by_state_machine,
    stop_running_executions,
)
from orchestration.local.runtime.moto_patches import (
    RuntimeHooks,
    activate_hooks,
    deactivate_hooks,
    forget_interpreter_clients,
    install_moto_patches,
)
from orchestration.local.runtime.moto_server import LoopbackMotoServer
from orchestration.local.runtime.sqs_event_sources import (
    DEFAULT_IDLE_POLL_SECONDS,
    SqsEventSourcePoller,
)

LOGGER = logging.getLogger(__name__)
DEFAULT_STOP_TIMEOUT_SECONDS = 10.0

_process_claim_lock = threading.Lock()
_process_claimed = False


@contextmanager
def _process_claim() -> Iterator[None]:
    """Hold the process's one runtime slot (moto's state and ``MOTO_PORT`` are process-wide)."""
    global _process_claimed  # noqa: PLW0603 - one runtime per process, by design
    with _process_claim_lock:
        if _process_claimed:
            raise RuntimeAlreadyActiveError(
                "a LocalAwsRuntime is already running in this process; stop it first "
                "(moto's backends and MOTO_PORT are shared by the whole process)"
            )
        _process_claimed = True
    try:
        yield
    finally:
        with _process_claim_lock:
            _process_claimed = False


class LocalAwsRuntime:
    """AWS on 127.0.0.1 for one process: moto's server, the ASL interpreter, in-process Lambda.

    ``start()`` installs the moto patches (once per process), resets moto's state, turns on
    the Step Functions interpreter and the Docker-free Lambda backend, starts
    ``ThreadedMotoServer`` on an ephemeral loopback port and points the process environment at
    it (``AWS_ENDPOINT_URL``, ``MOTO_PORT`` for the interpreter's callbacks, placeholder
    credentials, the Region, and ``environment``, the variables every function shares).
    ``stop()`` undoes all of it, in reverse, after stopping pollers, asynchronous invocations
    and running executions. Use it as a context manager, or call :func:`start_local_aws`.

    Args:
        environment: variables every function sees (functions share the process
            environment); each function's configured ``Environment`` must be a subset.
        region: the Region of the runtime's clients and of the process environment.
        async_invoke_workers: threads for ``Event`` invocations (EventBridge targets, the
            Invoke API with ``InvocationType=Event``).
        sqs_idle_poll_seconds: how long an SQS poller sleeps when its queue is empty.
        poll_event_sources: start a poller as soon as an SQS event source mapping is created.
        quiet_moto_logs: silence werkzeug's access log and the ASL interpreter's per-failure
            ERROR log (see :data:`QUIETED_MOTO_LOGGERS`) while running.
        stop_timeout_seconds: how long ``stop()`` waits for running executions' threads.
    """

    def __init__(
        self,
        *,
        environment: Mapping[str, str] | None = None,
        region: str = LOCAL_REGION,
        async_invoke_workers: int = DEFAULT_ASYNC_INVOKE_WORKERS,
        sqs_idle_poll_seconds: float = DEFAULT_IDLE_POLL_SECONDS,
        poll_event_sources: bool = True,
        quiet_moto_logs: bool = True,
        stop_timeout_seconds: float = DEFAULT_STOP_TIMEOUT_SECONDS,
    ) -> None:
        self.region = region
        self._environment = dict(environment or {})
        self._async_invoke_workers = async_invoke_workers
        self._sqs_idle_poll_seconds = sqs_idle_poll_seconds
        self._poll_event_sources = poll_event_sources
        self._quiet_moto_logs = quiet_moto_logs
        self._stop_timeout_seconds = stop_timeout_seconds
        self._counters = CounterBook()
        self._final_counters: RuntimeCounters | None = None
        self._exit_stack: ExitStack | None = None
        self._endpoint_url: str | None = None
        self._dispatcher: LambdaDispatcher | None = None
        self._pollers: dict[str, SqsEventSourcePoller] = {}
        self._pollers_lock = threading.Lock()
        self._pollers_enabled = False

    # ----------------------------------------------------------------------------- lifecycle

    def start(self) -> LocalAwsRuntime:
        """Start everything; on any failure, undo what was done and re-raise."""
        if self._exit_stack is not None:
            raise RuntimeAlreadyActiveError("this LocalAwsRuntime is already running")
        with ExitStack() as stack:
            stack.callback(self._forget_endpoint)  # popped (kept) only when start succeeds
            stack.enter_context(_process_claim())
            self._counters = CounterBook()  # counters are per run
            self._final_counters = None
            install_moto_patches()
            reset_moto_state()
            stack.callback(reset_moto_state)
            stack.enter_context(moto_user_config_applied())
            if self._quiet_moto_logs:
                stack.enter_context(_moto_logs_quieted())
            port = self._start_server(stack)
            self._endpoint_url = f"http://127.0.0.1:{port}"
            stack.enter_context(
                environment_overlay(
                    {
                        **EMULATED_AWS_ENVIRONMENT,
                        "AWS_REGION": self.region,
                        "AWS_DEFAULT_REGION": self.region,
                        **self._environment,
                        # Last, so nothing overrides where the emulator is. The ASL
                        # interpreter calls Lambda and other services back at
                        # http://localhost:$MOTO_PORT (moto.settings.moto_server_port).
                        "AWS_ENDPOINT_URL": self._endpoint_url,
                        "MOTO_PORT": str(port),
                    },
                    removed=ENVIRONMENT_KEYS_REMOVED,
                )
            )
            self._start_hooks(stack)
            self._exit_stack = stack.pop_all()
        return self

    def _forget_endpoint(self) -> None:
        self._endpoint_url = None

    def stop(self) -> None:
        """Stop pollers, drain async invocations, stop executions, then undo ``start()``."""
        stack, self._exit_stack = self._exit_stack, None
        if stack is None:
            return
        try:
            self.stop_event_source_pollers()
            if self._dispatcher is not None:
                self._dispatcher.shutdown()
            stop_running_executions(self._stop_timeout_seconds)
            self._final_counters = self._counters.snapshot(state_transitions_by_state_machine())
        finally:
            stack.close()  # ends with _forget_endpoint
            self._dispatcher = None

    def __enter__(self) -> LocalAwsRuntime:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def is_running(self) -> bool:
        return self._exit_stack is not None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``: pass it to ``boto3.client(..., endpoint_url=...)``."""
        if self._endpoint_url is None:
            raise RuntimeNotStartedError("the local runtime is not running: call start() first")
        return self._endpoint_url

    # ------------------------------------------------------------------------------ counters

    def counters(self) -> RuntimeCounters:
        """A snapshot now, or the final one taken by ``stop()`` (moto's state is reset then)."""
        if self._final_counters is not None and not self.is_running:
            return self._final_counters
        if not self.is_running:
            raise RuntimeNotStartedError("the local runtime has not run yet: no counters")
        return self._counters.snapshot(state_transitions_by_state_machine())

    # -------------------------------------------------------------------------- emulated EC2

    def instance_tag_at(self, private_ip: str, tag_key: str) -> str | None:
        """The tag ``tag_key`` of the pending or running instance at ``private_ip`` in any
        account and Region, read from moto's state (no call): the VM stand-ins' lookup."""
        if not self.is_running:
            raise RuntimeNotStartedError("the local runtime is not running: call start() first")
        return instance_tag_at(private_ip, tag_key)

    # ----------------------------------------------------------------------- configuration

    def check_function_environments(self) -> None:
        """Raise :class:`LocalEnvironmentMismatchError` naming every function whose configured
        ``Environment`` the shared environment does not hold (call after provisioning)."""
        mismatches = {
            function.function_name: problems
            for function in all_functions()
            if (problems := environment_mismatches(function.environment))
        }
        if mismatches:
            raise LocalEnvironmentMismatchError(mismatches)

    def initialize_handlers(self) -> None:
        """Import every function's handler now, in this thread: Lambda's init phase.

        On AWS each function imports its handler before its first invocation, alone in its
        environment. Here every function shares one process: two first invocations on two
        threads importing modules that import each other can meet in importlib's module locks
        and see a partially initialised module (seen under load as ``cannot import name
        'SQSEvent' ... partially initialized module``). Importing them all up front, in one
        thread, is the same init phase without the race. Call after provisioning.
        """
        for function in all_functions():
            resolve_handler(function.handler)

    # ---------------------------------------------------------------------- event sources

    def start_event_source_pollers(self) -> None:
        """Poll every SQS event source mapping (and, from now on, each one created)."""
        with self._pollers_lock:
            self._pollers_enabled = True
        for mapping in sqs_event_source_mappings():
            self._ensure_poller(mapping)

    def stop_event_source_pollers(self) -> None:
        """Stop every poller and wait for it; a batch in progress finishes first."""
        with self._pollers_lock:
            self._pollers_enabled = False
            pollers, self._pollers = list(self._pollers.values()), {}
        for poller in pollers:
            poller.stop()
        for poller in pollers:
            poller.join(self._stop_timeout_seconds)
            if poller.is_alive:
                LOGGER.warning("SQS poller for mapping %s did not stop", poller.mapping.uuid)

    # ----------------------------------------------------------------------------- helpers

    def _start_server(self, stack: ExitStack) -> int:
        server = LoopbackMotoServer()
        server.start()
        stack.callback(server.stop)
        if in_process_enabled() and server.application is not None:
            # In-process clients skip the socket (in_process_transport); unregistered first.
            stack.callback(register_wsgi(f"http://127.0.0.1:{server.port}", server.application))
        return server.port

    def _start_hooks(self, stack: ExitStack) -> None:
        dispatcher = LambdaDispatcher(self._counters, async_workers=self._async_invoke_workers)
        stack.callback(dispatcher.shutdown)
        hooks = RuntimeHooks(
            dispatcher=dispatcher,
            event_delivery=EventTargetDelivery(dispatcher, self._counters),
            on_sqs_event_source_mapping=self._ensure_poller,
        )
        activate_hooks(hooks)
        stack.callback(deactivate_hooks, hooks)
        stack.callback(forget_interpreter_clients)  # they point at this runtime's port
        self._dispatcher = dispatcher
        if self._poll_event_sources:
            self.start_event_source_pollers()

    def _ensure_poller(self, mapping: EventSourceMappingRef) -> None:
        with self._pollers_lock:
            if not self._pollers_enabled or self._dispatcher is None:
                return
            existing = self._pollers.get(mapping.uuid)
            if existing is not None and existing.is_alive:
                return
            poller = SqsEventSourcePoller(
                mapping,
                endpoint_url=self.endpoint_url,
                dispatcher=self._dispatcher,
                counters=self._counters,
                idle_poll_seconds=self._sqs_idle_poll_seconds,
            )
            self._pollers[mapping.uuid] = poller
            poller.start()


# Loggers silenced while a runtime runs with quiet_moto_logs: werkzeug's line per request, and
# the ASL interpreter, which logs every failure, caught or not, at ERROR with the repr of the
# whole state (several KB); failures stay visible in the execution history, as on AWS.
QUIETED_MOTO_LOGGERS = {
    "werkzeug": logging.ERROR,
    "moto.stepfunctions.parser.asl.component.eval_component": logging.CRITICAL,
}


@contextmanager
def _moto_logs_quieted() -> Iterator[None]:
    loggers = {name: logging.getLogger(name) for name in QUIETED_MOTO_LOGGERS}
    previous = {name: logger.level for name, logger in loggers.items()}
    for name, logger in loggers.items():
        logger.setLevel(QUIETED_MOTO_LOGGERS[name])
    try:
        yield
    finally:
        for name, logger in loggers.items():
            logger.setLevel(previous[name])


@contextmanager
def start_local_aws(
    *,
    environment: Mapping[str, str] | None = None,
    region: str = LOCAL_REGION,
    async_invoke_workers: int = DEFAULT_ASYNC_INVOKE_WORKERS,
    sqs_idle_poll_seconds: float = DEFAULT_IDLE_POLL_SECONDS,
    poll_event_sources: bool = True,
    quiet_moto_logs: bool = True,
    stop_timeout_seconds: float = DEFAULT_STOP_TIMEOUT_SECONDS,
) -> Iterator[LocalAwsRuntime]:
    """Run a :class:`LocalAwsRuntime` for the duration of a ``with`` block."""
    runtime = LocalAwsRuntime(
        environment=environment,
        region=region,
        async_invoke_workers=async_invoke_workers,
        sqs_idle_poll_seconds=sqs_idle_poll_seconds,
        poll_event_sources=poll_event_sources,
        quiet_moto_logs=quiet_moto_logs,
        stop_timeout_seconds=stop_timeout_seconds,
    )
    with runtime:
        yield runtime
