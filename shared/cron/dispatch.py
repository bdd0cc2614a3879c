"""Cron dispatch: turn due cron triggers into ``pending`` events, exactly once per slot.

One *pass* (:func:`dispatch_due`, run by beat's dispatch tick) repeats until no due trigger is
left, one transaction per batch of up to ``batch_size`` triggers:

1. claim the due triggers of ``active``/``preview`` automations: ``next_fire_at <= now``,
   oldest first, served by ``ix_automation_triggers_next_fire_at``; on PostgreSQL
   ``FOR UPDATE OF automation_triggers SKIP LOCKED`` so concurrent passes (two beats, two
   ticks) split the work instead of waiting for each other; on SQLite the transaction holds the
   single-writer lock from its first statement (``BEGIN IMMEDIATE``), which serialises passes;
2. for each, coalesce every missed slot into one fire for the latest slot <= now
   (:func:`shared.cron.schedule.due_fire`) and build the event: ``pending``,
   ``received_at = now``, ``delivery_id = "cron:<scheduled_at RFC 3339>"`` and the payload
   ``{"trigger": "cron", "schedule", "scheduled_at", "fired_at", "skipped"}``;
3. insert all events of the batch in one multi-row ``INSERT ... ON CONFLICT (trigger_id,
   delivery_id) DO NOTHING RETURNING id``; the unique constraint makes (trigger, scheduled time)
   unique, so even a dispatcher that somehow claimed a slot already fired (clock skew between
   hosts, a stale read) cannot double-fire: its row is simply not inserted and not published;
4. advance every claimed trigger's ``next_fire_at`` to its first slot strictly after now and
   set ``last_triggered_at = now`` in one statement;
5. enqueue ``process_event`` for the inserted events on the batch's unit of work, which
   publishes them in one batch after its commit. A failed publish is logged and left to the
   pending-event sweeper.

Finally, due triggers of ``disabled`` automations are unscheduled (``next_fire_at = NULL``) so a
re-enabled automation never replays its disabled period (see :mod:`shared.cron.scheduling`) and
the due query never walks over them again.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, bindparam, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shared.cron.schedule import Schedule, ScheduleError, due_fire, parse_schedule, to_rfc3339
from shared.cron.scheduling import FIRING_STATUSES
from shared.infra.broker import event_message
from shared.infra.clock import Clock
from shared.infra.db.base import new_id
from shared.infra.db.uow import Units
from shared.models import (
    Automation,
    AutomationEvent,
    AutomationStatus,
    AutomationTrigger,
    EventStatus,
    TriggerType,
)

__all__ = ["Units", "cron_delivery_id", "dispatch_due", "due_query"]

log = logging.getLogger(__name__)

#: Per-pass memo: parsed schedules by text, and due computations by (text, next_fire_at, now):
#: triggers sharing a schedule and a slot (everything "at midnight") share the croniter work.
_Memo = dict[Any, Any]

_EVENTS: Table = AutomationEvent.__table__  # type: ignore[assignment]
_TRIGGERS: Table = AutomationTrigger.__table__  # type: ignore[assignment]

# PostgreSQL: advance a whole batch in one statement (arrays of ids and next times).
_PG_ADVANCE = text(
    "UPDATE automation_triggers AS t SET next_fire_at = v.next_fire_at, "
    "last_triggered_at = :fired_at "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:nexts AS timestamptz[])) AS v(id, next_fire_at) "
    "WHERE t.id = v.id"
)
# SQLite: one executemany (no round trips to speak of in-process).
_SQLITE_ADVANCE = (
    update(_TRIGGERS)
    .where(_TRIGGERS.c.id == bindparam("b_id"))
    .values(next_fire_at=bindparam("b_next"), last_triggered_at=bindparam("b_fired_at"))
)


def cron_delivery_id(scheduled_at: datetime) -> str:
    """The ``delivery_id`` of a cron fire: unique per (trigger, scheduled time)."""
    return "cron:" + to_rfc3339(scheduled_at)


def due_query(now: datetime, batch_size: int, *, postgres: bool) -> Select[Any]:
    """The claim query: due cron triggers of firing automations, oldest first."""
    query = (
        select(
            AutomationTrigger.id,
            AutomationTrigger.automation_id,
            AutomationTrigger.cron_schedule,
            AutomationTrigger.next_fire_at,
        )
        .join(Automation, Automation.id == AutomationTrigger.automation_id)
        .where(
            AutomationTrigger.next_fire_at <= now,
            AutomationTrigger.type == TriggerType.CRON,
            Automation.status.in_(sorted(FIRING_STATUSES)),
        )
        .order_by(AutomationTrigger.next_fire_at)
        .limit(batch_size)
    )
    if postgres:
        query = query.with_for_update(skip_locked=True, of=AutomationTrigger)
    return query


def dispatch_due(
    units: Units,
    clock: Clock,
    batch_size: int,
    *,
    max_batches: int | None = None,
) -> list[str]:
    """Fire every due cron trigger once; return the ids of the events inserted (committed).

    Each batch is one unit of work from ``units``; its events are published after its commit.
    ``max_batches`` bounds a pass (default: until a batch comes back short). ``clock`` is read
    once per batch.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    fired: list[str] = []
    schedules: _Memo = {}
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        with units() as uow:
            claimed, event_ids = _dispatch_batch(uow.session, clock.now(), batch_size, schedules)
            for event_id in event_ids:
                uow.enqueue(*event_message(event_id))
        fired.extend(event_ids)
        if claimed < batch_size:
            break
    with units() as uow:
        unscheduled = _unschedule_disabled(uow.session, clock.now(), batch_size)
    # INFO only when the tick did something: an idle tick (every few seconds) is DEBUG
    if fired or unscheduled:
        log.info(
            "cron dispatch: %d fire(s) in %d batch(es); %d trigger(s) of disabled automations "
            "unscheduled",
            len(fired),
            batches,
            unscheduled,
        )
    else:
        log.debug("cron dispatch: nothing due")
    return fired


@dataclass
class _Fire:
    trigger_id: uuid.UUID
    next_fire_at: datetime | None
    event: dict[str, Any] | None


def _dispatch_batch(
    session: Session,
    now: datetime,
    batch_size: int,
    schedules: _Memo,
) -> tuple[int, list[str]]:
    """Claim, fire and advance one batch; return (triggers claimed, event ids inserted)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    rows = session.execute(due_query(now, batch_size, postgres=postgres)).all()
    if not rows:
        return 0, []
    fires = [
        _fire(row.id, row.automation_id, row.cron_schedule or "", row.next_fire_at, now, schedules)
        for row in rows
    ]
    events = [f.event for f in fires if f.event is not None]
    inserted: list[str] = []
    if events:
        insert = postgresql.insert if postgres else sqlite.insert
        stmt = (
            insert(_EVENTS)
            .on_conflict_do_nothing(index_elements=["trigger_id", "delivery_id"])
            .returning(_EVENTS.c.id, _EVENTS.c.status)
        )
        result = session.connection().execute(stmt, events)
        inserted = [str(r.id) for r in result if EventStatus(r.status) == EventStatus.PENDING]
        conflicts = sum(1 for e in events if e["status"] == EventStatus.PENDING) - len(inserted)
        if conflicts:
            log.info("cron dispatch: %d fire(s) were already recorded; not re-fired", conflicts)
    if postgres:
        session.connection().execute(
            _PG_ADVANCE,
            {
                "ids": [str(f.trigger_id) for f in fires],
                "nexts": [f.next_fire_at for f in fires],
                "fired_at": now,
            },
        )
    else:
        session.connection().execute(
            _SQLITE_ADVANCE,
            [{"b_id": f.trigger_id, "b_next": f.next_fire_at, "b_fired_at": now} for f in fires],
        )
    return len(rows), inserted


def _fire(
    trigger_id: uuid.UUID,
    automation_id: uuid.UUID,
    schedule_text: str,
    next_fire_at: datetime,
    now: datetime,
    memo: _Memo,
) -> _Fire:
    parsed: Schedule | ScheduleError | None = memo.get(schedule_text)
    if parsed is None:
        try:
            parsed = parse_schedule(schedule_text, now=now)
        except ScheduleError as exc:
            parsed = exc
        memo[schedule_text] = parsed
    try:
        if isinstance(parsed, ScheduleError):
            raise parsed
        key = (schedule_text, next_fire_at, now)
        if key not in memo:
            memo[key] = due_fire(parsed, next_fire_at, now)
        due = memo[key]
    except ScheduleError as exc:
        # Not fireable (e.g. its zone left the tz database): unschedule it and say why in the
        # event log instead of retrying it every tick.
        log.warning("cron trigger %s unscheduled: %s", trigger_id, exc)
        return _Fire(
            trigger_id, None, _error_event(trigger_id, automation_id, schedule_text, now, exc)
        )
    if due is None:  # not due after all (cannot happen: the query asked for <= now)
        return _Fire(trigger_id, next_fire_at, None)
    scheduled_at, skipped, new_next = due
    payload = {
        "trigger": "cron",
        "schedule": schedule_text,
        "scheduled_at": to_rfc3339(scheduled_at),
        "fired_at": to_rfc3339(now),
        "skipped": skipped,
    }
    event = _event_row(trigger_id, automation_id, now, payload)
    event["delivery_id"] = cron_delivery_id(scheduled_at)
    return _Fire(trigger_id, new_next, event)


def _event_row(
    trigger_id: uuid.UUID, automation_id: uuid.UUID, now: datetime, payload: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "automation_id": automation_id,
        "trigger_id": trigger_id,
        "received_at": now,
        "delivery_id": None,
        "payload": payload,
        "status": EventStatus.PENDING,
        "error": None,
        "occurrences": 1,
        "publish_attempts": 0,
        "processed_at": None,
    }


def _error_event(
    trigger_id: uuid.UUID,
    automation_id: uuid.UUID,
    schedule_text: str,
    now: datetime,
    exc: ScheduleError,
) -> dict[str, Any]:
    row = _event_row(
        trigger_id,
        automation_id,
        now,
        {"trigger": "cron", "schedule": schedule_text, "fired_at": to_rfc3339(now)},
    )
    row.update(
        status=EventStatus.ERROR,
        error=f"cron trigger unscheduled: {exc}",
        processed_at=now,
    )
    return row


def _unschedule_disabled(session: Session, now: datetime, batch_size: int) -> int:
    """Clear ``next_fire_at`` of due triggers whose automation is disabled (one batch)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    due_disabled = (
        select(AutomationTrigger.id)
        .join(Automation, Automation.id == AutomationTrigger.automation_id)
        .where(
            AutomationTrigger.next_fire_at <= now,
            Automation.status == AutomationStatus.DISABLED,
        )
        .limit(batch_size)
    )
    if postgres:
        due_disabled = due_disabled.with_for_update(skip_locked=True, of=AutomationTrigger)
    result = session.connection().execute(
        update(_TRIGGERS)
        .where(_TRIGGERS.c.id.in_(due_disabled.scalar_subquery()))
        .values(next_fire_at=None)
    )
    return int(result.rowcount or 0)
