"""Durable recording of webhook deliveries (SPEC 4.2).

Plain functions over a session (an ORM Session or a Core Connection; the gateway uses the
latter on its hot path) and a clock; the caller owns the transaction and commits.

An accepted event keeps the request's headers (SPEC 4.2.1) because whoever reads the event
log needs them to tell deliveries and senders apart, minus every header that carries a
credential: the event log is readable by everyone who may read the automation, and a stored
secret would outlive its rotation. The copy is bounded (:data:`MAX_STORED_HEADERS`,
:data:`MAX_HEADER_VALUE_CHARS`) so a sender cannot grow a row with headers. The event type
comes from the sender's own header, or from the body for Standard Webhooks, which has no such
header.

Deduplication trusts only what the signature covers. A request verified by Standard Webhooks
is identified by its signed ``webhook-id`` alone; any other delivery header on it is ignored,
or anyone holding one captured request could replay it as new events by adding a fresh
unsigned ``X-GitHub-Delivery``. A GitHub-style signature covers the body only: its delivery
headers still name redeliveries, and a byte-identical body on the same trigger within the
trigger's ``replay_window_seconds`` is a duplicate too (:func:`replay_digest`; the event keeps
the body's SHA-256 for that look-up). The price: a sender that legitimately sends the same
body twice within the window loses the second.

Rejected signatures are recorded folded per trigger, window and reason (the reason is part of
the key: folding on the error text alone counted every later reason under the first one).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import JSON, Table, bindparam, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shared.events.payload import PreparedPayload
from shared.infra.clock import Clock
from shared.infra.db.base import new_id
from shared.models import AutomationEvent, EventStatus
from shared.triggers.lookup import TriggerSnapshot
from shared.triggers.signatures import STANDARD_ID_HEADER, Scheme

__all__ = [
    "BAD_SIGNATURE_ERROR",
    "BAD_SIGNATURE_WINDOW",
    "DELIVERY_ID_HEADERS",
    "EVENT_TYPE_HEADERS",
    "MAX_DELIVERY_ID_LENGTH",
    "MAX_EVENT_TYPE_LENGTH",
    "MAX_HEADER_NAME_CHARS",
    "MAX_HEADER_VALUE_CHARS",
    "MAX_STORED_HEADERS",
    "SECRET_HEADERS",
    "RecordedEvent",
    "count_events",
    "delivery_id_from",
    "event_type_from",
    "record_bad_signature",
    "record_event",
    "replay_digest",
    "stored_headers",
]

#: sender delivery-id headers of a GitHub-style request (none of them signed), in order of
#: preference
DELIVERY_ID_HEADERS = ("X-GitHub-Delivery", "webhook-id", "Idempotency-Key")
#: the only delivery-id header of a Standard Webhooks request: the one its signature covers
_SIGNED_ID_HEADERS = (STANDARD_ID_HEADER,)
MAX_DELIVERY_ID_LENGTH = 200
#: sender event-type headers (lower-case), in order of preference: GitHub, GitLab, Bitbucket
EVENT_TYPE_HEADERS = ("x-github-event", "x-gitlab-event", "x-event-key")
#: the ``event_type`` column's length
MAX_EVENT_TYPE_LENGTH = 200
#: headers never stored: credentials and signatures (lower-case)
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-hub-signature",
        "x-hub-signature-256",
        "webhook-signature",
        "x-gitlab-token",
    }
)
#: at most this many headers are stored (the first ones, in the order the server passed them)
MAX_STORED_HEADERS = 100
#: longer header names are cut to this many characters
MAX_HEADER_NAME_CHARS = 200
#: longer header values are cut to this many characters
MAX_HEADER_VALUE_CHARS = 1000
BAD_SIGNATURE_ERROR = "signature verification failed"
#: at most one bad-signature row per trigger and reason per window; more failures bump its
#: counter
BAD_SIGNATURE_WINDOW = timedelta(minutes=1)
#: the key of a bad-signature row's payload that holds the reason (SPEC 4.2.1)
_REASON_KEY = "_signature_failed"
#: namespace of the two-int advisory lock that serialises bad-signature bookkeeping
_ADVISORY_NAMESPACE = 0x1A6E57
#: namespace of the two-int advisory lock that serialises the replay-window look-up and
#: insert of one body on one trigger
_REPLAY_NAMESPACE = 0x1A6E58

_events = cast(Table, AutomationEvent.__table__)
#: the ``headers`` column's type, binding Python None as SQL NULL (not JSON ``null``)
_NULLABLE_JSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


@dataclass(frozen=True)
class RecordedEvent:
    event_id: uuid.UUID
    #: True when the delivery id (or, in the replay window, the body) was seen before;
    #: ``event_id`` is then the original one
    duplicate: bool


def delivery_id_from(headers: Mapping[str, str], scheme: Scheme | None) -> str | None:
    """The sender's delivery id, or None (no id means no deduplication by id).

    ``scheme`` is the one that verified the request: for :attr:`Scheme.STANDARD` only the
    signed ``webhook-id`` counts; otherwise the first of :data:`DELIVERY_ID_HEADERS`.
    Ids longer than the column allows are replaced by a digest, so two long ids that share
    a prefix never collide.
    """
    lowered = {str(name).lower(): value for name, value in headers.items()}
    names = _SIGNED_ID_HEADERS if scheme is Scheme.STANDARD else DELIVERY_ID_HEADERS
    for name in names:
        value = lowered.get(name.lower())
        if value is None:
            continue
        value = value.strip()
        if not value:
            continue
        if len(value) > MAX_DELIVERY_ID_LENGTH:
            return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()
        return value
    return None


def replay_digest(trigger: TriggerSnapshot, scheme: Scheme | None, body: bytes) -> str | None:
    """The body's hex SHA-256 when the replay window applies to this delivery (a GitHub-style
    signature and a window above 0), else None: pass it to :func:`record_event`."""
    if scheme is not Scheme.GITHUB or trigger.replay_window_seconds <= 0:
        return None
    return hashlib.sha256(body).hexdigest()


def _storable(text: str) -> str:
    # PostgreSQL text and jsonb cannot hold NUL
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers to store with an accepted event: names lower-cased, :data:`SECRET_HEADERS`
    removed, at most :data:`MAX_STORED_HEADERS` of them (the rest dropped), names cut to
    :data:`MAX_HEADER_NAME_CHARS` and values to :data:`MAX_HEADER_VALUE_CHARS` characters."""
    out: dict[str, str] = {}
    for raw_name, raw_value in headers.items():
        name = str(raw_name).lower()
        if name in SECRET_HEADERS:
            continue
        name = _storable(name[:MAX_HEADER_NAME_CHARS])
        if name in out:
            continue
        out[name] = _storable(str(raw_value)[:MAX_HEADER_VALUE_CHARS])
        if len(out) >= MAX_STORED_HEADERS:
            break
    return out


def _event_type_value(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = _storable(value.strip()[:MAX_EVENT_TYPE_LENGTH])
    return value or None


def _standard_type(body: bytes, payload: PreparedPayload) -> Any:
    """The body's top-level ``type``. orjson first (fast, and the stored copy stays
    unparsed); what it refuses but is still JSON (integers beyond 64 bits, lone surrogate
    escapes) is read from the prepared payload, which the standard library parsed."""
    if not payload.is_json:
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = payload.pending if payload.truncated else payload.stored
    return value.get("type") if isinstance(value, dict) else None


def event_type_from(
    headers: Mapping[str, str], body: bytes, payload: PreparedPayload
) -> str | None:
    """The sender's event type (SPEC 4.2.1), at most :data:`MAX_EVENT_TYPE_LENGTH` characters;
    None when the request names none.

    The first non-empty :data:`EVENT_TYPE_HEADERS` header wins; a Standard Webhooks request
    (it carries ``webhook-id``) without one uses its body's top-level string ``type``.
    ``headers`` must have lower-case names (the ingress's own mapping has).
    """
    for name in EVENT_TYPE_HEADERS:
        found = _event_type_value(headers.get(name))
        if found is not None:
            return found
    if STANDARD_ID_HEADER in headers:
        return _event_type_value(_standard_type(body, payload))
    return None


def _json_value(value: Any) -> Any:
    # A JSON ``null`` body must be stored as JSON null, not SQL NULL.
    return JSON.NULL if value is None else value


_INSERT_COLUMNS = (
    "id",
    "automation_id",
    "trigger_id",
    "received_at",
    "delivery_id",
    "event_type",
    "headers",
    "body_sha256",
    "payload",
    "pending_payload",
    "status",
    "occurrences",
    "publish_attempts",
)


def _build_statements() -> dict[str, Any]:
    """Statements built once, so executing them with parameters hits the compiled cache.

    The deduplicating insert is a typed ``text()`` construct: the dialect-specific
    ``insert().on_conflict_do_nothing()`` is not cacheable and recompiling it on every request
    costs about a millisecond. The same SQL runs on PostgreSQL and SQLite (>= 3.35).
    """
    params = [
        bindparam(name, type_=_NULLABLE_JSON if name == "headers" else _events.c[name].type)
        for name in _INSERT_COLUMNS
    ]
    columns = ", ".join(_INSERT_COLUMNS)
    placeholders = ", ".join(f":{name}" for name in _INSERT_COLUMNS)
    dedup = (
        text(
            f"INSERT INTO {_events.name} ({columns}) VALUES ({placeholders}) "
            "ON CONFLICT (trigger_id, delivery_id) DO NOTHING RETURNING id"
        )
        .bindparams(*params)
        .columns(_events.c.id)
    )
    return {
        "plain": insert(_events).values({p.key: p for p in params}),
        "dedup": dedup,
        "existing": select(_events.c.id).where(
            _events.c.trigger_id == bindparam("trigger_id"),
            _events.c.delivery_id == bindparam("delivery_id"),
        ),
        "replay_lock": text("SELECT pg_advisory_xact_lock(:ns, :key)"),
        # served by ix_automation_events_body_sha256; the oldest match is the original
        "replayed": select(_events.c.id)
        .where(
            _events.c.trigger_id == bindparam("trigger_id"),
            _events.c.body_sha256 == bindparam("body_sha256"),
            _events.c.received_at > bindparam("since", type_=_events.c.received_at.type),
        )
        .order_by(_events.c.received_at)
        .limit(1),
    }


_STATEMENTS = _build_statements()


def _insert_ignoring_duplicates(session: Session | Connection, values: dict[str, Any]) -> Any:
    return session.execute(_STATEMENTS["dedup"], values).scalar_one_or_none()


def _replay_key(trigger_id: uuid.UUID, body_sha256: str) -> int:
    """A signed 32-bit lock key for (trigger, body); a collision only serialises two
    unrelated deliveries."""
    mixed = int(body_sha256[:8], 16) ^ int.from_bytes(trigger_id.bytes[:4], "big")
    return mixed - (1 << 32) if mixed >= 1 << 31 else mixed


def _replayed(
    session: Session | Connection,
    trigger: TriggerSnapshot,
    body_sha256: str,
    now: datetime,
) -> uuid.UUID | None:
    """The event that first received this body on this trigger within its replay window.

    Race-free: on PostgreSQL a transaction-level advisory lock on (trigger, body) is taken
    before the look-up and held until the caller's insert commits, so a concurrent identical
    body waits, and its look-up (a new statement, hence a new snapshot under READ COMMITTED)
    sees the winner's row. SQLite transactions begin IMMEDIATE (one writer at a time), which
    serialises the same way.
    """
    if _dialect_name(session) == "postgresql":
        session.execute(
            _STATEMENTS["replay_lock"],
            {"ns": _REPLAY_NAMESPACE, "key": _replay_key(trigger.trigger_id, body_sha256)},
        )
    since = now - timedelta(seconds=trigger.replay_window_seconds)
    found = session.execute(
        _STATEMENTS["replayed"],
        {"trigger_id": trigger.trigger_id, "body_sha256": body_sha256, "since": since},
    ).scalar_one_or_none()
    return cast(uuid.UUID | None, found)


def record_event(
    session: Session | Connection,
    clock: Clock,
    trigger: TriggerSnapshot,
    delivery_id: str | None,
    payload: PreparedPayload,
    *,
    event_type: str | None = None,
    headers: Mapping[str, str] | None = None,
    body_sha256: str | None = None,
) -> RecordedEvent:
    """Insert a ``pending`` event, or return the original one for a repeated delivery id or,
    with ``body_sha256`` (:func:`replay_digest`), for the same body within the trigger's
    replay window.

    ``headers`` is stored as given (pass :func:`stored_headers`' result: this function does
    not filter); None stores SQL NULL. ``event_type`` is cut to the column's length.

    Race-free under concurrent duplicates: ``INSERT ... ON CONFLICT DO NOTHING`` waits for a
    concurrent insert of the same key to commit, then the SELECT sees the winner's row; the
    replay window's look-up is serialised per body (:func:`_replayed`).
    """
    now = clock.now()
    if body_sha256 is not None:
        original = _replayed(session, trigger, body_sha256, now)
        if original is not None:
            return RecordedEvent(original, duplicate=True)
    values = {
        "id": new_id(),
        "automation_id": trigger.automation_id,
        "trigger_id": trigger.trigger_id,
        "received_at": now,
        "delivery_id": delivery_id,
        "event_type": event_type[:MAX_EVENT_TYPE_LENGTH] if event_type else None,
        "headers": dict(headers) if headers is not None else None,
        "body_sha256": body_sha256,
        "payload": _json_value(payload.column_value),
        "pending_payload": _json_value(payload.pending) if payload.truncated else None,
        "status": EventStatus.PENDING,
        "occurrences": 1,
        "publish_attempts": 0,
    }
    if delivery_id is None:
        session.execute(_STATEMENTS["plain"], values)
        return RecordedEvent(values["id"], duplicate=False)
    for _ in range(3):
        inserted = _insert_ignoring_duplicates(session, values)
        if inserted is not None:
            return RecordedEvent(inserted, duplicate=False)
        existing = session.execute(
            _STATEMENTS["existing"],
            {"trigger_id": trigger.trigger_id, "delivery_id": delivery_id},
        ).scalar_one_or_none()
        if existing is not None:
            return RecordedEvent(existing, duplicate=True)
        # the original was deleted (retention purge) between the two statements: try again
    raise RuntimeError("could not record the delivery: its original row keeps disappearing")


def _dialect_name(db: Session | Connection) -> str:
    return db.dialect.name if isinstance(db, Connection) else db.get_bind().dialect.name


def _advisory_key(trigger_id: uuid.UUID) -> int:
    return int.from_bytes(trigger_id.bytes[:4], "big", signed=True)


def record_bad_signature(
    session: Session | Connection,
    clock: Clock,
    trigger: TriggerSnapshot,
    reason: str,
    details: Mapping[str, Any],
) -> uuid.UUID:
    """Record a failed signature check as an ``error`` event, folding a flood.

    At most one row per trigger and ``reason`` (a :class:`~shared.triggers.signatures.Verdict`
    value, stored as ``payload._signature_failed``) per :data:`BAD_SIGNATURE_WINDOW`: later
    failures for the same reason in the window increment that row's ``occurrences``, a
    different reason gets its own row. ``details`` is small metadata about the rejected
    request (never its body nor a signature). On PostgreSQL a transaction-level advisory lock
    makes concurrent failures fold into one row too. The row carries no delivery id, so a
    correctly signed retry of the same delivery is still accepted.
    """
    now = clock.now()
    if _dialect_name(session) == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:ns, :key)"),
            {"ns": _ADVISORY_NAMESPACE, "key": _advisory_key(trigger.trigger_id)},
        )
    recent = session.execute(
        select(_events.c.id)
        .where(
            _events.c.trigger_id == trigger.trigger_id,
            _events.c.status == EventStatus.ERROR,
            _events.c.error == BAD_SIGNATURE_ERROR,
            _events.c.received_at > now - BAD_SIGNATURE_WINDOW,
            _events.c.received_at <= now,
            _events.c.payload[_REASON_KEY].as_string() == reason,
        )
        .order_by(_events.c.received_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if recent is not None:
        session.execute(
            update(_events)
            .where(_events.c.id == recent)
            .values(occurrences=_events.c.occurrences + 1)
        )
        return recent  # type: ignore[no-any-return]
    event_id = new_id()
    session.execute(
        insert(_events).values(
            id=event_id,
            automation_id=trigger.automation_id,
            trigger_id=trigger.trigger_id,
            received_at=now,
            delivery_id=None,
            payload={**details, _REASON_KEY: reason},
            status=EventStatus.ERROR,
            error=BAD_SIGNATURE_ERROR,
            occurrences=1,
            publish_attempts=0,
            processed_at=now,
        )
    )
    return event_id


def count_events(session: Session | Connection) -> int:
    """Number of event rows (for tests and the benchmark's sanity check)."""
    return int(session.execute(select(func.count()).select_from(_events)).scalar_one())
