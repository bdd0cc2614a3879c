"""The gateway's app factory."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from shared.errors import (
    RETRY_AFTER_SECONDS,
    UNAVAILABLE,
    describe_error,
    error_body,
    is_transient_db_error,
)
from shared.infra.clock import Clock, clock_with_offset
from shared.infra.config import Settings, load_settings
from shared.infra.logs import configure_logging
from shared.infra.runtime import Runtime
from webhook_gateway.context import Gateway
from webhook_gateway.metrics import PUBLISH_FAILURES

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    celery: Celery | None = None,
) -> Flask:
    settings = settings or load_settings()
    app = Flask("webhook_gateway")
    app.config["MAX_CONTENT_LENGTH"] = None  # the ingress enforces its own limit, streaming
    clock = clock or clock_with_offset(settings.clock_offset_seconds)
    app.extensions["automations"] = Gateway(
        settings=settings,
        clock=clock,
        runtime=Runtime(
            settings,
            clock=clock,
            celery=celery,
            on_publish_failure=lambda messages: PUBLISH_FAILURES.inc(len(messages)),
        ),
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
    app.after_request(_security_headers)
    if settings.trusted_proxies:
        # Outermost, so that the ingress, the access log and the failed-authentication
        # throttle all see the client's address as the trusted proxies reported it.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    return app


#: every API answer may carry a secret (tokens, webhook secrets) or tenant data
API_PREFIX = "/api/v1/"


def _security_headers(response: Response) -> Response:
    """On every answer Flask produces, errors included (the webhook ingress middleware sets
    its own): no content sniffing anywhere, and no caching of API answers by browsers or
    proxies."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.path.startswith(API_PREFIX) or request.path == API_PREFIX.rstrip("/"):
        response.headers["Cache-Control"] = "no-store"
    return response


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
        if is_transient_db_error(exc):
            log.warning("database unavailable: %s", describe_error(exc))
            response = jsonify(error_body(*UNAVAILABLE))
            response.status_code = 503
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        log.exception("unhandled error")
        return jsonify(error_body("internal_error", "internal server error")), 500
