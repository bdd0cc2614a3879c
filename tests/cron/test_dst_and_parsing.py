"""DST through the dispatcher (a FrozenClock stepping through the night), CRON_TZ, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from shared.cron.dispatch import dispatch_due
from shared.cron.schedule import ScheduleError, parse_schedule
from shared.cron.scheduling import refresh_next_fire
from shared.infra.clock import FrozenClock
from shared.models import AutomationStatus
from tests import factories
from tests.cron.helpers import cron, events_of, run_clock, units


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def fires_during(
    session: Session,
    clock: FrozenClock,
    schedule: str,
    start: str,
    end: str,
    step: timedelta = timedelta(minutes=5),
) -> list[tuple[str, str]]:
    """(scheduled_at, fired_at) of every fire while ticking from ``start`` to ``end``."""
    clock.set(utc(start))
    trigger = cron(session, clock, schedule)
    run_clock(session, clock, utc(start), utc(end), step)
    return [(e.payload["scheduled_at"], e.payload["fired_at"]) for e in events_of(session, trigger)]


@pytest.mark.parametrize(
    ("schedule", "start", "end", "expected"),
    [
        pytest.param(
            # 01:30 happens twice on 2026-11-01 (EDT 05:30Z, then EST 06:30Z): fires once
            "CRON_TZ=America/New_York 30 1 * * *",
            "2026-10-31T20:00:00Z",
            "2026-11-02T12:00:00Z",
            [("2026-11-01T05:30:00Z",) * 2, ("2026-11-02T06:30:00Z",) * 2],
            id="new-york-fall-back",
        ),
        pytest.param(
            # 02:30 does not exist on 2026-03-08: fires at the next valid instant, 03:00 EDT
            "CRON_TZ=America/New_York 30 2 * * *",
            "2026-03-07T12:00:00Z",
            "2026-03-09T12:00:00Z",
            [("2026-03-08T07:00:00Z",) * 2, ("2026-03-09T06:30:00Z",) * 2],
            id="new-york-spring-forward",
        ),
        pytest.param(
            # 02:30 happens twice on 2026-10-25 (CEST 00:30Z, then CET 01:30Z): fires once
            "CRON_TZ=Europe/Berlin 30 2 * * *",
            "2026-10-24T12:00:00Z",
            "2026-10-26T12:00:00Z",
            [("2026-10-25T00:30:00Z",) * 2, ("2026-10-26T01:30:00Z",) * 2],
            id="berlin-fall-back",
        ),
        pytest.param(
            # 02:30 does not exist on 2026-03-29: fires at 03:00 CEST = 01:00Z
            "CRON_TZ=Europe/Berlin 30 2 * * *",
            "2026-03-28T12:00:00Z",
            "2026-03-30T12:00:00Z",
            [("2026-03-29T01:00:00Z",) * 2, ("2026-03-30T00:30:00Z",) * 2],
            id="berlin-spring-forward",
        ),
        pytest.param(
            # an every-hour schedule follows real time: the repeated 01:00 fires in both passes
            "CRON_TZ=America/New_York 0 * * * *",
            "2026-11-01T03:30:00Z",
            "2026-11-01T07:30:00Z",
            [(f"2026-11-01T0{h}:00:00Z",) * 2 for h in (4, 5, 6, 7)],
            id="new-york-hourly-fall-back",
        ),
        pytest.param(
            # … and the hour skipped by spring-forward simply does not exist
            "CRON_TZ=Europe/Berlin 0 * * * *",
            "2026-03-28T23:30:00Z",
            "2026-03-29T02:30:00Z",
            [(f"2026-03-29T0{h}:00:00Z",) * 2 for h in (0, 1, 2)],
            id="berlin-hourly-spring-forward",
        ),
    ],
)
def test_dst_through_the_dispatcher(
    any_session: Session,
    clock: FrozenClock,
    schedule: str,
    start: str,
    end: str,
    expected: list[tuple[str, str]],
) -> None:
    step = timedelta(minutes=5) if " * * * *" in schedule else timedelta(minutes=10)
    assert fires_during(any_session, clock, schedule, start, end, step) == expected


def test_outage_across_fall_back_coalesces(any_session: Session, clock: FrozenClock) -> None:
    clock.set(utc("2026-10-31T20:00:00Z"))
    trigger = cron(any_session, clock, "CRON_TZ=America/New_York */30 * * * *")
    clock.set(utc("2026-11-01T08:10:00Z"))  # down through the whole repeated hour
    assert len(dispatch_due(units(any_session), clock, 10)) == 1
    [event] = events_of(any_session, trigger)
    assert event.payload["scheduled_at"] == "2026-11-01T08:00:00Z"
    # 20:30Z … 07:30Z every 30 min in real time (the repeated hour counts twice): 23 skipped
    assert event.payload["skipped"] == 23


def test_cron_tz_prefix(any_session: Session, clock: FrozenClock) -> None:
    clock.set(utc("2026-07-01T00:00:00Z"))
    berlin = cron(any_session, clock, "CRON_TZ=Europe/Berlin 0 9 * * 1-5")
    assert berlin.next_fire_at == utc("2026-07-01T07:00:00Z")  # 09:00 CEST, a Wednesday
    tz_alias = cron(any_session, clock, "TZ=Asia/Kolkata 0 9 * * *")
    assert tz_alias.next_fire_at == utc("2026-07-01T03:30:00Z")
    default_utc = cron(any_session, clock, "0 9 * * *")
    assert default_utc.next_fire_at == utc("2026-07-01T09:00:00Z")
    schedule = parse_schedule("CRON_TZ=America/New_York   30 1 * * *")
    assert (schedule.tz.key, schedule.expression) == ("America/New_York", "30 1 * * *")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 0 * * * *", "expected 5 fields"),
        ("0 0 0 * * * 2030", "expected 5 fields"),
        ("0 0 *", "expected 5 fields"),
        ("", "schedule is empty"),
        ("CRON_TZ=Mars/Olympus 0 0 * * *", "unknown time zone 'Mars/Olympus'"),
        ("CRON_TZ=Europe/Berlin", "missing cron expression"),
        ("FOO=bar 0 0 * * *", "unsupported prefix"),
        ("0 0 30 2 *", "never fires"),
        ("61 * * * *", "invalid cron expression"),
        ("0 0 L * *", "unsupported value 'L'"),
        ("@reboot", "@reboot is not supported"),
    ],
)
def test_invalid_schedules_are_rejected_at_save_time(
    any_session: Session, clock: FrozenClock, text: str, message: str
) -> None:
    auto = factories.automation(any_session, clock)
    trigger = factories.cron_trigger(any_session, clock, auto, cron_schedule=text)
    with pytest.raises(ScheduleError, match=message):
        refresh_next_fire(any_session, trigger, AutomationStatus.ACTIVE, clock.now())
