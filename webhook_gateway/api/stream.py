"""``GET /api/v1/chats/<id>/stream``: a chat's live events as Server-Sent Events (SPEC 9).

Order of work, after the same authentication and authorization as reading the chat (a chat
the caller may not read is 404):

1. subscribe to the chat's live events (:mod:`shared.chats.live`); the subscription is in
   effect when this returns;
2. read the ``snapshot`` (status, retry, last_error, the last 50 messages) in a fresh
   transaction begun after step 1, so that whatever commits after the snapshot arrives as an
   event, and an event about something the snapshot already shows only repeats it;
3. relay ``status``/``delta``/``message``/``retry``/``error`` events as they come, with a
   ``: keep-alive`` comment line after 15 s without output so proxies keep the connection;
   ``resync`` (events lost in transit) is answered with a fresh ``snapshot``.

The stream ends when the client goes away: the WSGI server's next write fails (at the
latest at the next keep-alive) and it closes the response, which ends the subscription.

Serving model (docs/operations.md "Live streams"): every open stream holds one thread (and,
with Redis, one connection) for its lifetime, so streams are served by their own process,
``automations stream`` (:mod:`webhook_gateway.stream`: gunicorn with hundreds of threads),
and the reverse proxy sends ``/api/v1/chats/*/stream`` there. The gateway answers the same
route too, but at most :func:`gateway_stream_limit` streams per process; past that it
answers 503, so streams can never take the webhook ingress's threads.

The route is a plain Flask view on its own blueprint rather than an ``operation``: its answer
is a never-ending ``text/event-stream``, which the JSON operation machinery (and the OpenAPI
fuzzing of every operation) cannot consume.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app
from flask.blueprints import BlueprintSetupState
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shared.accounts import authz
from shared.accounts.authz import Principal
from shared.automations.service import require
from shared.chats.live import RESYNC, LiveSubscriber, Subscription, live_subscriber
from shared.errors import (
    RETRY_AFTER_SECONDS,
    UNAVAILABLE,
    DomainError,
    NotFound,
    describe_error,
    is_transient_db_error,
)
from shared.models import Chat, ChatMessage
from webhook_gateway.api import framework
from webhook_gateway.api.chats import message_out
from webhook_gateway.api.framework import ApiError, error_response
from webhook_gateway.context import Gateway, gateway

__all__ = [
    "KEEPALIVE_SECONDS",
    "SNAPSHOT_MESSAGES",
    "StreamConfig",
    "configure_streams",
    "gateway_stream_limit",
    "snapshot",
    "stream_bp",
]

log = logging.getLogger(__name__)
stream_bp = Blueprint("api_v1_stream", __name__, url_prefix=framework.PREFIX)

KEEPALIVE_SECONDS = 15.0
SNAPSHOT_MESSAGES = 50
EXTENSION = "automations_streams"


@dataclass
class StreamConfig:
    """Per app: the keep-alive interval and how many streams one process serves at once
    (None: as many as the server has threads for)."""

    keepalive_seconds: float = KEEPALIVE_SECONDS
    max_streams: int | None = None
    open_streams: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: called between subscribing and reading the snapshot (tests prove nothing is lost there)
    after_subscribe: Callable[[uuid.UUID], None] | None = None
    #: the live subscriber (default: chosen from the settings on first use)
    subscriber: LiveSubscriber | None = None

    def acquire(self) -> bool:
        with self.lock:
            if self.max_streams is not None and self.open_streams >= self.max_streams:
                return False
            self.open_streams += 1
            return True

    def release(self) -> None:
        with self.lock:
            self.open_streams -= 1


def _register(state: BlueprintSetupState) -> None:
    state.app.register_blueprint(stream_bp)


# Registered with the API blueprint (api.init_app), but as a blueprint of its own: its route is
# not a JSON operation (module docstring).
framework.bp.record_once(_register)


def gateway_stream_limit(threads: int) -> int:
    """Streams one gateway process serves itself: a quarter of its threads (at least one),
    so webhooks keep the rest; the stream process has no such limit."""
    return max(1, threads // 4)


def configure_streams(app: Flask, **options: Any) -> StreamConfig:
    """Set (or change) the app's stream configuration; see :class:`StreamConfig`."""
    config = app.extensions.get(EXTENSION)
    if config is None:
        config = app.extensions[EXTENSION] = StreamConfig()
    for name, value in options.items():
        if not hasattr(config, name):
            raise TypeError(f"unknown stream option {name}")
        setattr(config, name, value)
    return config


def _config(gw: Gateway) -> StreamConfig:
    config = current_app.extensions.get(EXTENSION)
    if config is None:
        limit = gateway_stream_limit(gw.settings.gateway_threads)
        config = configure_streams(current_app, max_streams=limit)
    return config  # type: ignore[no-any-return]


# The snapshot ------------------------------------------------------------------------------


def authorize(session: Session, principal: Principal, chat_id: uuid.UUID) -> None:
    """Raise NotFound unless the principal may read the chat (as ``GET /chats/<id>``)."""
    require(principal, authz.CHAT_READ)
    chat = session.get(Chat, chat_id)
    if chat is None or not authz.can_view_chat(principal, chat):
        raise NotFound(f"chat {chat_id} not found", field="chat_id")


def snapshot(session: Session, chat_id: uuid.UUID) -> dict[str, Any] | None:
    """``{status, retry, last_error, messages}`` (the last 50 non-deleted messages, oldest
    first), or None when the chat is gone."""
    chat = session.execute(
        select(Chat).where(Chat.id == chat_id).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if chat is None:
        return None
    newest = session.scalars(
        select(ChatMessage)
        .where(ChatMessage.chat_id == chat_id, ChatMessage.deleted.is_(False))
        .order_by(ChatMessage.created_at.desc(), ChatMessage.id.desc())
        .limit(SNAPSHOT_MESSAGES)
    ).all()
    return {
        "status": chat.status.value,
        "retry": chat.retry,
        "last_error": chat.last_error,
        "messages": [message_out(m).model_dump(mode="json") for m in reversed(newest)],
    }


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event; the JSON is one line (orjson never writes newlines)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


KEEPALIVE = b": keep-alive\n\n"


# The view ----------------------------------------------------------------------------------


@stream_bp.get("/chats/<chat_id>/stream")
def stream_chat(chat_id: str) -> Response:
    """Server-Sent Events: ``snapshot``, then ``status``, ``delta``, ``message``, ``retry`` and
    ``error`` as they happen (SPEC 9 "Live stream")."""
    gw = gateway()
    try:
        return _open(gw, chat_id)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.field, **exc.headers)
    except DomainError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.field)
    except SQLAlchemyError as exc:
        if not is_transient_db_error(exc):
            raise
        log.warning("database unavailable: %s", describe_error(exc))
        return error_response(503, *UNAVAILABLE, None, **{"Retry-After": str(RETRY_AFTER_SECONDS)})


def _open(gw: Gateway, raw_id: str) -> Response:
    with gw.unit_of_work() as uow:
        # the framework's own authentication and id parsing: the same 401/429/404 as every
        # operation
        principal = framework.authenticate(uow.session, gw)
        chat_id = framework.parse_id("chat_id", raw_id)
        authorize(uow.session, principal, chat_id)
    config = _config(gw)
    if not config.acquire():
        raise ApiError(
            503,
            "unavailable",
            "stream: this gateway process serves its share of live streams already; route "
            "/api/v1/chats/*/stream to `automations stream` (docs/operations.md)",
            None,
            **{"Retry-After": "5"},
        )
    try:
        subscriber = config.subscriber or live_subscriber(gw.settings)
        sub = subscriber.subscribe(chat_id)
    except Exception as exc:
        config.release()
        log.warning("live events unavailable: %s", type(exc).__name__)
        raise ApiError(
            503,
            "unavailable",
            "stream: live events are unavailable; retry shortly",
            None,
            **{"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
    closed = threading.Event()

    def close() -> None:
        if not closed.is_set():
            closed.set()
            sub.close()
            config.release()

    if config.after_subscribe is not None:
        config.after_subscribe(chat_id)
    response = Response(
        _events(gw, chat_id, sub, config.keepalive_seconds, close),
        status=200,
        mimetype="text/event-stream",
    )
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    response.call_on_close(close)  # also when the body was never started
    return response


def _read_snapshot(gw: Gateway, chat_id: uuid.UUID) -> dict[str, Any] | None:
    with gw.unit_of_work() as uow:  # a transaction begun after subscribing
        return snapshot(uow.session, chat_id)


def _events(
    gw: Gateway,
    chat_id: uuid.UUID,
    sub: Subscription,
    keepalive: float,
    close: Callable[[], None],
) -> Iterator[bytes]:
    try:
        try:
            first = _read_snapshot(gw, chat_id)
        except SQLAlchemyError as exc:
            log.warning("stream snapshot failed: %s", describe_error(exc))
            return  # the client reconnects
        if first is None:
            return
        yield sse("snapshot", first)
        last_write = time.monotonic()
        while True:
            wait = keepalive - (time.monotonic() - last_write)
            try:
                event = sub.get(timeout=max(0.0, wait)) if wait > 0 else None
            except Exception as exc:  # Redis went away: end cleanly, the client reconnects
                log.warning("live events lost: %s", type(exc).__name__)
                return
            if event is None:
                if time.monotonic() - last_write >= keepalive:
                    yield KEEPALIVE
                    last_write = time.monotonic()
                continue
            if event.event == RESYNC:
                again = _read_snapshot(gw, chat_id)
                if again is None:
                    return
                yield sse("snapshot", again)
            else:
                yield sse(event.event, event.data)
            last_write = time.monotonic()
    finally:
        close()
