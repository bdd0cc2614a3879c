"""The pending-event sweeper (SPEC 8), on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from shared.events.sweeper import sweep_pending
from shared.infra.clock import FrozenClock
from shared.models import AutomationEvent, EventStatus
from tests import factories as f


def _sweep(session: Session, clock: FrozenClock, **kw: int) -> tuple[list, list]:  # type: ignore[type-arg]
    args = {"min_age_seconds": 30, "batch_size": 100, "max_attempts": 3} | kw
    result = sweep_pending(session, clock, **args)
    session.expire_all()
    return result.republish, result.parked


def test_republishes_old_pending_events_oldest_first_and_bounded(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = f.automation(any_session, clock)
    now = clock.now()
    young = f.event(any_session, clock, auto, received_at=now - timedelta(seconds=10))
    old = [
        f.event(any_session, clock, auto, received_at=now - timedelta(minutes=m)) for m in (3, 5, 4)
    ]
    done = f.event(
        any_session, clock, auto, status=EventStatus.FILTERED, received_at=now - timedelta(hours=1)
    )

    ids, parked = _sweep(any_session, clock, batch_size=2)
    assert ids == [old[1].id, old[2].id]  # oldest first, at most batch_size
    assert parked == []
    for ev in (old[1], old[2]):
        row = any_session.get(AutomationEvent, ev.id)
        assert row is not None
        assert row.publish_attempts == 1 and row.last_published_at == now
        assert row.status == EventStatus.PENDING

    ids, _ = _sweep(any_session, clock, batch_size=2)
    assert ids == [old[0].id]  # the others were just re-published: not due yet
    assert young.id not in ids and done.id not in ids


def test_backs_off_between_attempts_then_parks_as_error(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = f.automation(any_session, clock)
    ev = f.event(
        any_session,
        clock,
        auto,
        received_at=clock.now() - timedelta(seconds=31),
        error="OperationalError: connection refused",
    )
    # attempt 1 right away; attempt 2 after 30 s; attempt 3 after 60 s more
    assert _sweep(any_session, clock)[0] == [ev.id]
    clock.advance(seconds=29)
    assert _sweep(any_session, clock)[0] == []
    clock.advance(seconds=1)
    assert _sweep(any_session, clock)[0] == [ev.id]
    clock.advance(seconds=59)
    assert _sweep(any_session, clock)[0] == []
    clock.advance(seconds=1)
    assert _sweep(any_session, clock)[0] == [ev.id]
    row = any_session.get(AutomationEvent, ev.id)
    assert row is not None and row.publish_attempts == 3

    # published max_attempts times and still pending after the next wait: parked
    clock.advance(seconds=119)
    assert _sweep(any_session, clock) == ([], [])
    clock.advance(seconds=1)
    assert _sweep(any_session, clock) == ([], [ev.id])
    row = any_session.get(AutomationEvent, ev.id)
    assert row is not None
    assert row.status == EventStatus.ERROR
    assert row.error == (
        "not processed after 3 attempts; last error: OperationalError: connection refused"
    )
    assert row.processed_at == clock.now()
    clock.advance(hours=1)
    assert _sweep(any_session, clock) == ([], [])


def test_parked_message_without_a_recorded_error(any_session: Session, clock: FrozenClock) -> None:
    auto = f.automation(any_session, clock)
    ev = f.event(
        any_session,
        clock,
        auto,
        received_at=clock.now() - timedelta(hours=2),
        publish_attempts=5,
        last_published_at=clock.now() - timedelta(hours=1),
    )
    assert _sweep(any_session, clock, max_attempts=5) == ([], [ev.id])
    row = any_session.get(AutomationEvent, ev.id)
    assert row is not None and row.error == "not processed after 5 attempts"
