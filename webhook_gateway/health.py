"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import text

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
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def check_broker() -> str | None:
    try:
        with gateway().celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=3)
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


@bp.get("/readyz")
def readyz() -> Any:
    checks = {"database": check_database(), "broker": check_broker()}
    failed = {name: err for name, err in checks.items() if err}
    body = {
        "status": "unavailable" if failed else "ready",
        "checks": {name: ("ok" if err is None else "failed") for name, err in checks.items()},
    }
    if failed:
        body["errors"] = failed
        return jsonify(body), 503
    return jsonify(body)
