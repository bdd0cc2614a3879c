"""One JSON access-log line per request.

Logged: method, path (it carries the trigger id, which is not a secret), status, outcome,
duration in ms, body size. Never logged: headers (signatures), query strings, bodies.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

__all__ = ["init_app", "set_outcome"]

log = logging.getLogger("automations.access")
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def set_outcome(outcome: str, body_size: int | None = None) -> None:
    g.outcome = outcome
    if body_size is not None:
        g.body_size = body_size


def _before() -> None:
    g.started = time.perf_counter()


def _after(response: Response) -> Response:
    started = g.get("started")
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
    level = logging.DEBUG if request.path in _QUIET_PATHS else logging.INFO
    if log.isEnabledFor(level):
        log.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "outcome": g.get("outcome"),
                "duration_ms": duration_ms,
                "body_size": g.get("body_size", request.content_length),
                "remote_addr": request.remote_addr,
            },
        )
    return response


def init_app(app: Flask) -> None:
    app.before_request(_before)
    app.after_request(_after)
