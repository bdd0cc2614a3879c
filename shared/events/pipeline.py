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
* **Event types** (SPEC 4.2.1) are checked before the filter: an event of a type the
  webhook trigger does not list is ``filtered`` with ``filter_matched`` false and an error
  saying which type was refused, so the event log explains it.
* The **filter and labels** share one CPU budget (``AUTOMATIONS_FILTER_BUDGET_MS`` of thread time,
  :class:`~shared.triggers.filters.CpuBudget`): an event whose evaluation runs past it, or
  whose stored ``$regex`` RE2 refuses, becomes ``error`` with the reason, and the worker moves
  on; nothing else is written.
* A **message template** that fails to render makes the event ``error`` with the reason
  (SPEC 5 step 7); nothing else is written.
* ``rate_limited`` events keep ``matched_chat_id`` when a chat matched (the chat they would
  have continued), which the event log can show.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, null, update

from shared.events.message import chat_title, event_message
from shared.events.options import PipelineOptions
from shared.events.store import Decision, EventStore, NewChat, NewMessage
from shared.events.templates import TemplateRenderError
from shared.infra.clock import Clock
from shared.models.enums import AutomationStatus, EventStatus, TriggerType
from shared.models.tables import events
from shared.triggers.filters import (
    CpuBudget,
    FilterEvaluationError,
    event_type_accepted,
    filter_matches,
    resolve_labels,
)

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


def _apply(store: EventStore, decision: Decision) -> Outcome:
    store.finish(decision)
    return Outcome(
        event_id=decision.event_id,
        status=decision.status,
        applied=True,
        chat_id=decision.created_chat_id or decision.matched_chat_id,
        error=decision.error,
        filter_matched=decision.filter_matched,
        resolved_labels=decision.labels,
    )


def process_event(
    store: EventStore, clock: Clock, event_id: uuid.UUID, options: PipelineOptions
) -> Outcome:
    """Run SPEC 5 steps 1-7 for one event inside the store's transaction."""
    ev = store.load(event_id)
    if ev is None:
        return Outcome(event_id=event_id, status=None, applied=False)
    if ev.status != EventStatus.PENDING:
        return Outcome(event_id=event_id, status=EventStatus(ev.status), applied=False)
    # From here on the per-automation lock is held: counts and chat lookups see every event
    # of this automation that committed before us, and nobody else acts on it meanwhile.
    now = clock.now()

    def decide(status: EventStatus, **fields: Any) -> Outcome:
        return _apply(store, Decision(event_id, status, now, **fields))

    # 1. status lifecycle
    if ev.automation_status == AutomationStatus.DISABLED:
        return decide(EventStatus.FILTERED, error=DROPPED_DISABLED)
    if ev.trigger_type is None:
        return decide(EventStatus.FILTERED, error=DROPPED_TRIGGER_DELETED)
    document = ev.pending_payload if ev.pending_payload is not None else ev.payload

    # 2. event type and filter (webhook triggers only), 3. labels: one CPU budget for both
    filter_matched: bool | None = None
    if ev.trigger_type == TriggerType.WEBHOOK and not event_type_accepted(
        ev.event_types, ev.event_type
    ):
        return decide(
            EventStatus.FILTERED, filter_matched=False, error=_refused_type(ev.event_type)
        )
    labels: dict[str, str] = {}
    budget = CpuBudget(options.filter_budget_ms)
    try:
        if ev.trigger_type == TriggerType.WEBHOOK:
            filter_matched = filter_matches(ev.filter or {}, document, budget)
        if filter_matched is not False:
            labels = resolve_labels(ev.label_paths or {}, document, budget)
    except FilterEvaluationError as exc:
        error = str(exc)[:MAX_ERROR_CHARS]
        return decide(EventStatus.ERROR, filter_matched=filter_matched, error=error)
    if filter_matched is False:
        return decide(EventStatus.FILTERED, filter_matched=False)
    common: dict[str, Any] = {"filter_matched": filter_matched, "labels": labels}

    # 4. chat match, with the rate-limit counts of step 6 (none in preview)
    preview = ev.automation_status == AutomationStatus.PREVIEW
    context = store.context(ev, labels, None if preview else now - options.rate_window)
    matched = context.matched_chat_id

    # 5. preview: record only
    if preview:
        return decide(EventStatus.PREVIEW, matched_chat_id=matched, **common)

    # 6. rate limits
    if context.messages >= ev.max_messages_per_hour:
        error = (
            f"message rate limit exceeded: {context.messages}/{ev.max_messages_per_hour} per hour"
        )
        return decide(EventStatus.RATE_LIMITED, matched_chat_id=matched, error=error, **common)
    if matched is None and context.creates >= ev.max_chat_creates_per_hour:
        error = (
            "chat creation rate limit exceeded: "
            f"{context.creates}/{ev.max_chat_creates_per_hour} per hour"
        )
        return decide(EventStatus.RATE_LIMITED, error=error, **common)

    # 7. message, then continue or create
    try:
        content = event_message(
            instructions=ev.instructions or "",
            trigger_type=str(TriggerType(ev.trigger_type)),
            event_type=ev.event_type,
            received_at=ev.received_at,
            labels=labels,
            payload=document,
            headers=ev.headers,
            template=ev.message_template,
            max_payload_bytes=options.message_payload_max_bytes,
        )
    except TemplateRenderError as exc:
        error = f"message_template failed to render: {exc}"[:MAX_ERROR_CHARS]
        return decide(EventStatus.ERROR, matched_chat_id=matched, error=error, **common)
    if matched is not None:
        message = NewMessage(uuid.uuid4(), matched, content)
        return decide(EventStatus.CONTINUED, matched_chat_id=matched, message=message, **common)
    chat = NewChat(
        id=uuid.uuid4(),
        owner_id=ev.owner_id,
        organization_id=ev.organization_id,
        automation_id=ev.automation_id,
        model_config_id=ev.model_config_id,
        title=chat_title(ev.name, ev.received_at),
        labels=labels,
    )
    message = NewMessage(uuid.uuid4(), chat.id, content)
    return decide(EventStatus.CREATED, new_chat=chat, message=message, **common)


def _refused_type(event_type: str | None) -> str:
    if event_type is None:
        return "event type unknown: the trigger accepts only the event_types it lists"
    return f"event type {event_type[:200]!r} is not among the trigger's event_types"


def mark_failed(conn: Connection, clock: Clock, event_id: uuid.UUID, error: str) -> bool:
    """SPEC 5 step 8: record ``error`` on an event that is still ``pending``.

    Called in a fresh transaction after :func:`process_event` raised and its transaction was
    rolled back. Returns False when the event is gone or was processed meanwhile (a racing
    worker succeeded): an outcome is never overwritten.
    """
    result = conn.execute(
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


def note_transient_error(conn: Connection, event_id: uuid.UUID, error: str) -> None:
    """Remember the last transient failure on a still-``pending`` event, so that the sweeper
    can quote it when it finally parks the event."""
    conn.execute(
        update(events)
        .where(events.c.id == event_id, events.c.status == EventStatus.PENDING)
        .values(error=error[:MAX_ERROR_CHARS])
    )
