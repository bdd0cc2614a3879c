"""The gateway's app factory."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from shared.infra.clock import Clock, system_clock
from shared.infra.config import Settings, load_settings
from shared.infra.db.engine import engine_from_settings, make_session_factory
from shared.infra.logs import configure_logging
from webhook_gateway.context import Gateway

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    celery: Celery | None = None,
) -> Flask:
    from worker.celery_app import create_celery

    settings = settings or load_settings()
    app = Flask("webhook_gateway")
    app.config["MAX_CONTENT_LENGTH"] = None  # the ingress enforces its own limit, streaming
    # No pre-ping on checkout (a round trip per webhook): after a database restart the first
    # statement on a dead pooled connection fails, SQLAlchemy then recycles every older
    # connection of the pool, and the ingress retries that request once; an API request
    # that meets it answers 503 with Retry-After.
    engine = engine_from_settings(settings, pool_pre_ping=False)
    ingest_engine = (
        engine
        if engine.dialect.name == "sqlite"
        else engine_from_settings(settings, pool_pre_ping=False, isolation_level="AUTOCOMMIT")
    )
    app.extensions["automations"] = Gateway(
        settings=settings,
        clock=clock or system_clock,
        engine=engine,
        session_factory=make_session_factory(engine),
        celery=celery or create_celery(settings, include_tasks=False),
        ingest_engine=ingest_engine,
    )

    from webhook_gateway import access_log, health, ingress, metrics

    if not logging.getLogger().handlers:  # gunicorn workers; tests and hosts keep theirs
        configure_logging(settings.log_level)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    ingress.init_app(app)
    access_log.init_app(app)
    from webhook_gateway import api  # management API under /api/v1 (issue 6)

    api.init_app(app)
    _register_error_handlers(app)
    return app


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        code = (exc.name or "error").lower().replace(" ", "_")
        response = jsonify(code=code, message=exc.description)
        response.status_code = exc.code or 500
        # keep what the error itself says in headers (405: Allow), not its text/html type
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error")
        return jsonify(code="internal_error", message="internal server error"), 500
