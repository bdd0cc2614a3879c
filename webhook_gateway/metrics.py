"""Prometheus metrics for the gateway, safe under several gunicorn worker processes.

When ``PROMETHEUS_MULTIPROC_DIR`` is set (``gunicorn_conf`` sets it for multi-process
gateways) every worker writes its values to files there and ``/metrics`` aggregates them.

Who may read them (issue 16; docs/operations.md, "Metrics and alerts"):

* ``AUTOMATIONS_METRICS_BIND`` set: gunicorn's master serves them on that separate address
  (``gunicorn_conf.when_ready``) and ``/metrics`` on the gateway's port answers 404;
* else ``AUTOMATIONS_METRICS_TOKEN`` set: ``/metrics`` needs ``Authorization: Bearer <token>``
  (401 otherwise; wrong tokens count as failed authentications, see ``auth_throttle``);
* neither: ``/metrics`` answers 404, like any unknown path. Metrics are not public by default,
  on any bind address: a loopback bind behind a local reverse proxy is public too.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from shared.errors import error_body
from webhook_gateway.context import gateway

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
def metrics() -> Any:
    gw = gateway()
    expected = gw.settings.metrics_token
    if gw.settings.metrics_bind or not expected:
        abort(404)
    scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="automations-metrics"'}
    if scheme.lower() != "bearer" or not given.strip():
        body = error_body(
            "unauthorized", "Authorization: send 'Bearer <metrics token>'", field="Authorization"
        )
        return jsonify(body), 401, challenge
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        retry_after = gw.auth_throttle.record_failure(request.remote_addr)
        if retry_after is not None:
            body = error_body(
                "too_many_requests",
                "Authorization: too many failed authentications from this address; "
                f"retry in {retry_after} s",
                field="Authorization",
            )
            return jsonify(body), 429, {"Retry-After": str(retry_after)}
        body = error_body(
            "invalid_token", "Authorization: not the metrics token", field="Authorization"
        )
        return jsonify(body), 401, challenge
    return Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)
