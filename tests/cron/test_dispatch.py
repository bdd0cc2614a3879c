"""The dispatcher with a controlled clock, on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.cron.dispatch import cron_delivery_id, dispatch_due
from shared.cron.schedule import ScheduleError
from shared.cron.scheduling import refresh_automation_triggers, refresh_next_fire
from shared.infra.clock import FrozenClock
from shared.models import (
    Automation,
    AutomationEvent,
    AutomationStatus,
    AutomationTrigger,
    EventStatus,
)
from tests import factories
from tests.cron.helpers import Collector, cron, events_of, reload, run_clock, units

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return T0.replace(hour=hour, minute=minute, second=second)


def test_next_fire_is_set_when_scheduled(any_session: Session, clock: FrozenClock) -> None:
    trigger = cron(any_session, clock, "*/5 * * * *")
    assert trigger.next_fire_at == at(12, 5)  # strictly after now (12:00 is not retroactive)
    assert trigger.last_triggered_at is None


def test_due_computation_fires_once_per_slot(any_session: Session, clock: FrozenClock) -> None:
    trigger = cron(any_session, clock, "*/5 * * * *")
    publish = Collector()

    clock.set(at(12, 4, 59))
    assert dispatch_due(units(any_session, publish), clock, 100) == []

    clock.set(at(12, 5, 2))
    fired = dispatch_due(units(any_session, publish), clock, 100)
    assert len(fired) == 1
    assert publish.published == fired
    [event] = events_of(any_session, trigger)
    assert str(event.id) == fired[0]
    assert event.status == EventStatus.PENDING
    assert event.received_at == at(12, 5, 2)
    assert event.delivery_id == "cron:2026-01-15T12:05:00Z"
    assert event.payload == {
        "trigger": "cron",
        "schedule": "*/5 * * * *",
        "scheduled_at": "2026-01-15T12:05:00Z",
        "fired_at": "2026-01-15T12:05:02Z",
        "skipped": 0,
    }
    trigger = reload(any_session, trigger)
    assert trigger.next_fire_at == at(12, 10)
    assert trigger.last_triggered_at == at(12, 5, 2)

    # the same slot never fires again, however often the tick runs
    clock.set(at(12, 9, 59))
    assert dispatch_due(units(any_session, publish), clock, 100) == []
    clock.set(at(12, 10))
    assert len(dispatch_due(units(any_session, publish), clock, 100)) == 1
    assert len(events_of(any_session, trigger)) == 2
    assert len(publish.published) == 2


def test_three_hour_outage_coalesces_into_one_fire(
    any_session: Session, clock: FrozenClock
) -> None:
    trigger = cron(any_session, clock, "*/5 * * * *")  # next 12:05
    clock.set(at(15, 0, 30))  # nothing ran from 12:00 to 15:00:30
    fired = dispatch_due(units(any_session), clock, 100)
    assert len(fired) == 1
    [event] = events_of(any_session, trigger)
    # slots 12:05 … 15:00 (36 of them): the latest fires, the 35 before it are skipped
    assert event.payload["scheduled_at"] == "2026-01-15T15:00:00Z"
    assert event.payload["fired_at"] == "2026-01-15T15:00:30Z"
    assert event.payload["skipped"] == 35
    assert reload(any_session, trigger).next_fire_at == at(15, 5)


def test_batches_fire_every_due_trigger(any_session: Session, clock: FrozenClock) -> None:
    triggers = [cron(any_session, clock, "* * * * *") for _ in range(7)]
    not_due = cron(any_session, clock, "0 0 1 1 *")
    clock.set(at(12, 1))
    fired = dispatch_due(units(any_session), clock, 3)  # batches of 3, 3, 1
    assert len(fired) == 7
    assert all(len(events_of(any_session, t)) == 1 for t in triggers)
    assert events_of(any_session, not_due) == []


def test_max_batches_bounds_a_pass(any_session: Session, clock: FrozenClock) -> None:
    for _ in range(5):
        cron(any_session, clock, "* * * * *")
    clock.set(at(12, 1))
    assert len(dispatch_due(units(any_session), clock, 2, max_batches=1)) == 2
    assert len(dispatch_due(units(any_session), clock, 2)) == 3


def test_preview_automations_fire(any_session: Session, clock: FrozenClock) -> None:
    trigger = cron(any_session, clock, "*/5 * * * *", AutomationStatus.PREVIEW)
    clock.set(at(12, 5))
    assert len(dispatch_due(units(any_session), clock, 100)) == 1
    assert len(events_of(any_session, trigger)) == 1


def test_disabled_automations_never_fire(any_session: Session, clock: FrozenClock) -> None:
    trigger = cron(any_session, clock, "* * * * *", AutomationStatus.DISABLED)
    assert trigger.next_fire_at is None
    assert run_clock(any_session, clock, at(12, 0), at(13, 0), timedelta(minutes=7)) == []
    assert events_of(any_session, trigger) == []


def test_disabled_automation_with_stale_next_fire_is_unscheduled(
    any_session: Session, clock: FrozenClock
) -> None:
    # A writer flipped the status without refreshing the triggers: the dispatcher does not
    # fire, and clears next_fire_at so re-enabling cannot replay the disabled period.
    trigger = cron(any_session, clock, "* * * * *")
    auto = any_session.get(Automation, trigger.automation_id)
    assert auto is not None
    auto.status = AutomationStatus.DISABLED
    any_session.commit()
    clock.set(at(12, 30))
    assert dispatch_due(units(any_session), clock, 100) == []
    assert reload(any_session, trigger).next_fire_at is None
    assert events_of(any_session, trigger) == []


def test_reenabled_automation_does_not_replay_the_disabled_period(
    any_session: Session, clock: FrozenClock
) -> None:
    trigger = cron(any_session, clock, "*/10 * * * *")  # next 12:10
    auto = any_session.get(Automation, trigger.automation_id)
    assert auto is not None

    clock.set(at(12, 10))
    assert len(dispatch_due(units(any_session), clock, 100)) == 1

    clock.set(at(12, 15))
    auto.status = AutomationStatus.DISABLED
    refresh_automation_triggers(any_session, auto, clock.now())
    any_session.commit()
    assert reload(any_session, trigger).next_fire_at is None

    # disabled for three hours: the ticks keep running, nothing fires
    assert run_clock(any_session, clock, at(12, 15), at(15, 15), timedelta(minutes=10)) == []

    clock.set(at(15, 17))
    auto.status = AutomationStatus.ACTIVE
    refresh_automation_triggers(any_session, auto, clock.now())
    any_session.commit()
    assert reload(any_session, trigger).next_fire_at == at(15, 20)
    assert dispatch_due(units(any_session), clock, 100) == []  # no catch-up fire

    clock.set(at(15, 20))
    assert len(dispatch_due(units(any_session), clock, 100)) == 1
    events = events_of(any_session, trigger)
    assert [e.payload["scheduled_at"] for e in events] == [
        "2026-01-15T12:10:00Z",
        "2026-01-15T15:20:00Z",
    ]
    assert events[-1].payload["skipped"] == 0


def test_active_preview_switch_keeps_the_pending_slot(
    any_session: Session, clock: FrozenClock
) -> None:
    trigger = cron(any_session, clock, "0 * * * *")  # next 13:00
    auto = any_session.get(Automation, trigger.automation_id)
    assert auto is not None
    clock.set(at(12, 59, 59))
    auto.status = AutomationStatus.PREVIEW
    refresh_automation_triggers(any_session, auto, clock.now())
    assert trigger.next_fire_at == at(13, 0)


def test_schedule_change_recomputes_next_fire(any_session: Session, clock: FrozenClock) -> None:
    trigger = cron(any_session, clock, "0 0 * * *")
    assert trigger.next_fire_at == datetime(2026, 1, 16, tzinfo=UTC)
    trigger.cron_schedule = "CRON_TZ=Europe/Berlin 30 14 * * *"
    refresh_next_fire(any_session, trigger, AutomationStatus.ACTIVE, clock.now())
    assert trigger.next_fire_at == at(13, 30)  # 14:30 CET


def test_refresh_rejects_invalid_schedules_and_clears_webhooks(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = factories.automation(any_session, clock)
    trigger = factories.cron_trigger(any_session, clock, auto, cron_schedule="0 0 * * * *")
    with pytest.raises(ScheduleError, match="expected 5 fields"):
        refresh_next_fire(any_session, trigger, AutomationStatus.ACTIVE, clock.now())
    # invalid even while disabled: the API rejects it at save time either way
    with pytest.raises(ScheduleError, match="expected 5 fields"):
        refresh_next_fire(any_session, trigger, AutomationStatus.DISABLED, clock.now())
    hook = factories.webhook_trigger(any_session, clock, auto)
    refresh_next_fire(any_session, hook, AutomationStatus.ACTIVE, clock.now())
    assert hook.next_fire_at is None


def test_already_recorded_fire_is_not_fired_again(any_session: Session, clock: FrozenClock) -> None:
    """Another dispatcher inserted this slot's event: the unique key stops a second one."""
    trigger = cron(any_session, clock, "*/5 * * * *")
    auto = any_session.get(Automation, trigger.automation_id)
    assert auto is not None
    factories.event(
        any_session,
        clock,
        auto,
        trigger_id=trigger.id,
        delivery_id=cron_delivery_id(at(12, 5)),
        status=EventStatus.PREVIEW,
    )
    any_session.commit()
    publish = Collector()
    clock.set(at(12, 5, 1))
    assert dispatch_due(units(any_session, publish), clock, 100) == []
    assert publish.published == []
    assert len(events_of(any_session, trigger)) == 1
    trigger = reload(any_session, trigger)
    assert trigger.next_fire_at == at(12, 10)  # still advanced: the slot has been fired


def test_unfireable_stored_schedule_is_unscheduled_with_an_error_event(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = factories.automation(any_session, clock)
    trigger = factories.cron_trigger(
        any_session,
        clock,
        auto,
        cron_schedule="CRON_TZ=Atlantis/Lost 0 * * * *",
        next_fire_at=at(12, 0),
    )
    any_session.commit()
    publish = Collector()
    assert dispatch_due(units(any_session, publish), clock, 100) == []
    [event] = events_of(any_session, trigger)
    assert event.status == EventStatus.ERROR
    assert "unknown time zone 'Atlantis/Lost'" in (event.error or "")
    assert reload(any_session, trigger).next_fire_at is None
    assert dispatch_due(units(any_session), clock, 100) == []
    assert any_session.scalar(select(func.count()).select_from(AutomationEvent)) == 1


def test_webhook_triggers_are_never_claimed(any_session: Session, clock: FrozenClock) -> None:
    auto = factories.automation(any_session, clock)
    factories.webhook_trigger(any_session, clock, auto)
    any_session.commit()
    clock.set(at(23))
    assert dispatch_due(units(any_session), clock, 100) == []
    assert any_session.scalar(select(func.count()).select_from(AutomationTrigger)) == 1
