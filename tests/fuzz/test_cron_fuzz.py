"""Bad-input sweep of cron schedules (issue 7 item 2).

* ``parse_schedule`` raises only :class:`ScheduleError` on anything it refuses, within a
  time bound (never hangs, never another exception);
* a schedule it accepts has ``next_fire_after(t) > t`` and ``due_fire`` is consistent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.cron.schedule import (
    Schedule,
    ScheduleError,
    due_fire,
    next_fire_after,
    parse_schedule,
)
from tests.fuzz import timed

NOW = datetime(2026, 3, 8, 6, 59, 30, tzinfo=UTC)  # near a DST change in America/New_York
_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


def check_schedule(text: str, now: datetime = NOW) -> Schedule | None:
    try:
        schedule = timed(lambda: parse_schedule(text, now), f"parse_schedule({text[:60]!r})")
    except ScheduleError as exc:
        assert str(exc)
        return None
    assert isinstance(schedule, Schedule)
    after = now
    for _ in range(3):
        fire = timed(lambda a=after: next_fire_after(schedule, a), f"next_fire_after {text!r}")
        assert fire > after, (text, after, fire)
        assert fire.tzinfo is not None and fire.utcoffset() == timedelta(0)
        after = fire
    later = after + timedelta(days=2)
    due = timed(lambda: due_fire(schedule, after, later), "due_fire")
    assert due is not None
    scheduled_at, skipped, new_next = due
    assert after <= scheduled_at <= later < new_next
    assert skipped >= 0
    return schedule


_FIELD_ATOMS = st.one_of(
    st.sampled_from(
        [
            "*",
            "*/5",
            "1-5",
            "0",
            "59",
            "60",
            "-1",
            "1,2,3",
            "mon-fri",
            "jan",
            "L",
            "W",
            "?",
            "H",
            "5#2",
            "*/0",
            "0/0",
            "1-",
            "-",
            ",",
            "/",
            "*/99999999999999999999",
            "99999999999999999999",
            "1-59/60",
            "31",
            "feb",
            "sun,sat",
            "7",
            "8",
            "0x1",
            "１",
            "٣",
            "\x00",
            "",
            "*" * 1000,
            ",".join(["1"] * 5000),
        ]
    ),
    st.text(alphabet="0123456789*,-/LW#?Hmonjanfeb", max_size=12),
)
_ZONES = st.sampled_from(
    [
        "",
        "CRON_TZ=UTC ",
        "CRON_TZ=America/New_York ",
        "TZ=Europe/Berlin ",
        "CRON_TZ=Nowhere/Land ",
        "CRON_TZ= ",
        "CRON_TZ=../../etc/passwd ",
        "CRON_TZ=" + "A" * 5000 + " ",
        "TZ=UTC",
        "FOO=bar ",
        "CRON_TZ=\x00 ",
    ]
)
_near_valid = st.builds(
    lambda zone, fields, sep: zone + sep.join(fields),
    _ZONES,
    st.lists(_FIELD_ATOMS, min_size=0, max_size=8),
    st.sampled_from([" ", "  ", "\t", "\n", " \u00a0", "\u3000"]),
)
_macros = st.sampled_from(
    [
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
        "@reboot",
        "@every 5m",
        "@",
        "@@",
        "@HOURLY",
        "@daily x",
    ]
)


PATHOLOGICAL = [
    "",
    " " * 100_000,
    "* " * 100_000,
    "*" * 100_000,
    "0 0 30 2 *",  # never fires
    "0 0 31 4,6,9,11 *",
    "0 0 29 2 *",  # leap days only
    "0 0 29 2 1",  # day-of-month OR day-of-week
    "59 23 31 12 *",
    "*/1 */1 */1 */1 */1",
    "0-59 0-23 1-31 1-12 0-7",
    ",".join(str(i) for i in range(60)) + " * * * *",
    "0 0 * * " + ",".join(["1"] * 50_000),
    "CRON_TZ=America/New_York 30 2 * * *",
    "CRON_TZ=Australia/Lord_Howe 30 1 * * *",  # a 30-minute DST shift
    "CRON_TZ=Pacific/Apia 0 0 30 12 *",  # a zone that skipped a whole day
    "CRON_TZ=America/New_York 0 * * * *",
    "\x00",
    "\ud800 * * * *",
    "0 0 * * * *",  # six fields
    "0 0 0 0 0",
    "60 24 32 13 8",
    "1-0 * * * *",
    "5-3/2 * * * *",
]


@pytest.mark.parametrize("text", PATHOLOGICAL, ids=lambda t: f"{t[:20]!r}x{len(t)}")
def test_pathological_schedules(text: str) -> None:
    check_schedule(text)


def test_a_schedule_that_never_fires_is_refused() -> None:
    with pytest.raises(ScheduleError):
        parse_schedule("0 0 30 2 *", NOW)


def test_overlong_schedules_are_refused_before_parsing() -> None:
    with pytest.raises(ScheduleError, match="longer than"):
        timed(lambda: parse_schedule("0 0 * * " + ",".join(["1"] * 50_000), NOW), "parse")


@_SETTINGS
@given(text=st.text(max_size=80))
def test_random_text(text: str) -> None:
    check_schedule(text)


@_SETTINGS
@given(text=st.one_of(_near_valid, _macros))
def test_near_valid_expressions(text: str) -> None:
    check_schedule(text)


@_SETTINGS
@given(
    minute=st.sampled_from(["*", "0", "*/7", "15,45", "0-30/10", "59"]),
    hour=st.sampled_from(["*", "0", "2", "1-3", "*/5", "23"]),
    dom=st.sampled_from(["*", "1", "15", "29", "31", "1-7"]),
    month=st.sampled_from(["*", "1", "2", "3,11", "dec", "*/2"]),
    dow=st.sampled_from(["*", "0", "1-5", "sun", "7", "mon,fri"]),
    zone=st.sampled_from(
        [
            "",
            "CRON_TZ=America/New_York ",
            "CRON_TZ=Europe/London ",
            "TZ=Australia/Lord_Howe ",
            "CRON_TZ=Asia/Kathmandu ",
        ]
    ),
    now=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
)
def test_valid_schedules_fire_strictly_after(
    minute: str, hour: str, dom: str, month: str, dow: str, zone: str, now: datetime
) -> None:
    text = f"{zone}{minute} {hour} {dom} {month} {dow}"
    schedule = check_schedule(text, now)
    if dom in ("*", "1", "15", "1-7"):
        assert schedule is not None, text  # these always fire within five years


def test_impossible_day_of_month_or_a_weekday_fires_on_the_weekday() -> None:
    """With both day fields restricted cron ORs them: Feb 30 never exists, so this fires on
    every Monday of February."""
    schedule = parse_schedule("0 0 30 2 1", NOW)
    fire = next_fire_after(schedule, NOW)
    assert fire.weekday() == 0 and fire.month == 2
    again = next_fire_after(schedule, fire)
    assert again.weekday() == 0 and (again - fire).days in (7, 344, 351, 358)
