"""Faults the local runtime injects on request (the fault campaign, ``rehearse --faults``).

Three points, each where AWS itself would fail that way:

- **a Lambda that crashes after its side effect**: the handler ran (its AWS calls were made)
  and then the process died before it reported: the invocation fails with
  ``Runtime.ExitError``, as Lambda reports a runtime that exited; the caller retries as it
  would on AWS (an SQS batch comes back after its visibility timeout, Step Functions applies
  the state's Retry/Catch);
- **DynamoDB throttling**: the next requests naming a table get
  ``ProvisionedThroughputExceededException`` (HTTP 400), which the SDK retries with backoff;
- **duplicate SQS deliveries**: a share of messages an event source handled is not deleted,
  so SQS delivers it again after its visibility timeout (SQS is at-least-once);
- **duplicate EventBridge deliveries**: a share of events a rule matched reach one of its
  targets twice (EventBridge is at-least-once too): a request's execution started twice, a
  status event queued twice;
- **a coordinator restart mid-batch** (batched launches): the launch coordinator's process
  dies at the worst point, right after MGN accepted its ``StartTest``/``StartCutover`` and
  before its ledger recorded the job: the MGN call returns into a ``SystemExit`` (the
  invocation fails with ``Runtime.ExitError``; the loop's Retry runs it again, and that run
  must find the job MGN runs by its intent tag). A hook on botocore's client (installed once,
  a pass-through while no restart is armed) raises it in the calling thread.

One ``RuntimeFaults`` is active per process at most (``use_runtime_faults``); with none, every
point behaves as before. Draws are seeded hashes, so a rerun injects the same faults.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.client import BaseClient

from orchestration.local.api_recorder import current_function

__all__ = [
    "CoordinatorRestartError",
    "RuntimeFaults",
    "active_runtime_faults",
    "use_runtime_faults",
]

_THROTTLED_TYPE = "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
# The launch coordinator's function (its name, as configured, contains it) and the MGN
# operations after which it restarts when a restart is armed.
COORDINATOR_FUNCTION = "coordinate-launches"
LAUNCH_OPERATIONS = frozenset({"StartTest", "StartCutover"})


def request_identity(request: bytes | str | None) -> str:
    """What makes two invocations the same request: an SQS batch's message IDs (a message
    comes back in another batch, with another receipt handle), else the payload itself."""
    if request is None:
        return ""
    raw = request.encode() if isinstance(request, str) else request
    try:
        event = json.loads(raw)
    except ValueError:
        event = None
    if isinstance(event, dict) and isinstance(event.get("Records"), list):
        ids = sorted(str(r.get("messageId", "")) for r in event["Records"] if isinstance(r, dict))
        if ids and all(ids):
            return "sqs:" + ",".join(ids)
    return hashlib.sha256(raw).hexdigest()


class CoordinatorRestartError(SystemExit):
    """The coordinator's process died (a ``SystemExit``: no ``except Exception`` in the
    handler's path can take it for an error to handle)."""


def _draw(*key: object) -> float:
    digest = hashlib.sha256(":".join(str(k) for k in key).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class RuntimeFaults:
    """What the runtime's fault points do while active; counts what they did."""

    seed: int = 0
    # Function name (as configured) -> share of its invocations that crash.
    crash_after_handler: Mapping[str, float] = field(default_factory=dict)
    duplicate_delivery_rate: float = 0.0
    duplicate_event_rate: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _throttle: dict[str, int] = field(default_factory=dict, repr=False)  # table -> requests left
    _invocations: Counter[str] = field(default_factory=Counter, repr=False)
    _crashed_requests: set[tuple[str, str]] = field(default_factory=set, repr=False)
    crashed: Counter[str] = field(default_factory=Counter)  # function -> invocations crashed
    throttled: Counter[str] = field(default_factory=Counter)  # table -> requests refused
    duplicated: Counter[str] = field(default_factory=Counter)  # queue ARN -> messages kept
    events_duplicated: Counter[str] = field(default_factory=Counter)  # target ARN -> events
    _restarts_armed: int = field(default=0, repr=False)
    # (operation, job ID) of each accepted launch the coordinator died after, in order.
    restarted_after: list[tuple[str, str]] = field(default_factory=list)

    def arm_coordinator_restart(self) -> None:
        """The coordinator's next launch MGN accepts (any lane) is followed by its death."""
        with self._lock:
            self._restarts_armed += 1

    def throttle_table(self, table_name: str, requests: int) -> None:
        """Refuse the next ``requests`` requests naming ``table_name``."""
        with self._lock:
            self._throttle[table_name] = self._throttle.get(table_name, 0) + requests

    # --- the points ------------------------------------------------------------------------

    def crashes_after(self, function_name: str, request: bytes | str | None = None) -> bool:
        """Whether this invocation of ``function_name`` crashes after its handler returned.

        A crash is transient: the same request (``request_identity``: the same input from a
        Step Functions retry, the same SQS messages in a later batch) crashes at most once, so
        its retry runs through. Crashes that repeat until the retries are spent would roll
        the migration back, visibly, as on AWS; the campaign asks whether one crash is
        retried and adopted, and a chance run of four in a row made its answer a coin toss.
        """
        share = next(
            (s for part, s in self.crash_after_handler.items() if part in function_name), 0.0
        )
        if share <= 0:
            return False
        identity = request_identity(request)
        with self._lock:
            if (function_name, identity) in self._crashed_requests:
                return False
            self._invocations[function_name] += 1
            nth = self._invocations[function_name]
        if _draw(self.seed, "crash", function_name, nth) >= share:
            return False
        with self._lock:
            self.crashed[function_name] += 1
            self._crashed_requests.add((function_name, identity))
        return True

    def restarts_after(self, function_name: str | None, operation: str, job_id: str) -> bool:
        """Whether the coordinator dies now, MGN having just accepted ``job_id``."""
        if (
            function_name is None
            or COORDINATOR_FUNCTION not in function_name
            or operation not in LAUNCH_OPERATIONS
        ):
            return False
        with self._lock:
            if self._restarts_armed <= 0:
                return False
            self._restarts_armed -= 1
            self.restarted_after.append((operation, job_id))
        return True

    def dynamodb_refusal(self, body: str) -> tuple[int, dict[str, str], str] | None:
        """The throttling answer for a DynamoDB request, if it names a throttled table."""
        with self._lock:
            table = next((t for t, n in self._throttle.items() if n > 0 and f'"{t}"' in body), None)
            if table is None:
                return None
            self._throttle[table] -= 1
            self.throttled[table] += 1
        document = {
            "__type": _THROTTLED_TYPE,
            "message": "The level of configured provisioned throughput for the table was "
            "exceeded. Consider increasing your provisioning level with the UpdateTable API.",
        }
        return 400, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(document)

    def delivers_again(self, queue_arn: str, message_id: str, receive_count: int) -> bool:
        """Whether a message handled on its first receive is left for SQS to deliver again."""
        if self.duplicate_delivery_rate <= 0 or receive_count > 1:
            return False
        if _draw(self.seed, "duplicate", message_id) >= self.duplicate_delivery_rate:
            return False
        with self._lock:
            self.duplicated[queue_arn] += 1
        return True

    def delivers_event_twice(self, event_id: str, target_arn: str) -> bool:
        """Whether a rule's target gets this event a second time."""
        if self.duplicate_event_rate <= 0:
            return False
        if _draw(self.seed, "event", event_id, target_arn) >= self.duplicate_event_rate:
            return False
        with self._lock:
            self.events_duplicated[target_arn] += 1
        return True


_active: RuntimeFaults | None = None


def use_runtime_faults(faults: RuntimeFaults | None) -> None:
    global _active  # noqa: PLW0603 - one runtime per process, by design
    if faults is not None:
        _install_client_hook()
    _active = faults


_hook_lock = threading.Lock()
_hooked = False


def _install_client_hook() -> None:
    """Wrap botocore's API call once: every client, those already built included (the
    handlers keep theirs), passes through it; with no restart armed it only returns."""
    global _hooked  # noqa: PLW0603 - one hook per process
    with _hook_lock:
        if _hooked:
            return
        original: Any = getattr(BaseClient, "_make_api_call")  # noqa: B009 - not in the stubs

        @functools.wraps(original)
        def make_api_call(self: BaseClient, operation_name: str, api_params: Any) -> Any:
            result = original(self, operation_name, api_params)
            faults = _active
            if faults is not None and operation_name in LAUNCH_OPERATIONS:
                job_id = str((result.get("job") or {}).get("jobID", ""))
                if faults.restarts_after(current_function(), operation_name, job_id):
                    raise CoordinatorRestartError(
                        f"the launch coordinator restarted after MGN accepted {operation_name} "
                        f"(job {job_id}), before its ledger recorded the job (fault campaign)"
                    )
            return result

        setattr(BaseClient, "_make_api_call", make_api_call)  # noqa: B010 - not in the stubs
        _hooked = True


def active_runtime_faults() -> RuntimeFaults | None:
    return _active
