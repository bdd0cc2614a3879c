from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from shared.cron.schedule import (
    MAX_COUNTED_SKIPS,
    Schedule,
    ScheduleError,
    due_fire,
    next_fire_after,
    parse_schedule,
    to_rfc3339,
)

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def sched(text: str) -> Schedule:
    return parse_schedule(text, now=NOW)


def fires(schedule: Schedule, after: datetime, count: int) -> list[str]:
    out: list[str] = []
    for _ in range(count):
        after = next_fire_after(schedule, after)
        out.append(to_rfc3339(after))
    return out


def fires_between(schedule: Schedule, start: datetime, end: datetime) -> list[str]:
    out: list[str] = []
    t = next_fire_after(schedule, start)
    while t <= end:
        out.append(to_rfc3339(t))
        t = next_fire_after(schedule, t)
    return out


# --- parsing -------------------------------------------------------------------------------------


def test_parse_plain_defaults_to_utc() -> None:
    s = sched("  */5   * * * *  ")
    assert s.expression == "*/5 * * * *"
    assert s.tz == ZoneInfo("UTC")
    assert s.source == "  */5   * * * *  "


@pytest.mark.parametrize("prefix", ["CRON_TZ", "TZ"])
def test_parse_tz_prefix(prefix: str) -> None:
    s = sched(f"{prefix}=Europe/Berlin 0 9 * * mon-fri")
    assert s.tz == ZoneInfo("Europe/Berlin")
    assert s.expression == "0 9 * * mon-fri"


def test_parse_names_and_dow_7() -> None:
    assert sched("0 0 1 JAN,jul SUN").expression == "0 0 1 JAN,jul SUN"
    # 7 is Sunday, as in Vixie cron: 2026-01-18 is a Sunday.
    assert next_fire_after(sched("0 0 * * 7"), NOW) == utc(2026, 1, 18)


@pytest.mark.parametrize(
    ("macro", "expression"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("CRON_TZ=Asia/Tokyo @daily", "0 0 * * *"),
    ],
)
def test_parse_macros(macro: str, expression: str) -> None:
    assert sched(macro).expression == expression


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CRON_TZ=Mars/Base 0 * * * *", "unknown time zone 'Mars/Base' in CRON_TZ"),
        ("TZ=Mars/Base 0 * * * *", "unknown time zone 'Mars/Base' in TZ"),
        ("CRON_TZ=../../etc/passwd 0 * * * *", "unknown time zone '../../etc/passwd' in CRON_TZ"),
        ("CRON_TZ=UTC", "missing cron expression after CRON_TZ=UTC"),
        ("FOO=UTC 0 * * * *", "unsupported prefix 'FOO='"),
        (
            "0 * * * * *",
            "expected 5 fields (minute hour day-of-month month day-of-week), got 6",
        ),
        (
            "0 0 * * * * 2026",
            "expected 5 fields (minute hour day-of-month month day-of-week), got 7",
        ),
        ("0 * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
        ("", "schedule is empty"),
        ("   ", "schedule is empty"),
        ("@reboot", "@reboot is not supported"),
        ("@fortnightly", "unknown macro '@fortnightly'"),
        ("0 0 L * *", "unsupported value 'L' in the day-of-month field"),
        ("0 0 15W * *", "unsupported value '15W' in the day-of-month field"),
        ("0 0 * * 1#2", "unsupported value '1#2' in the day-of-week field"),
        ("0 0 ? * *", "unsupported value '?' in the day-of-month field"),
        ("H * * * *", "unsupported value 'H' in the minute field"),
        ("0 0 * foo *", "unsupported value 'foo' in the month field"),
        ("0 0 * * jan", "unsupported value 'jan' in the day-of-week field"),
        ("60 * * * *", "invalid cron expression '60 * * * *': "),
        ("0 24 * * *", "out of range"),
        ("*/0 * * * *", "step '0'"),
        ("0 0 30 2 *", "schedule never fires within the next 5 years"),
        ("0 0 31 4,6 *", "schedule never fires within the next 5 years"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ScheduleError) as info:
        sched(text)
    assert message in str(info.value)


def test_schedule_error_is_value_error() -> None:
    assert issubclass(ScheduleError, ValueError)


def test_leap_day_schedule_is_valid() -> None:
    s = sched("0 0 29 2 *")
    assert next_fire_after(s, NOW) == utc(2028, 2, 29)


def test_never_fires_check_uses_now() -> None:
    # 2100 is not a leap year: from March 2096 the next 29 February is in 2104.
    with pytest.raises(ScheduleError, match="never fires within the next 5 years"):
        parse_schedule("0 0 29 2 *", now=utc(2096, 3, 1))


def test_naive_datetimes_rejected() -> None:
    s = sched("* * * * *")
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_after(s, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_schedule("* * * * *", now=datetime(2026, 1, 1))


# --- next fire -----------------------------------------------------------------------------------


def test_next_fire_basics() -> None:
    assert fires(sched("*/5 * * * *"), utc(2026, 1, 15, 12, 2, 30), 3) == [
        "2026-01-15T12:05:00Z",
        "2026-01-15T12:10:00Z",
        "2026-01-15T12:15:00Z",
    ]
    assert fires(sched("0 9 * * mon-fri"), utc(2026, 1, 16, 10), 2) == [
        "2026-01-19T09:00:00Z",  # Friday 10:00 -> Monday 09:00
        "2026-01-20T09:00:00Z",
    ]


def test_next_fire_strictly_after() -> None:
    s = sched("0 * * * *")
    assert next_fire_after(s, utc(2026, 1, 15, 12)) == utc(2026, 1, 15, 13)
    assert next_fire_after(s, utc(2026, 1, 15, 11, 59, 59, 999999)) == utc(2026, 1, 15, 12)


def test_next_fire_returns_aware_utc_for_any_aware_input() -> None:
    s = sched("0 * * * *")
    plus2 = timezone(timedelta(hours=2))
    result = next_fire_after(s, datetime(2026, 1, 15, 14, 30, tzinfo=plus2))
    assert result == utc(2026, 1, 15, 13)
    assert result.tzinfo is UTC


def test_next_fire_in_zone() -> None:
    s = sched("CRON_TZ=Asia/Kolkata 0 9 * * *")
    assert next_fire_after(s, NOW) == utc(2026, 1, 16, 3, 30)


def test_day_of_month_or_day_of_week() -> None:
    s = sched("0 0 1 * mon")
    # Vixie cron: both restricted -> either matches. 2026-01-19 is a Monday.
    assert fires(s, NOW, 3) == [
        "2026-01-19T00:00:00Z",
        "2026-01-26T00:00:00Z",
        "2026-02-01T00:00:00Z",
    ]


def test_to_rfc3339() -> None:
    assert to_rfc3339(utc(2026, 11, 22, 2)) == "2026-11-22T02:00:00Z"
    berlin = datetime(2026, 11, 22, 3, tzinfo=ZoneInfo("Europe/Berlin"))
    assert to_rfc3339(berlin) == "2026-11-22T02:00:00Z"
    assert to_rfc3339(utc(2026, 1, 1, 0, 0, 0, 5)) == "2026-01-01T00:00:00.000005Z"


# --- DST: America/New_York -----------------------------------------------------------------------


def test_us_fall_back_fixed_hour_fires_once() -> None:
    s = sched("CRON_TZ=America/New_York 30 1 * * *")
    assert fires(s, utc(2026, 10, 31, 12), 3) == [
        "2026-11-01T05:30:00Z",  # 01:30 EDT only, not again at 01:30 EST (06:30Z)
        "2026-11-02T06:30:00Z",
        "2026-11-03T06:30:00Z",
    ]
    # Starting inside the repeated hour does not produce the second 01:30.
    assert next_fire_after(s, utc(2026, 11, 1, 5, 45)) == utc(2026, 11, 2, 6, 30)
    assert next_fire_after(s, utc(2026, 11, 1, 6, 15)) == utc(2026, 11, 2, 6, 30)


def test_us_fall_back_fixed_hour_every_minute_fires_first_pass_only() -> None:
    s = sched("CRON_TZ=America/New_York */30 1 * * *")
    assert fires_between(s, utc(2026, 11, 1, 4), utc(2026, 11, 1, 8)) == [
        "2026-11-01T05:00:00Z",
        "2026-11-01T05:30:00Z",
    ]


def test_us_fall_back_hourly_follows_real_time() -> None:
    s = sched("CRON_TZ=America/New_York 0 * * * *")
    assert fires_between(s, utc(2026, 11, 1, 3, 30), utc(2026, 11, 1, 8)) == [
        "2026-11-01T04:00:00Z",  # 00:00 EDT
        "2026-11-01T05:00:00Z",  # 01:00 EDT
        "2026-11-01T06:00:00Z",  # 01:00 EST (repeated hour fires again)
        "2026-11-01T07:00:00Z",  # 02:00 EST
        "2026-11-01T08:00:00Z",
    ]


def test_us_fall_back_every_20_minutes_has_no_hole() -> None:
    s = sched("CRON_TZ=America/New_York */20 * * * *")
    result = fires_between(s, utc(2026, 11, 1, 4, 50), utc(2026, 11, 1, 7, 0))
    assert result == [
        "2026-11-01T05:00:00Z",
        "2026-11-01T05:20:00Z",
        "2026-11-01T05:40:00Z",
        "2026-11-01T06:00:00Z",
        "2026-11-01T06:20:00Z",
        "2026-11-01T06:40:00Z",
        "2026-11-01T07:00:00Z",
    ]
    # From inside the first pass, the earlier second-pass slots are still ahead.
    assert next_fire_after(s, utc(2026, 11, 1, 5, 45)) == utc(2026, 11, 1, 6)


def test_us_spring_forward_fixed_hour_fires_at_gap_end_once() -> None:
    s = sched("CRON_TZ=America/New_York 30 2 * * *")
    assert fires(s, utc(2026, 3, 7, 12), 3) == [
        "2026-03-08T07:00:00Z",  # 02:30 does not exist -> 03:00 EDT
        "2026-03-09T06:30:00Z",
        "2026-03-10T06:30:00Z",
    ]


def test_us_spring_forward_several_skipped_times_collapse() -> None:
    s = sched("CRON_TZ=America/New_York */15 2,3 * * *")
    assert fires_between(s, utc(2026, 3, 8, 5), utc(2026, 3, 8, 8)) == [
        "2026-03-08T07:00:00Z",  # 02:00..02:45 and 03:00 -> a single fire at 03:00 EDT
        "2026-03-08T07:15:00Z",
        "2026-03-08T07:30:00Z",
        "2026-03-08T07:45:00Z",
    ]


def test_us_spring_forward_hourly_skips_missing_hour() -> None:
    s = sched("CRON_TZ=America/New_York 30 * * * *")
    assert fires_between(s, utc(2026, 3, 8, 5), utc(2026, 3, 8, 8, 30)) == [
        "2026-03-08T05:30:00Z",  # 00:30 EST
        "2026-03-08T06:30:00Z",  # 01:30 EST
        "2026-03-08T07:30:00Z",  # 03:30 EDT (02:30 never happened)
        "2026-03-08T08:30:00Z",
    ]


# --- DST: Europe/Berlin --------------------------------------------------------------------------


def test_eu_fall_back_fixed_hour_fires_once() -> None:
    s = sched("CRON_TZ=Europe/Berlin 30 2 * * *")
    assert fires(s, utc(2026, 10, 24, 12), 3) == [
        "2026-10-25T00:30:00Z",  # 02:30 CEST only
        "2026-10-26T01:30:00Z",
        "2026-10-27T01:30:00Z",
    ]


def test_eu_fall_back_hourly_repeats_hour() -> None:
    s = sched("CRON_TZ=Europe/Berlin 0 * * * *")
    assert fires_between(s, utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 2, 30)) == [
        "2026-10-25T00:00:00Z",  # 02:00 CEST
        "2026-10-25T01:00:00Z",  # 02:00 CET
        "2026-10-25T02:00:00Z",  # 03:00 CET
    ]


def test_eu_spring_forward_fixed_hour() -> None:
    s = sched("CRON_TZ=Europe/Berlin 30 2 * * *")
    assert fires(s, utc(2026, 3, 28, 12), 2) == [
        "2026-03-29T01:00:00Z",  # 02:30 does not exist -> 03:00 CEST
        "2026-03-30T00:30:00Z",
    ]


def test_eu_spring_forward_hourly() -> None:
    s = sched("CRON_TZ=Europe/Berlin 0 * * * *")
    assert fires_between(s, utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 2)) == [
        "2026-03-29T00:00:00Z",  # 01:00 CET
        "2026-03-29T01:00:00Z",  # 03:00 CEST
        "2026-03-29T02:00:00Z",
    ]


def test_half_hour_dst_zone() -> None:
    # Lord Howe Island shifts by 30 minutes (+11 -> +10:30 on 2026-04-05 at 02:00 local).
    s = sched("CRON_TZ=Australia/Lord_Howe 45 1 * * *")
    assert fires(s, utc(2026, 4, 4, 0), 2) == [
        "2026-04-04T14:45:00Z",  # 01:45 +11, once
        "2026-04-05T15:15:00Z",  # 01:45 +10:30
    ]


# --- misfire coalescing --------------------------------------------------------------------------


def test_due_fire_not_due() -> None:
    s = sched("*/5 * * * *")
    assert due_fire(s, utc(2026, 1, 15, 12, 5), utc(2026, 1, 15, 12, 4, 59)) is None


def test_due_fire_on_time() -> None:
    s = sched("*/5 * * * *")
    assert due_fire(s, utc(2026, 1, 15, 12, 5), utc(2026, 1, 15, 12, 5)) == (
        utc(2026, 1, 15, 12, 5),
        0,
        utc(2026, 1, 15, 12, 10),
    )
    assert due_fire(s, utc(2026, 1, 15, 12, 5), utc(2026, 1, 15, 12, 9, 59)) == (
        utc(2026, 1, 15, 12, 5),
        0,
        utc(2026, 1, 15, 12, 10),
    )


def test_due_fire_three_hour_outage() -> None:
    s = sched("*/5 * * * *")
    # Last fire at 09:00, next due 09:05; the scheduler comes back at 12:00.
    result = due_fire(s, utc(2026, 1, 15, 9, 5), utc(2026, 1, 15, 12, 0))
    assert result == (utc(2026, 1, 15, 12, 0), 35, utc(2026, 1, 15, 12, 5))


def test_due_fire_next_is_strictly_after_now() -> None:
    s = sched("*/5 * * * *")
    result = due_fire(s, utc(2026, 1, 15, 9, 5), utc(2026, 1, 15, 12, 2, 30))
    assert result == (utc(2026, 1, 15, 12, 0), 35, utc(2026, 1, 15, 12, 5))


def test_due_fire_across_fall_back_counts_real_slots() -> None:
    s = sched("CRON_TZ=America/New_York 0 * * * *")
    # 00:00 EDT due; back at 02:30 EST: 00:00, 01:00 EDT, 01:00 EST, 02:00 EST are due.
    result = due_fire(s, utc(2026, 11, 1, 4), utc(2026, 11, 1, 7, 30))
    assert result == (utc(2026, 11, 1, 7), 3, utc(2026, 11, 1, 8))


def test_due_fire_long_outage_is_bounded() -> None:
    s = sched("* * * * *")
    started = time.thread_time()  # CPU time: the walk's length, not the machine's load
    result = due_fire(s, utc(2023, 1, 15, 12, 0), utc(2026, 1, 15, 12, 0, 30))
    elapsed = time.thread_time() - started
    assert result == (utc(2026, 1, 15, 12, 0), MAX_COUNTED_SKIPS, utc(2026, 1, 15, 12, 1))
    assert elapsed < 10  # ~10k croniter steps, not 1.5M


def test_due_fire_long_outage_sparse_latest_slot() -> None:
    s = sched("CRON_TZ=Europe/Berlin 0 3 1 * *")
    # Only ~36 slots: counted exactly.
    result = due_fire(s, utc(2023, 1, 1, 2), utc(2026, 1, 15, 12))
    assert result == (utc(2026, 1, 1, 2), 36, utc(2026, 2, 1, 2))


def test_due_fire_just_over_cap_counts_exactly_up_to_cap() -> None:
    s = sched("* * * * *")
    start = utc(2026, 1, 1)
    exact = due_fire(s, start, start + timedelta(minutes=MAX_COUNTED_SKIPS))
    assert exact == (
        start + timedelta(minutes=MAX_COUNTED_SKIPS),
        MAX_COUNTED_SKIPS,
        start + timedelta(minutes=MAX_COUNTED_SKIPS + 1),
    )
    over = due_fire(s, start, start + timedelta(minutes=MAX_COUNTED_SKIPS + 5, seconds=7))
    assert over == (
        start + timedelta(minutes=MAX_COUNTED_SKIPS + 5),
        MAX_COUNTED_SKIPS,
        start + timedelta(minutes=MAX_COUNTED_SKIPS + 6),
    )


def test_restricted_day_of_month_and_day_of_week_are_ored() -> None:
    """Cron's rule: with both day fields restricted, either one matching fires."""
    start = datetime(2026, 11, 22, tzinfo=UTC)  # a Sunday
    schedule = parse_schedule("0 9 1,15 * 5", start)
    fires = []
    at = start
    for _ in range(6):
        at = next_fire_after(schedule, at)
        fires.append(at)
    assert [f.day for f in fires] == [27, 1, 4, 11, 15, 18]
    assert all(f.day in (1, 15) or f.weekday() == 4 for f in fires)
