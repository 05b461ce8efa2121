"""``monitor_migrations``: every 5 minutes (an EventBridge schedule), the figures the alarms
watch (``orchestration/pipeline/monitoring.py``), as metrics and one log line.

``ReplicationLagSeconds`` and ``OldestPendingApprovalSeconds`` feed the replication-lag and
approval-waiting alarms (``terraform/monitoring.tf``); ``ReplicationStalledServers``,
``PendingApprovals`` and ``ApprovalsPastWindow`` are beside them on the dashboard. Reads only:
``mgn:DescribeSourceServers``, a Query on the table's ``gsi1`` and one GetItem per migration
with a pending approval. The embedded runtime has no schedules; tests invoke it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestration import wiring
from orchestration.observability import gauge, logger, metrics, tracer
from orchestration.pipeline.monitoring import MigrationMonitor


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    figures = MigrationMonitor(wiring.mgn(), wiring.store(), wiring.clock()).measure()
    replication, approvals = figures.replication, figures.approvals
    gauge("ReplicationLagSeconds", replication.lag_seconds)
    gauge("ReplicationStalledServers", replication.stalled_servers, MetricUnit.Count)
    gauge("OldestPendingApprovalSeconds", approvals.oldest_age_seconds)
    gauge("PendingApprovals", approvals.pending, MetricUnit.Count)
    gauge("ApprovalsPastWindow", approvals.past_window, MetricUnit.Count)
    result = figures.as_dict()
    logger.info("MIGRATION_MONITOR", extra=result)
    return result
