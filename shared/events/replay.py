"""Replaying events (SPEC 5, Replay): a new ``pending`` event with the stored payload,
headers and event type, ``replay_of`` the original, run through the whole pipeline as the
automation is configured now (filter, limits and chat scope of today, not of then).

The new events are inserted in the caller's unit of work and published after it commits
(``UnitOfWork.enqueue``): a replay that rolls back sends nothing, and a publish that fails
leaves the events ``pending`` for the sweeper, like webhook ingress.

Not replayable:

* an event whose stored payload was truncated (SPEC 4.4 keeps only a marker): there is
  nothing faithful to replay (409 ``payload_truncated``);
* an event whose trigger was deleted: the pipeline would only drop it (409
  ``trigger_deleted``).

A bulk replay takes the event list's filters, replays the oldest matching events first, at
most :data:`MAX_BULK` per call, each once per call, and skips what is not replayable
(counted in the answer). With ``dry_run`` it only counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, insert, not_, select
from sqlalchemy.orm import Session

from shared.accounts.authz import Principal
from shared.automations.service import get_automation
from shared.errors import Conflict, Invalid, NotFound
from shared.infra.broker import event_message
from shared.infra.clock import Clock
from shared.infra.db.base import new_id
from shared.infra.db.uow import UnitOfWork
from shared.models import EventStatus
from shared.models.tables import events

__all__ = ["MAX_BULK", "BulkReplay", "EventFilters", "replay_event", "replay_events"]

#: most events one bulk replay call replays
MAX_BULK = 10_000
#: rows read and inserted per statement in a bulk replay (payloads are up to 64 KiB each)
_CHUNK = 200
_COPIED = ("automation_id", "trigger_id", "payload", "headers", "event_type")


@dataclass(frozen=True)
class EventFilters:
    """The event list's filters (``since`` inclusive, ``until`` exclusive)."""

    statuses: tuple[EventStatus, ...] = ()
    trigger_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class BulkReplay:
    #: replayable events matching the filters (all of them, also beyond ``MAX_BULK``)
    matched: int
    #: matching events that cannot be replayed (truncated payload, trigger deleted)
    skipped: int
    #: the new events, in the order of their originals (empty for a dry run)
    event_ids: list[uuid.UUID] = field(default_factory=list)

    @property
    def replayed(self) -> int:
        return len(self.event_ids)


def _is_truncated(payload: Any) -> bool:
    return (
        isinstance(payload, dict)
        and payload.get("_truncated") is True
        and "_original_size" in payload
    )


def _new_row(original: Any, clock: Clock) -> dict[str, Any]:
    row = {name: getattr(original, name) for name in _COPIED}
    row.update(
        id=new_id(),
        replay_of=original.id,
        received_at=clock.now(),
        delivery_id=None,
        pending_payload=None,
        status=EventStatus.PENDING,
        occurrences=1,
        publish_attempts=0,
    )
    return row


def _not_replayable(row: Any) -> Conflict | None:
    if _is_truncated(row.payload):
        return Conflict(
            "the stored payload was truncated (over the stored size limit): "
            "there is nothing faithful to replay",
            code="payload_truncated",
        )
    if row.trigger_id is None:
        return Conflict(
            "the event's trigger was deleted: a replay would only be dropped",
            code="trigger_deleted",
        )
    return None


def replay_event(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    automation_id: uuid.UUID,
    event_id: uuid.UUID,
) -> uuid.UUID:
    """Replay one event of the automation; the new event's id. 404 for an event the caller
    may not see (another organization's included), 409 when it is not replayable."""
    session = uow.session
    automation = get_automation(session, principal, automation_id, write=True)
    original = session.execute(
        select(events).where(events.c.id == event_id, events.c.automation_id == automation.id)
    ).first()
    if original is None:
        raise NotFound(f"event {event_id} not found", field="event_id")
    problem = _not_replayable(original)
    if problem is not None:
        raise problem
    row = _new_row(original, clock)
    session.execute(insert(events), [row])
    uow.enqueue(*event_message(row["id"]))
    return row["id"]  # type: ignore[no-any-return]


def _conditions(automation_id: uuid.UUID, filters: EventFilters) -> list[ColumnElement[bool]]:
    for name in ("since", "until"):
        value = getattr(filters, name)
        if value is not None and value.tzinfo is None:
            raise Invalid(f"{name}: needs a timezone (e.g. 2026-01-15T12:00:00Z)", field=name)
    conditions: list[ColumnElement[bool]] = [events.c.automation_id == automation_id]
    if filters.statuses:
        conditions.append(events.c.status.in_(filters.statuses))
    if filters.trigger_id is not None:
        conditions.append(events.c.trigger_id == filters.trigger_id)
    if filters.since is not None:
        conditions.append(events.c.received_at >= filters.since)
    if filters.until is not None:
        conditions.append(events.c.received_at < filters.until)
    return conditions


def _replayable(session: Session) -> ColumnElement[bool]:
    """SQL: the trigger still exists and the payload is not the truncation marker (never
    NULL, so that its negation counts the rest)."""
    payload = events.c.payload
    if session.get_bind().dialect.name == "postgresql":
        truncated = and_(
            func.jsonb_typeof(payload) == "object",
            payload.op("->>")("_truncated") == "true",
            payload.op("?")("_original_size"),
        )
    else:
        truncated = and_(
            func.json_type(payload) == "object",
            func.json_type(payload, "$._truncated") == "true",
            func.json_type(payload, "$._original_size").is_not(None),
        )
    return and_(events.c.trigger_id.is_not(None), not_(func.coalesce(truncated, false())))


def replay_events(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    automation_id: uuid.UUID,
    filters: EventFilters,
    *,
    dry_run: bool = False,
) -> BulkReplay:
    """Replay the automation's events matching ``filters``, oldest first, at most
    :data:`MAX_BULK`; with ``dry_run`` only count them."""
    session = uow.session
    automation = get_automation(session, principal, automation_id, write=not dry_run)
    conditions = _conditions(automation.id, filters)
    replayable = _replayable(session)
    counts = session.execute(
        select(
            func.count().filter(replayable),
            func.count().filter(not_(replayable)),
        ).where(*conditions)
    ).one()
    result = BulkReplay(matched=int(counts[0]), skipped=int(counts[1]))
    if dry_run or result.matched == 0:
        return result
    ids: Sequence[uuid.UUID] = session.scalars(
        select(events.c.id)
        .where(*conditions, replayable)
        .order_by(events.c.received_at, events.c.id)
        .limit(MAX_BULK)
    ).all()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        originals = {
            row.id: row
            for row in session.execute(
                select(events.c.id, *(events.c[name] for name in _COPIED)).where(
                    events.c.id.in_(chunk)
                )
            )
        }
        rows = [_new_row(originals[i], clock) for i in chunk]
        session.execute(insert(events), rows)
        for row in rows:
            uow.enqueue(*event_message(row["id"]))
            result.event_ids.append(row["id"])
    return result
