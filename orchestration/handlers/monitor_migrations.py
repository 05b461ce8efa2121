"""``monitor_migrations``: every 5 minutes (an EventBridge schedule), the figures the alarms
watch (``orchestration/pipeline/monitoring.py``), as metrics and one log line.

``ReplicationLagSeconds`` and ``OldestPendingApprovalSeconds`` feed the replication-lag and
approval-waiting alarms (``terraform/monitoring.tf``); ``ReplicationStalledServers``,
``PendingApprovals`` and ``ApprovalsPastWindow`` are beside them on the dashboard. The
replication figures are also put per lane (dimension ``Lane``: ``account/region``, the lanes in
``TARGET_LANES``), with ``LaneUnreachable`` for a lane it cannot read. Reads only:
``mgn:DescribeSourceServers`` in each lane (through its target role: ``sts:AssumeRole``), a
Query on the table's ``gsi1`` and one GetItem per migration with a pending approval. The
embedded runtime has no schedules; tests invoke it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration import wiring
from orchestration.observability import METRICS_NAMESPACE, SERVICE, gauge, logger, metrics, tracer
from orchestration.pipeline.monitoring import MigrationMonitor
from orchestration.settings import settings


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = settings()
    lanes = wiring.lanes()
    watched = config.target_lanes or [(lanes.lane().account_id, lanes.lane().region)]
    figures = MigrationMonitor(lanes, watched, wiring.store(), wiring.clock()).measure()
    replication, approvals = figures.replication, figures.approvals
    gauge("ReplicationLagSeconds", replication.lag_seconds)
    gauge("ReplicationStalledServers", replication.stalled_servers, MetricUnit.Count)
    gauge("OldestPendingApprovalSeconds", approvals.oldest_age_seconds)
    gauge("PendingApprovals", approvals.pending, MetricUnit.Count)
    gauge("ApprovalsPastWindow", approvals.past_window, MetricUnit.Count)
    for lane in figures.lanes:
        _lane_gauges(lane.lane, lane.as_dict())
    result = figures.as_dict()
    logger.info("MIGRATION_MONITOR", extra=result)
    return result


def _lane_gauges(lane: str, figures: dict[str, Any]) -> None:
    """One lane's figures with its ``Lane`` dimension (beside the service's), one EMF blob."""
    if is_metrics_disabled():
        return
    values = [
        ("LaneUnreachable", 0 if figures["reachable"] else 1, MetricUnit.Count),
        ("ReplicationLagSeconds", figures["ReplicationLagSeconds"], MetricUnit.Seconds),
        ("ReplicationStalledServers", figures["ReplicationStalledServers"], MetricUnit.Count),
    ]
    for name, value, unit in values:
        if value is None:
            continue
        with single_metric(
            name=name, unit=unit, value=value, namespace=METRICS_NAMESPACE
        ) as metric:
            metric.add_dimension(name="service", value=SERVICE)
            metric.add_dimension(name="Lane", value=lane)
