"""Helpers shared by the cron tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from shared.cron.dispatch import dispatch_due
from shared.cron.scheduling import refresh_next_fire
from shared.infra.clock import FrozenClock
from shared.infra.db.uow import Database, Units
from shared.models import AutomationEvent, AutomationStatus, AutomationTrigger
from tests import factories


class Collector:
    """A task publisher that records the event ids of what was published."""

    def __init__(self) -> None:
        self.published: list[str] = []

    def publish(self, messages: Any) -> None:
        self.published.extend(m.args[0] for m in messages)


def units(bind: Session | Engine, publisher: Collector | None = None) -> Units:
    """Units of work over ``bind``: savepoints of a test session's transaction, or an
    engine's own transactions; what they publish after commit goes to ``publisher``."""
    target = bind.connection() if isinstance(bind, Session) else bind
    return Database(target, publisher).unit


def cron(
    session: Session,
    clock: FrozenClock,
    schedule: str,
    status: AutomationStatus = AutomationStatus.ACTIVE,
) -> AutomationTrigger:
    """An automation in ``status`` with one cron trigger, scheduled as the API would."""
    auto = factories.automation(session, clock, status=status)
    trigger = factories.cron_trigger(session, clock, auto, cron_schedule=schedule)
    refresh_next_fire(session, trigger, status, clock.now())
    session.commit()
    return trigger


def events_of(session: Session, trigger: AutomationTrigger) -> list[AutomationEvent]:
    session.expire_all()
    return list(
        session.scalars(
            select(AutomationEvent)
            .where(AutomationEvent.trigger_id == trigger.id)
            .order_by(AutomationEvent.received_at)
        )
    )


def reload(session: Session, trigger: AutomationTrigger) -> AutomationTrigger:
    session.expire_all()
    return session.get(AutomationTrigger, trigger.id)  # type: ignore[return-value]


def run_clock(
    session: Session,
    clock: FrozenClock,
    start: datetime,
    end: datetime,
    step: timedelta,
    batch_size: int = 100,
) -> list[str]:
    """Tick the dispatcher at ``start``, ``start+step``, … ``end``; return the fired ids."""
    fired: list[str] = []
    clock.set(start)
    while clock.now() <= end:
        fired += dispatch_due(units(session), clock, batch_size)
        clock.advance(seconds=step.total_seconds())
    return fired
