"""One Logger, Metrics and Tracer for every handler (Powertools), configured by environment.

``POWERTOOLS_SERVICE_NAME`` names the service, ``DEBUG=true`` turns on debug logs (the seed's
variable), ``POWERTOOLS_TRACE_DISABLED`` turns X-Ray off (the local runtime sets it).
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "wavepilot")
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Wavepilot")

logger = Logger(
    service=SERVICE,
    level="DEBUG" if os.environ.get("DEBUG", "").lower() in {"1", "true", "yes"} else "INFO",
)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)
