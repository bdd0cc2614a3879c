"""Prometheus metrics for the gateway, safe under several gunicorn worker processes.

When ``PROMETHEUS_MULTIPROC_DIR`` is set (``gunicorn_conf`` sets it for multi-process
gateways) every worker writes its values to files there and ``/metrics`` aggregates them.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

__all__ = ["OUTCOMES", "PUBLISH_FAILURES", "REQUESTS", "REQUEST_LATENCY", "bp", "observe"]

OUTCOMES = (
    "accepted",
    "duplicate",
    "ignored",
    "bad_signature",
    "not_found",
    "too_large",
    "unavailable",
    "error",
)

REQUESTS = Counter(
    "automations_webhook_requests",
    "Webhook requests by outcome.",
    ["outcome"],
)
REQUEST_LATENCY = Histogram(
    "automations_webhook_request_duration_seconds",
    "Webhook request handling time, from the first byte read to the response.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PUBLISH_FAILURES = Counter(
    "automations_webhook_publish_failures",
    "Committed events whose publish to the broker failed (the sweeper re-publishes them).",
)

# every outcome is exported from the start, at zero; the children are looked up once
_BY_OUTCOME = {outcome: REQUESTS.labels(outcome=outcome) for outcome in OUTCOMES}

bp = Blueprint("metrics", __name__)


def observe(outcome: str, seconds: float) -> None:
    counter = _BY_OUTCOME.get(outcome)
    (counter if counter is not None else REQUESTS.labels(outcome=outcome)).inc()
    REQUEST_LATENCY.observe(seconds)


def _registry() -> Any:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


@bp.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)
