"""SPEC 8: the pending-event sweeper.

An event stays ``pending`` when its publish failed (broker down after the gateway committed)
or the worker that had it died (with Redis, an unacknowledged task only comes back after the
visibility timeout, an hour by default). The sweeper re-publishes such events.

Back-off: after its k-th publish an event is due again ``min_age * 2**(k-1)`` later (30 s, 60 s,
2 min, 4 min, ...), so a merely long queue is not flooded with duplicates and an event is only
parked after it had a fair chance: with the defaults (30 s, 5 attempts) that is about 15 minutes
after it was received. A duplicate publish is harmless: the task leaves non-pending events alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import and_, null, or_, select, update
from sqlalchemy.orm import Session

from shared.events.pipeline import MAX_ERROR_CHARS
from shared.infra.broker import event_message
from shared.infra.clock import Clock
from shared.infra.config import Settings
from shared.infra.db.uow import UnitOfWork
from shared.models.enums import EventStatus
from shared.models.tables import events


@dataclass
class SweepResult:
    """Ids to publish once the transaction committed, and ids parked as ``error``."""

    republish: list[uuid.UUID] = field(default_factory=list)
    parked: list[uuid.UUID] = field(default_factory=list)


def parked_message(attempts: int, last_error: str | None) -> str:
    message = f"not processed after {attempts} attempts"
    if last_error:
        message += f"; last error: {last_error}"
    return message[:MAX_ERROR_CHARS]


def sweep_pending(
    session: Session,
    clock: Clock,
    min_age_seconds: float,
    batch_size: int,
    max_attempts: int,
) -> SweepResult:
    """Claim up to ``batch_size`` due ``pending`` events, oldest first.

    Each claimed event either gets ``publish_attempts + 1`` and ``last_published_at = now``
    and its id returned for re-publishing (after commit, by the caller), or, when it was
    already published ``max_attempts`` times, is parked as ``error``. Rows locked by a worker
    that is processing them right now are skipped (``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
    """
    now = clock.now()
    last = events.c.last_published_at
    due = []
    for attempts in range(max_attempts + 1):
        wait = timedelta(seconds=min_age_seconds * 2 ** max(attempts - 1, 0))
        due.append(
            and_(
                events.c.publish_attempts == attempts
                if attempts < max_attempts
                else events.c.publish_attempts >= attempts,
                or_(
                    and_(last.is_(None), events.c.received_at <= now - wait),
                    last <= now - wait,
                ),
            )
        )
    stmt = (
        select(events.c.id, events.c.publish_attempts, events.c.error)
        .where(
            events.c.status == EventStatus.PENDING,
            events.c.received_at <= now - timedelta(seconds=min_age_seconds),
            or_(*due),
        )
        .order_by(events.c.received_at, events.c.id)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    result = SweepResult()
    for row in session.execute(stmt).all():
        if row.publish_attempts >= max_attempts:
            session.execute(
                update(events)
                .where(events.c.id == row.id)
                .values(
                    status=EventStatus.ERROR,
                    error=parked_message(row.publish_attempts, row.error),
                    processed_at=now,
                    pending_payload=null(),
                )
            )
            result.parked.append(row.id)
        else:
            result.republish.append(row.id)
    if result.republish:
        session.execute(
            update(events)
            .where(events.c.id.in_(result.republish))
            .values(publish_attempts=events.c.publish_attempts + 1, last_published_at=now)
        )
    return result


def sweep_and_republish(uow: UnitOfWork, clock: Clock, settings: Settings) -> SweepResult:
    """:func:`sweep_pending` with the settings' knobs, publishing ``process_event`` for the
    events to retry once ``uow`` committed: the sweep beat job and ``automations jobs run
    sweep-events`` alike."""
    result = sweep_pending(
        uow.session,
        clock,
        min_age_seconds=settings.sweeper_min_age_seconds,
        batch_size=settings.sweeper_batch_size,
        max_attempts=settings.sweeper_max_attempts,
    )
    for event_id in result.republish:
        uow.enqueue(*event_message(event_id))
    return result
