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
    req = request._get_current_object()  # type: ignore[attr-defined]
    path = req.path
    level = logging.DEBUG if path in _QUIET_PATHS else logging.INFO
    if not log.isEnabledFor(level):
        return response
    ctx = g._get_current_object()  # type: ignore[attr-defined]
    started = ctx.get("started")
    status = response.status_code
    fields = {
        "method": req.method,
        "path": path,
        "status": status,
        "outcome": ctx.get("outcome"),
        "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
        "body_size": ctx.get("body_size", req.content_length),
        "remote_addr": req.remote_addr,
    }
    # makeRecord + handle instead of log.log(): the same record and handlers, without the
    # caller lookup (a stack walk per request) that an access log has no use for
    log.handle(
        log.makeRecord(
            log.name, level, __file__, 0, "%s %s %s", (req.method, path, status), None, None, fields
        )
    )
    return response


def init_app(app: Flask) -> None:
    app.before_request(_before)
    app.after_request(_after)
