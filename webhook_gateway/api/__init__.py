"""The versioned management API under ``/api/v1`` (issue 6).

``init_app(app)`` registers the blueprint and checks at startup that every encrypted webhook
secret uses a configured key (:func:`shared.keys.operations.check_keys`).
"""

from __future__ import annotations

import logging

from flask import Flask, Response

from shared import keys
from shared.infra.crypto import Keyring

# isort: off
# Importing a module registers its routes, in this order (the OpenAPI document's order).
from webhook_gateway.api import users  # noqa: F401
from webhook_gateway.api import tokens  # noqa: F401
from webhook_gateway.api import automations  # noqa: F401
from webhook_gateway.api import triggers  # noqa: F401
from webhook_gateway.api import events  # noqa: F401
from webhook_gateway.api import dry_run  # noqa: F401
from webhook_gateway.api import chats  # noqa: F401
from webhook_gateway.api import stream  # noqa: F401
from webhook_gateway.api import model_configs  # noqa: F401
from webhook_gateway.api import usage  # noqa: F401
from webhook_gateway.api import site_config  # noqa: F401
from webhook_gateway.api import audit_logs  # noqa: F401
from webhook_gateway.api import notifications  # noqa: F401

# isort: on
from webhook_gateway.api.framework import bp, json_response, operation
from webhook_gateway.api.openapi import build_openapi
from webhook_gateway.context import Gateway, gateway

__all__ = ["bp", "build_openapi", "init_app"]

log = logging.getLogger(__name__)


@operation(
    "GET",
    "/openapi.json",
    summary="This document",
    tag="meta",
    response=None,
    public=True,
)
def openapi_document(gw: Gateway) -> Response:
    """The OpenAPI 3.1 description of this API (no authentication)."""
    return json_response(200, build_openapi(gw.settings.effective_public_url))


def check_keys_at_startup(gw: Gateway) -> None:
    """Fail with a message naming the digest when a secret uses a key that is not configured.

    A database that cannot be reached is only logged here (``/readyz`` reports it)."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        with gw.unit_of_work() as uow:
            keys.check_keys(uow.session, Keyring(gw.settings.keys))
    except (OperationalError, ProgrammingError) as exc:
        log.warning("could not check encryption keys at startup: %s", type(exc).__name__)


def init_app(app: Flask, *, check_keys: bool = True) -> None:
    app.register_blueprint(bp)
    if check_keys:
        with app.app_context():
            check_keys_at_startup(gateway())
