"""SPEC 5: turn one ``pending`` event into exactly one outcome.

:func:`process_event` runs inside the caller's transaction and never commits. The caller (the
Celery task) commits, or on an exception rolls back and calls :func:`mark_failed` in a fresh
transaction, so an event never stays ``pending`` once a worker finished with it.

Idempotency comes from the row lock: the event row is locked first and anything that is no
longer ``pending`` is left alone, so redelivery, retries and racing workers apply it once.

Decisions where the SPEC leaves a choice:

* **Automation disabled** after the event was accepted: the event is *marked*, not deleted
  (the event log is append-only and is how owners see why nothing happened): status
  ``filtered``, ``filter_matched`` NULL (the filter was not evaluated), error
  ``"dropped: automation is disabled"``. Nothing else is touched.
* **Trigger deleted** before the event was processed (``trigger_id`` set NULL): its filter and
  label paths are gone, so the event cannot be evaluated as configured; it is dropped the same
  way with error ``"dropped: trigger was deleted"`` rather than acted on with an empty filter.
* **Cron events** (trigger type ``cron``) skip the filter; ``filter_matched`` stays NULL.
* ``rate_limited`` events keep ``matched_chat_id`` when a chat matched (the chat they would
  have continued), which the event log can show.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

from sqlalchemy import null, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shared.chats.matching import find_matching_chat
from shared.events import statements as sql
from shared.events.message import chat_title, event_message
from shared.events.options import PipelineOptions
from shared.infra.clock import Clock
from shared.models.enums import (
    AutomationStatus,
    ChatStatus,
    ClientType,
    EventStatus,
    MessageRole,
    TriggerType,
)
from shared.models.tables import events
from shared.triggers.filters import filter_matches, resolve_labels

DROPPED_DISABLED = "dropped: automation is disabled"
DROPPED_TRIGGER_DELETED = "dropped: trigger was deleted"
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Outcome:
    """What :func:`process_event` did.

    ``applied`` is False when the event was missing (purged, or its automation deleted) or no
    longer ``pending`` (already processed): nothing was written then, and ``status`` is the
    status found (``None`` when missing).
    """

    event_id: uuid.UUID
    status: EventStatus | None
    applied: bool
    chat_id: uuid.UUID | None = None
    error: str | None = None
    filter_matched: bool | None = None
    resolved_labels: dict[str, str] | None = None


def _on_sqlite(conn: sql.Executor) -> TypeGuard[Connection]:
    """SQLite runs plain statements one by one (a :class:`PreparedTransaction` is PostgreSQL
    only)."""
    return isinstance(conn, Connection) and conn.dialect.name != "postgresql"


def _load(conn: sql.Executor, event_id: uuid.UUID, options: PipelineOptions) -> Any:
    """The event (row-locked) with its automation and trigger, in one round trip.

    On PostgreSQL the same statement takes the per-automation advisory lock (after the row
    lock) and, unless configured otherwise, switches this transaction to asynchronous commit
    (see :class:`PipelineOptions`).
    """
    if _on_sqlite(conn):
        return conn.execute(sql.LOAD_SQLITE, {"event_id": event_id}).first()
    stmt = sql.LOAD_PG_SYNC if options.synchronous_commit else sql.LOAD_PG_ASYNC
    return sql.execute(conn, stmt, {"event_id": event_id}, options.prepared_statements).first()


def _context(
    conn: sql.Executor,
    ev: Any,
    labels: dict[str, str],
    since: datetime | None,
    prepared: bool,
) -> tuple[int, int, uuid.UUID | None]:
    """(created + continued, created, matched chat id) under the automation lock.

    ``since`` None skips the counts (preview). Must be its own statement, issued after the
    lock was granted: under READ COMMITTED a statement's snapshot is taken when it starts,
    so only a statement that starts after the lock sees the previous holder's commit.
    On PostgreSQL counts and chat match are one round trip.
    """
    params = {
        "automation_id": ev.automation_id,
        "since": since,
        "owner_id": ev.owner_id,
        "organization_id": ev.organization_id,
        "labels": labels,
    }
    if _on_sqlite(conn):
        messages = creates = 0
        if since is not None:
            row = conn.execute(sql.COUNTS_SQLITE, params).one()
            messages, creates = int(row[0]), int(row[1])
        matched = find_matching_chat(conn, ev.owner_id, ev.organization_id, labels)
        return messages, creates, matched
    if since is None:
        if not labels:
            return 0, 0, None
        return 0, 0, sql.execute(conn, sql.CONTEXT_PG_MATCH, params, prepared).scalar()
    if not labels:
        row = sql.execute(conn, sql.CONTEXT_PG_COUNTS, params, prepared).one()
        return int(row[0]), int(row[1]), None
    row = sql.execute(conn, sql.CONTEXT_PG_COUNTS_MATCH, params, prepared).one()
    return int(row[0]), int(row[1]), row[2]


def _finish(
    conn: sql.Executor,
    clock: Clock,
    options: PipelineOptions,
    event_id: uuid.UUID,
    status: EventStatus,
    *,
    chat: dict[str, Any] | None = None,
    touch: dict[str, Any] | None = None,
    message: dict[str, Any] | None = None,
    filter_matched: bool | None = None,
    labels: dict[str, str] | None = None,
    matched_chat_id: uuid.UUID | None = None,
    created_chat_id: uuid.UUID | None = None,
    error: str | None = None,
) -> Outcome:
    """Write the outcome: the new chat or the continued chat's update, the message, and the
    final event row. On PostgreSQL that is one statement (the chat writes are data-modifying
    CTEs of the event UPDATE); SQLite runs them one by one.
    """
    params: dict[str, Any] = {
        "event_id": event_id,
        "ev_status": status,
        "ev_filter_matched": filter_matched,
        "ev_resolved_labels": labels,
        "ev_matched_chat_id": matched_chat_id,
        "ev_created_chat_id": created_chat_id,
        "ev_error": error,
        "ev_processed_at": clock.now(),
    }
    for part in (chat, touch, message):
        if part:
            params.update(part)
    if _on_sqlite(conn):
        # SQLite: the chat writes one by one, then the event
        if chat is not None:
            conn.execute(sql.INSERT_CHAT, params)
        elif touch is not None:
            conn.execute(sql.TOUCH_CHAT, params)
        if chat is not None or touch is not None:
            conn.execute(sql.INSERT_MESSAGE, params)
        stmt = sql.FINISH
    elif chat is not None:
        stmt = sql.FINISH_CREATE_PG
    elif touch is not None:
        stmt = sql.FINISH_CONTINUE_PG
    else:
        stmt = sql.FINISH
    sql.execute_last(conn, stmt, params, options.prepared_statements)
    return Outcome(
        event_id=event_id,
        status=status,
        applied=True,
        chat_id=created_chat_id or matched_chat_id,
        error=error,
        filter_matched=filter_matched,
        resolved_labels=labels,
    )


def process_event(
    session: Session | sql.Executor, clock: Clock, event_id: uuid.UUID, options: PipelineOptions
) -> Outcome:
    """Run SPEC 5 steps 1-8 for one event inside the caller's transaction (an ORM session's,
    a Core connection's, or on PostgreSQL the worker's prepared transaction)."""
    conn = session.connection() if isinstance(session, Session) else session
    ev = _load(conn, event_id, options)
    if ev is None:
        return Outcome(event_id=event_id, status=None, applied=False)
    if ev.status != EventStatus.PENDING:
        return Outcome(event_id=event_id, status=EventStatus(ev.status), applied=False)
    # From here on the per-automation lock is held (taken by _load on PostgreSQL; SQLite's
    # single write lock on SQLite): counts and chat lookups see every event of this
    # automation that committed before us, and nobody else acts on it meanwhile.

    # 1. status lifecycle
    if ev.automation_status == AutomationStatus.DISABLED:
        return _finish(conn, clock, options, event_id, EventStatus.FILTERED, error=DROPPED_DISABLED)
    if ev.trigger_type is None:
        return _finish(
            conn, clock, options, event_id, EventStatus.FILTERED, error=DROPPED_TRIGGER_DELETED
        )

    document = ev.pending_payload if ev.pending_payload is not None else ev.payload

    # 2. filter (webhook triggers only)
    filter_matched: bool | None = None
    if ev.trigger_type == TriggerType.WEBHOOK:
        filter_matched = filter_matches(ev.filter or {}, document)
        if not filter_matched:
            return _finish(
                conn, clock, options, event_id, EventStatus.FILTERED, filter_matched=False
            )

    # 3. labels
    labels = resolve_labels(ev.label_paths or {}, document)
    common: dict[str, Any] = {"filter_matched": filter_matched, "labels": labels}

    # 4. chat match (+ the rate-limit counts of step 6 in the same round trip)
    preview = ev.automation_status == AutomationStatus.PREVIEW
    now = clock.now()
    messages, creates, matched = _context(
        conn,
        ev,
        labels,
        None if preview else now - options.rate_window,
        options.prepared_statements,
    )

    # 5. preview: record only
    if preview:
        return _finish(
            conn, clock, options, event_id, EventStatus.PREVIEW, matched_chat_id=matched, **common
        )

    # 6. rate limits
    if messages >= ev.max_messages_per_hour:
        error = f"message rate limit exceeded: {messages}/{ev.max_messages_per_hour} per hour"
        return _finish(
            conn,
            clock,
            options,
            event_id,
            EventStatus.RATE_LIMITED,
            matched_chat_id=matched,
            error=error,
            **common,
        )
    if matched is None and creates >= ev.max_chat_creates_per_hour:
        error = (
            f"chat creation rate limit exceeded: {creates}/{ev.max_chat_creates_per_hour} per hour"
        )
        return _finish(
            conn, clock, options, event_id, EventStatus.RATE_LIMITED, error=error, **common
        )

    # 7. message, then create or continue
    content = event_message(
        instructions=ev.instructions or "",
        trigger_type=str(TriggerType(ev.trigger_type)),
        received_at=ev.received_at,
        labels=labels,
        payload=document,
        max_payload_bytes=options.message_payload_max_bytes,
    )
    chat_id = matched or uuid.uuid4()
    message = _message(chat_id, content, event_id, now)
    if matched is not None:
        return _finish(
            conn,
            clock,
            options,
            event_id,
            EventStatus.CONTINUED,
            touch={
                "touch_id": matched,
                "touch_status": ChatStatus.PENDING,
                "touch_updated_at": now,
            },
            message=message,
            matched_chat_id=matched,
            **common,
        )
    chat = {
        "chat_id": chat_id,
        "chat_owner_id": ev.owner_id,
        "chat_organization_id": ev.organization_id,
        "chat_title": chat_title(ev.name, ev.received_at),
        "chat_status": ChatStatus.PENDING,
        "chat_labels": labels,
        "chat_automation_id": ev.automation_id,
        "chat_model_config_id": ev.model_config_id,
        "chat_archived": False,
        "chat_pin_order": 0,
        "chat_client_type": ClientType.API,
        "chat_created_at": now,
        "chat_updated_at": now,
    }
    return _finish(
        conn,
        clock,
        options,
        event_id,
        EventStatus.CREATED,
        chat=chat,
        message=message,
        created_chat_id=chat_id,
        **common,
    )


def _message(
    chat_id: uuid.UUID, content: str, event_id: uuid.UUID, now: datetime
) -> dict[str, Any]:
    """Parameters of the user message an event adds (``INSERT_MESSAGE``)."""
    return {
        "msg_id": uuid.uuid4(),
        "msg_chat_id": chat_id,
        "msg_role": MessageRole.USER,
        "msg_content": content,
        "msg_created_at": now,
        "msg_deleted": False,
        "msg_event_id": event_id,
    }


def mark_failed(
    session: Session | Connection, clock: Clock, event_id: uuid.UUID, error: str
) -> bool:
    """SPEC 5 step 8: record ``error`` on an event that is still ``pending``.

    Called in a fresh transaction after :func:`process_event` raised and its transaction was
    rolled back. Returns False when the event is gone or was processed meanwhile (a racing
    worker succeeded): an outcome is never overwritten.
    """
    result = session.execute(
        update(events)
        .where(events.c.id == event_id, events.c.status == EventStatus.PENDING)
        .values(
            status=EventStatus.ERROR,
            error=error[:MAX_ERROR_CHARS],
            processed_at=clock.now(),
            pending_payload=null(),
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def note_transient_error(session: Session, event_id: uuid.UUID, error: str) -> None:
    """Remember the last transient failure on a still-``pending`` event, so that the sweeper
    can quote it when it finally parks the event."""
    session.execute(
        update(events)
        .where(events.c.id == event_id, events.c.status == EventStatus.PENDING)
        .values(error=error[:MAX_ERROR_CHARS])
    )


def describe_error(exc: BaseException) -> str:
    """A one-line, user-facing description of an unexpected failure."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
