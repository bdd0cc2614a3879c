"""One JSON access-log line per request.

Logged: method, path (it carries the trigger id, which is not a secret), status, outcome,
duration in ms, body size. Never logged: headers (signatures), query strings, bodies.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

__all__ = ["init_app", "set_outcome", "write"]

log = logging.getLogger("automations.access")
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def set_outcome(outcome: str, body_size: int | None = None) -> None:
    g.outcome = outcome
    if body_size is not None:
        g.body_size = body_size


def _before() -> None:
    g.started = time.perf_counter()


def _after(response: Response) -> Response:
    write(
        request.method,
        request.path,
        response.status_code,
        g.get("outcome"),
        g.get("started"),
        g.get("body_size", request.content_length),
        request.remote_addr,
    )
    return response


def write(
    method: str,
    path: str,
    status: int,
    outcome: str | None,
    started: float | None,
    body_size: int | None,
    remote_addr: str | None,
) -> None:
    """Log one request; ``started`` is its ``time.perf_counter()`` at the start."""
    level = logging.DEBUG if path in _QUIET_PATHS else logging.INFO
    if not log.isEnabledFor(level):
        return
    fields = {
        "method": method,
        "path": path,
        "status": status,
        "outcome": outcome,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
        "body_size": body_size,
        "remote_addr": remote_addr,
    }
    # makeRecord + handle instead of log.log(): the same record and handlers, without the
    # caller lookup (a stack walk per request) that an access log has no use for
    log.handle(
        log.makeRecord(
            log.name, level, __file__, 0, "%s %s %s", (method, path, status), None, None, fields
        )
    )


def init_app(app: Flask) -> None:
    app.before_request(_before)
    app.after_request(_after)
