"""One Logger, Metrics and Tracer for every handler (Powertools), configured by environment.

``POWERTOOLS_SERVICE_NAME`` names the service, ``DEBUG=true`` turns on debug logs (the seed's
variable), ``POWERTOOLS_TRACE_DISABLED`` turns X-Ray off (the local runtime sets it).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.typing import LambdaContext

R = TypeVar("R")

# A handler that only replays an idempotent result adds no metric; that is not a problem.
warnings.filterwarnings("ignore", message="No application metrics to publish")

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "wavepilot")
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Wavepilot")

logger = Logger(
    service=SERVICE,
    level="DEBUG" if os.environ.get("DEBUG", "").lower() in {"1", "true", "yes"} else "INFO",
)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)


def count(name: str, value: float = 1) -> None:
    """Add a Count metric (CloudWatch EMF), unless metrics are disabled.

    Powertools prints a full batch (100 values) even with POWERTOOLS_METRICS_DISABLED set;
    the embedded default, which has no CloudWatch, disables them, so they are not added.
    """
    if not is_metrics_disabled():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def gauge(name: str, value: float, unit: MetricUnit = MetricUnit.Seconds) -> None:
    """Add a measured value (a lag, an age, a number of things in a state) in ``unit``,
    unless metrics are disabled (as ``count``)."""
    if not is_metrics_disabled():
        metrics.add_metric(name=name, unit=unit, value=value)


def step_handler(
    func: Callable[[dict[str, Any], LambdaContext], R],
) -> Callable[[dict[str, Any], LambdaContext], R]:
    """Powertools for a pipeline step: logs keyed by the migration's correlation ID, a trace,
    and one invocation metric (so every flush has a metric); the step's reports are written
    (one record write per migration) and its status events put together when it returns or
    raises (``reports_deferred``)."""
    # Imported here: the reporter logs with this module's logger.
    from orchestration.pipeline.reporter import reports_deferred

    @wraps(func)
    def counted(event: dict[str, Any], context: LambdaContext) -> R:
        count("StepInvocations")
        with reports_deferred():
            return func(event, context)

    return logger.inject_lambda_context(
        correlation_id_path="state.spec.correlationId",
        clear_state=True,
    )(tracer.capture_lambda_handler(metrics.log_metrics(counted)))
