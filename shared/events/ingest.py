"""Durable recording of webhook deliveries (SPEC 4.2).

Plain functions over a session (an ORM Session or a Core Connection; the gateway uses the
latter on its hot path) and a clock; the caller owns the transaction and commits.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import JSON, Table, bindparam, func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shared.events.payload import PreparedPayload
from shared.infra.clock import Clock
from shared.infra.db.base import new_id
from shared.models import AutomationEvent, EventStatus
from shared.triggers.lookup import TriggerSnapshot

__all__ = [
    "BAD_SIGNATURE_ERROR",
    "BAD_SIGNATURE_WINDOW",
    "DELIVERY_ID_HEADERS",
    "MAX_DELIVERY_ID_LENGTH",
    "RecordedEvent",
    "count_events",
    "delivery_id_from",
    "record_bad_signature",
    "record_event",
]

#: sender delivery-id headers, in order of preference
DELIVERY_ID_HEADERS = ("X-GitHub-Delivery", "webhook-id", "Idempotency-Key")
MAX_DELIVERY_ID_LENGTH = 200
BAD_SIGNATURE_ERROR = "signature verification failed"
#: at most one bad-signature row per trigger per window; more failures bump its counter
BAD_SIGNATURE_WINDOW = timedelta(minutes=1)
#: namespace of the two-int advisory lock that serialises bad-signature bookkeeping
_ADVISORY_NAMESPACE = 0x1A6E57

_events = cast(Table, AutomationEvent.__table__)


@dataclass(frozen=True)
class RecordedEvent:
    event_id: uuid.UUID
    #: True when the delivery id was seen before; ``event_id`` is then the original one
    duplicate: bool


def delivery_id_from(headers: Mapping[str, str]) -> str | None:
    """The sender's delivery id, or None (no id means no deduplication).

    Ids longer than the column allows are replaced by a digest, so two long ids that share
    a prefix never collide.
    """
    lowered = {str(name).lower(): value for name, value in headers.items()}
    for name in DELIVERY_ID_HEADERS:
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


def _json_value(value: Any) -> Any:
    # A JSON ``null`` body must be stored as JSON null, not SQL NULL.
    return JSON.NULL if value is None else value


_INSERT_COLUMNS = (
    "id",
    "automation_id",
    "trigger_id",
    "received_at",
    "delivery_id",
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
    params = [bindparam(name, type_=_events.c[name].type) for name in _INSERT_COLUMNS]
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
    }


_STATEMENTS = _build_statements()


def _insert_ignoring_duplicates(session: Session | Connection, values: dict[str, Any]) -> Any:
    return session.execute(_STATEMENTS["dedup"], values).scalar_one_or_none()


def record_event(
    session: Session | Connection,
    clock: Clock,
    trigger: TriggerSnapshot,
    delivery_id: str | None,
    payload: PreparedPayload,
) -> RecordedEvent:
    """Insert a ``pending`` event, or return the original one for a repeated delivery id.

    Race-free under concurrent duplicates: ``INSERT ... ON CONFLICT DO NOTHING`` waits for a
    concurrent insert of the same key to commit, then the SELECT sees the winner's row.
    """
    values = {
        "id": new_id(),
        "automation_id": trigger.automation_id,
        "trigger_id": trigger.trigger_id,
        "received_at": clock.now(),
        "delivery_id": delivery_id,
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
    details: Mapping[str, Any],
) -> uuid.UUID:
    """Record a failed signature check as an ``error`` event, folding a flood.

    At most one row per trigger per :data:`BAD_SIGNATURE_WINDOW`: later failures in the
    window increment that row's ``occurrences``. ``details`` is small metadata about the
    rejected request (never its body). On PostgreSQL a transaction-level advisory lock makes
    concurrent failures fold into one row too. The row carries no delivery id, so a
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
            payload=dict(details),
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
