"""``POST /api/v1/automations/triggers/<trigger_id>/webhook`` (SPEC 4).

Order of work: size limit (Content-Length, then a capped streaming read) → trigger lookup
(404) → disabled automation (202 ignored) → signature (401 + throttled error event) →
delivery-id dedup → insert the ``pending`` event and commit → publish (sent, its reply read
later) → 202.
A 202 with an event id always means the event is committed. The view stays thin: the
domain logic lives in :mod:`shared.ingest`.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from shared.crypto import Keyring
from shared.ingest import (
    TriggerCache,
    TriggerSnapshot,
    delivery_id_from,
    load_trigger,
    parse_trigger_id,
    prepare_payload,
    record_bad_signature,
    record_event,
)
from shared.publish import EventPublisher, PublishFailure, make_publisher
from shared.webhooks.signatures import (
    GITHUB_HEADER,
    STANDARD_SIGNATURE_HEADER,
    Verdict,
    verify,
)
from webhook_gateway.access_log import set_outcome
from webhook_gateway.context import Gateway, gateway
from webhook_gateway.metrics import PUBLISH_FAILURES, observe

__all__ = ["RETRY_AFTER_SECONDS", "bp", "init_app"]

log = logging.getLogger(__name__)
bp = Blueprint("ingress", __name__)

RETRY_AFTER_SECONDS = 5
_READ_CHUNK = 64 * 1024
_EXTENSION = "automations.ingress"
_SIGNATURE_MESSAGES = {
    Verdict.MISSING: (
        "missing signature: send X-Hub-Signature-256 (GitHub) or webhook-id, "
        "webhook-timestamp and webhook-signature (Standard Webhooks)"
    ),
    Verdict.INVALID: "signature verification failed",
    Verdict.STALE: "webhook-timestamp is outside the tolerance of 300 seconds",
}


@dataclass
class IngressState:
    keyring: Keyring
    triggers: TriggerCache
    publisher: EventPublisher


def init_app(app: Flask) -> None:
    gw: Gateway = app.extensions["automations"]
    app.extensions[_EXTENSION] = IngressState(
        keyring=Keyring(gw.settings.keys),
        triggers=TriggerCache(gw.clock, gw.settings.trigger_cache_seconds),
        publisher=make_publisher(gw.celery),
    )
    app.register_blueprint(bp)


def _state() -> IngressState:
    return current_app.extensions[_EXTENSION]  # type: ignore[no-any-return]


class _Outcome(Exception):
    """Short-circuits the handler with a finished response."""

    def __init__(self, outcome: str, response: Response) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.response = response


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json", headers=headers)


def _error(status: int, code: str, message: str, **headers: str) -> Response:
    return _json(status, {"code": code, "message": message}, headers or None)


def _not_found() -> _Outcome:
    # one body for unknown, malformed and cron ids, so ids cannot be probed
    return _Outcome("not_found", _error(404, "not_found", "no such webhook trigger"))


def _too_large(limit: int) -> _Outcome:
    return _Outcome(
        "too_large",
        _error(413, "payload_too_large", f"request body exceeds the limit of {limit} bytes"),
    )


def _unavailable(message: str = "the database is unavailable; retry later") -> _Outcome:
    return _Outcome(
        "unavailable",
        _error(503, "unavailable", message, **{"Retry-After": str(RETRY_AFTER_SECONDS)}),
    )


def _is_db_unavailable(exc: SQLAlchemyError) -> bool:
    if isinstance(exc, PoolTimeoutError | OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _read_body(limit: int) -> bytes:
    """The raw body, never buffering more than ``limit + 1`` bytes."""
    req = request._get_current_object()  # type: ignore[attr-defined]
    length = req.content_length
    if length is not None and length > limit:
        raise _too_large(limit)
    stream = req.stream
    if length is not None:
        # the common case: one read of exactly the announced length (werkzeug's stream
        # stops at Content-Length, so a short body just returns fewer bytes)
        return stream.read(length) if length else b""
    parts: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _signature_header() -> str | None:
    for name in (GITHUB_HEADER, STANDARD_SIGNATURE_HEADER):
        if name in request.headers:
            return name
    return None


def _describe(exc: BaseException) -> str:
    try:  # SQLAlchemy's message includes a repr of the parameters, which can itself fail
        text = str(exc)
    except Exception:
        text = ""
    first_line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first_line[:200]}"


class _Db:
    """The request's Core connections, checked out only when first needed: a cached trigger
    answered with 404 or 202 ignored never touches a pool. Not an ORM session: the ingress
    runs only Core statements and the session's bookkeeping shows at this request rate.

    ``ingest()`` is the hot path's connection (autocommit on PostgreSQL, see
    :class:`~webhook_gateway.context.Gateway`); ``transactional()`` is for the rare
    multi-statement write (a bad signature). On SQLite both are one connection.
    """

    def __init__(self, gw: Gateway) -> None:
        self._engines = (gw.ingest_engine, gw.engine)
        self._conns: list[Connection | None] = [None, None]

    def _get(self, i: int) -> Connection:
        if self._engines[0] is self._engines[1]:
            i = 0
        conn = self._conns[i]
        if conn is None:
            conn = self._conns[i] = self._engines[i].connect()
        return conn

    def ingest(self) -> Connection:
        return self._get(0)

    def transactional(self) -> Connection:
        return self._get(1)

    def rollback(self) -> None:
        for conn in self._conns:
            if conn is not None:
                try:
                    conn.rollback()
                except Exception:  # the connection is gone; closing it discards it
                    pass

    def close(self) -> None:
        for conn in self._conns:
            if conn is not None:
                conn.close()


def _reject_signature(
    gw: Gateway, db: _Db, trigger: TriggerSnapshot, verdict: Verdict, size: int
) -> _Outcome:
    details = {
        "_signature_failed": verdict.value,
        "_signature_header": _signature_header(),
        "_original_size": size,
    }
    try:
        conn = db.transactional()
        record_bad_signature(conn, gw.clock, trigger, details)
        conn.commit()
    except SQLAlchemyError as exc:
        db.rollback()
        # the answer is still 401: the request is unauthenticated either way
        log.warning(
            "could not record a bad signature for trigger %s: %s",
            trigger.trigger_id,
            _describe(exc),
        )
    return _Outcome("bad_signature", _error(401, "invalid_signature", _SIGNATURE_MESSAGES[verdict]))


def _publish(state: IngressState, event_id: uuid.UUID) -> None:
    """Send the event to the broker; the 202 does not wait for the broker's reply (see
    :mod:`shared.publish`). A failure, of this publish or found now for an earlier one,
    leaves that event ``pending`` for the sweeper; it is counted and logged."""
    try:
        failures = state.publisher.publish_unconfirmed(event_id)
    except Exception as exc:  # not the broker's doing; still, the event stays pending
        failures = [PublishFailure((str(event_id),), exc)]
    for failure in failures:
        PUBLISH_FAILURES.inc(len(failure.event_ids))
        log.warning(
            "publishing event %s failed; it stays pending for the sweeper: %s",
            ", ".join(failure.event_ids),
            _describe(failure.error),
        )


def _handle(
    gw: Gateway, state: IngressState, raw_trigger_id: str, db: _Db, body: bytes
) -> _Outcome:
    trigger_id = parse_trigger_id(raw_trigger_id)
    if trigger_id is None:
        raise _not_found()
    hit, trigger = state.triggers.get(trigger_id)
    if not hit:
        trigger = load_trigger(db.ingest(), state.keyring, trigger_id)
        state.triggers.put(trigger_id, trigger)
    if trigger is None or not trigger.is_webhook:
        raise _not_found()
    if trigger.disabled:
        return _Outcome("ignored", _json(202, {"status": "ignored"}))
    if trigger.secret_error is not None:
        return _unavailable(
            "the trigger's secret cannot be decrypted with the configured keys; "
            "the operator must fix AUTOMATIONS_ENCRYPTION_KEYS"
        )

    headers = {name.lower(): value for name, value in request.headers.items()}
    now = gw.clock.now()
    verdict = verify(headers, body, trigger.secrets_at(now), now.timestamp())
    if verdict is not Verdict.OK:
        return _reject_signature(gw, db, trigger, verdict, len(body))

    payload = prepare_payload(body, gw.settings.stored_payload_max_bytes)
    conn = db.ingest()
    recorded = record_event(conn, gw.clock, trigger, delivery_id_from(headers), payload)
    conn.commit()  # SQLite; a no-op in autocommit mode
    if recorded.duplicate:
        return _Outcome(
            "duplicate", _json(202, {"event_id": str(recorded.event_id), "duplicate": True})
        )
    _publish(state, recorded.event_id)
    return _Outcome("accepted", _json(202, {"event_id": str(recorded.event_id)}))


def _internal_error() -> _Outcome:
    return _Outcome("error", _error(500, "internal_error", "internal server error"))


@bp.post("/api/v1/automations/triggers/<trigger_id>/webhook")
def receive_webhook(trigger_id: str) -> Response:
    started = time.perf_counter()
    gw = gateway()
    db = _Db(gw)
    try:
        body = _read_body(gw.settings.max_body_bytes)
        set_outcome("", body_size=len(body))
        try:
            result = _handle(gw, _state(), trigger_id, db, body)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # Pooled connections are not pinged on checkout (a round trip per request);
            # one that died with a database restart fails here, and SQLAlchemy has now
            # discarded the pool's older connections. Nothing was recorded on it (or, if
            # the commit went through, the delivery id finds it), so try once more.
            db.rollback()
            db.close()
            db = _Db(gw)
            result = _handle(gw, _state(), trigger_id, db, body)
    except _Outcome as short:
        result = short
    except SQLAlchemyError as exc:
        db.rollback()
        if _is_db_unavailable(exc):
            log.warning("database unavailable: %s", _describe(exc))
            result = _unavailable()
        else:
            log.error("database error while receiving a webhook: %s", _describe(exc))
            result = _internal_error()
    except Exception:
        db.rollback()
        log.exception("unexpected error while receiving a webhook")
        result = _internal_error()
    finally:
        db.close()
    observe(result.outcome, time.perf_counter() - started)
    set_outcome(result.outcome)
    return result.response
