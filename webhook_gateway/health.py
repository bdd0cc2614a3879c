"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import text

from shared.errors import RETRY_AFTER_SECONDS, describe_error
from webhook_gateway.context import gateway

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


def check_database() -> str | None:
    try:
        with gateway().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:
        return describe_error(exc)[:300]


def check_broker() -> str | None:
    try:
        with gateway().celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=3)
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


CHECKS = {"database": check_database, "broker": check_broker}


@bp.get("/readyz")
def readyz() -> Any:
    """200 when every dependency answers, else 503 naming the failed one.

    ``?check=database`` limits the probe: a load balancer that should keep routing while Redis
    is down (the gateway still answers 202 from the database) probes only the database.
    """
    wanted = [c for c in request.args.get("check", ",".join(CHECKS)).split(",") if c]
    unknown = [c for c in wanted if c not in CHECKS]
    if unknown or not wanted:
        return jsonify(
            code="bad_request", message=f"check must be a comma-separated subset of {list(CHECKS)}"
        ), 400
    checks = {name: CHECKS[name]() for name in wanted}
    failed = {name: err for name, err in checks.items() if err}
    body = {
        "status": "unavailable" if failed else "ready",
        "checks": {name: ("ok" if err is None else "failed") for name, err in checks.items()},
    }
    if failed:
        body["errors"] = failed
        return jsonify(body), 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return jsonify(body)
