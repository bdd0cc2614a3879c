"""Cron schedules: parsing, next fire time and misfire coalescing, DST-correct.

Syntax: five standard fields (minute hour day-of-month month day-of-week) made of numbers,
month/day names, ``*``, ``,``, ``-`` and ``/``; day-of-month and day-of-week combine with OR
as in Vixie cron when both are restricted. croniter extensions (seconds/year fields, ``L``,
``W``, ``#``, ``?``, ``H``) are rejected. The macros ``@yearly``/``@annually``, ``@monthly``,
``@weekly``, ``@daily``/``@midnight`` and ``@hourly`` are accepted and stored expanded;
``@reboot`` is rejected. An optional ``CRON_TZ=<IANA zone> `` (or ``TZ=<zone> ``) prefix sets
the zone the fields are read in; the default is UTC.

Daylight-saving time (the Vixie cron rules):

* A schedule whose hour field is restricted (``30 1 * * *``, ``0 9-17 * * *``, ``0 */2 * * *``)
  follows the wall clock: every matching local time fires exactly once. A time repeated by a
  fall-back fires at its first occurrence only; a time skipped by a spring-forward fires at the
  first instant after the gap (``30 2 * * *`` in New York on 2026-03-08 fires at 03:00 EDT), and
  several skipped times collapse into that single fire.
* A schedule whose hour field is ``*`` (every hour) follows real elapsed time: it fires at every
  instant whose local wall-clock time matches, so during a fall-back the repeated hour fires
  twice (``0 * * * *`` fires at 01:00 EDT and again at 01:00 EST), and the hour skipped by a
  spring-forward does not fire at all (the schedule still fires at the following hours).

croniter (6.2.4) is only used to enumerate matching *naive* local wall-clock times; the mapping
to UTC instants is done here with zoneinfo fold rules, because croniter's own aware-datetime
handling fires fixed-hour schedules twice on a fall-back (``30 1 * * *`` fires at both 05:30Z and
06:30Z on 2026-11-01 in America/New_York).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

__all__ = [
    "MAX_COUNTED_SKIPS",
    "MAX_SCHEDULE_LENGTH",
    "NEVER_FIRES_HORIZON_YEARS",
    "Schedule",
    "ScheduleError",
    "due_fire",
    "next_fire_after",
    "parse_schedule",
    "to_rfc3339",
]

MAX_COUNTED_SKIPS = 10_000
#: Longer schedule texts are refused before parsing (a 100k-character field list took 1.2 s).
MAX_SCHEDULE_LENGTH = 1024
NEVER_FIRES_HORIZON_YEARS = 5

_FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
_MONTH_NAMES = frozenset(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
)
_DOW_NAMES = frozenset(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])
_NUMERIC_FIELD = re.compile(r"[0-9*,/-]+")
_NAMED_FIELD = re.compile(r"[0-9A-Za-z*,/-]+")
_WORD = re.compile(r"[A-Za-z]+")
_TZ_PREFIX = re.compile(r"(CRON_TZ|TZ)=(\S*)(?:\s+(.*))?", re.DOTALL)
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ScheduleError(ValueError):
    """The schedule text is not usable; the message says what is wrong."""


@dataclass(frozen=True)
class Schedule:
    expression: str  # the five fields, single-space separated (macros expanded)
    tz: ZoneInfo
    source: str  # the text as given


def parse_schedule(text: str, now: datetime | None = None) -> Schedule:
    """Parse and validate ``text``; ``now`` (default: current time) anchors the 5-year check."""
    source = text
    if len(text) > MAX_SCHEDULE_LENGTH:
        raise ScheduleError(f"schedule is longer than {MAX_SCHEDULE_LENGTH} characters")
    text = text.strip()
    if not text:
        raise ScheduleError("schedule is empty")
    tz = ZoneInfo("UTC")
    prefix = _TZ_PREFIX.fullmatch(text)
    if prefix is not None:
        variable, zone_name, rest = prefix.group(1), prefix.group(2), prefix.group(3)
        tz = _load_zone(zone_name, variable)
        if not rest or not rest.strip():
            raise ScheduleError(f"missing cron expression after {variable}={zone_name}")
        text = rest.strip()
    elif "=" in text.split(None, 1)[0]:
        name = text.split("=", 1)[0]
        raise ScheduleError(
            f"unsupported prefix '{name}='; only CRON_TZ=<zone> or TZ=<zone> may precede the fields"
        )

    if text.startswith("@"):
        macro = text.lower()
        if macro == "@reboot":
            raise ScheduleError("@reboot is not supported; use a 5-field cron expression")
        if macro not in _MACROS:
            raise ScheduleError(f"unknown macro '{text}'; supported: {', '.join(sorted(_MACROS))}")
        expression = _MACROS[macro]
    else:
        expression = _validate_fields(text)

    try:
        croniter.expand(expression)
    except CroniterError as exc:
        raise ScheduleError(f"invalid cron expression '{expression}': {exc}") from None

    schedule = Schedule(expression=expression, tz=tz, source=source)
    start = _as_utc(now, "now") if now is not None else datetime.now(UTC)
    first = next(_iter_fires(schedule, start), None)
    if first is None or first > _add_years(start, NEVER_FIRES_HORIZON_YEARS):
        raise ScheduleError(
            f"schedule never fires within the next {NEVER_FIRES_HORIZON_YEARS} years"
        )
    return schedule


class _DayOrWalker:
    """Cron fires when day-of-month OR day-of-week matches if both are restricted. croniter
    gives up ("failed to find next date") when one side can never match (``0 0 30 2 1``: no
    Feb 30, but every Monday in February), so each side is walked on its own and merged."""

    def __init__(self, expression: str, start: datetime) -> None:
        minute, hour, dom, month, dow = expression.split()
        self._walkers = [
            croniter(f"{minute} {hour} {dom} {month} *", start),
            croniter(f"{minute} {hour} * {month} {dow}", start),
        ]
        self._heads = [self._advance(w) for w in self._walkers]

    @staticmethod
    def _advance(walker: croniter) -> datetime | None:
        try:
            return walker.get_next(datetime)  # type: ignore[no-any-return]
        except CroniterBadDateError:
            return None

    def get_next(self, _ret_type: type[datetime]) -> datetime:
        heads = [h for h in self._heads if h is not None]
        if not heads:
            raise CroniterBadDateError("failed to find next date")
        nxt = min(heads)
        for i, head in enumerate(self._heads):
            if head == nxt:
                self._heads[i] = self._advance(self._walkers[i])
        return nxt


def _walker(expression: str, start: datetime) -> croniter | _DayOrWalker:
    fields = expression.split()
    if fields[2] != "*" and fields[4] != "*":
        return _DayOrWalker(expression, start)
    return croniter(expression, start)


def next_fire_after(schedule: Schedule, after_utc: datetime) -> datetime:
    """First fire time strictly after ``after_utc`` (aware), as an aware UTC datetime."""
    fire = next(_iter_fires(schedule, _as_utc(after_utc, "after_utc")), None)
    if fire is None:
        raise ScheduleError(f"schedule '{schedule.source}' has no further fire time")
    return fire


def due_fire(
    schedule: Schedule, next_fire_at: datetime, now: datetime
) -> tuple[datetime, int, datetime] | None:
    """Coalesce every slot from ``next_fire_at`` (itself a slot) up to ``now`` into one fire.

    Returns None when ``next_fire_at > now``; otherwise ``(scheduled_at, skipped, new_next)``:
    ``scheduled_at`` is the latest slot <= ``now``, ``skipped`` the number of slots in
    ``[next_fire_at, scheduled_at)`` that are dropped, ``new_next`` the first slot strictly
    after ``now``.

    The work is bounded: slots are counted one by one up to ``MAX_COUNTED_SKIPS``. If more are
    due, counting stops, ``skipped`` is reported as exactly ``MAX_COUNTED_SKIPS`` (read it as
    "at least that many") and the latest slot is found by scanning forward through growing
    windows that end at ``now``, so a 3-year outage of ``* * * * *`` costs about 10k steps,
    not 1.5M. (croniter's ``get_prev`` is not used: its aware-datetime DST handling differs
    from the rules above.)
    """
    next_fire_at = _as_utc(next_fire_at, "next_fire_at")
    now = _as_utc(now, "now")
    if next_fire_at > now:
        return None
    scheduled_at = next_fire_at
    skipped = 0
    for fire in _iter_fires(schedule, next_fire_at):
        if fire > now:
            break
        if skipped >= MAX_COUNTED_SKIPS:
            scheduled_at = _latest_fire_at_or_before(schedule, now, floor=fire)
            break
        scheduled_at = fire
        skipped += 1
    return scheduled_at, skipped, next_fire_after(schedule, now)


def to_rfc3339(dt: datetime) -> str:
    """UTC timestamp like ``2026-11-22T02:00:00Z`` (microseconds only when non-zero)."""
    utc = _as_utc(dt, "dt")
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


# --- parsing helpers ---------------------------------------------------------------------


def _load_zone(name: str, variable: str) -> ZoneInfo:
    if not name:
        raise ScheduleError(f"empty time zone in {variable}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"unknown time zone '{name}' in {variable}") from None


def _validate_fields(text: str) -> str:
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    for index, field in enumerate(fields):
        named = index >= 3
        pattern = _NAMED_FIELD if named else _NUMERIC_FIELD
        words = _WORD.findall(field) if named else []
        allowed_words = _MONTH_NAMES if index == 3 else _DOW_NAMES
        if not pattern.fullmatch(field) or any(w.lower() not in allowed_words for w in words):
            allowed = "numbers, names, " if named else "numbers, "
            raise ScheduleError(
                f"unsupported value '{field}' in the {_FIELD_NAMES[index]} field "
                f"(allowed: {allowed}'*', ',', '-' and '/')"
            )
    return " ".join(fields)


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, day=28)


def _as_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return moment.astimezone(UTC)


# --- fire-time computation -----------------------------------------------------------------


@lru_cache(maxsize=1024)
def _follows_real_time(expression: str) -> bool:
    """True when the hour field matches every hour (see the module docstring)."""
    hours = croniter.expand(expression)[0][1]
    return hours == ["*"] or len(set(hours)) == 24


def _transition_instant(before: datetime, after: datetime, tz: ZoneInfo) -> datetime:
    """First UTC second in ``(before, after]`` whose offset in ``tz`` equals ``after``'s."""
    target = after.astimezone(tz).utcoffset()
    lo, hi = before, after  # invariant: offset(lo) != target, offset(hi) == target
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            mid = lo + timedelta(seconds=1)
        if mid.astimezone(tz).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return hi


def _resolve(wall: datetime, tz: ZoneInfo) -> tuple[datetime, datetime | None, bool]:
    """Map a naive local time to ``(first_instant, second_instant_or_None, in_gap)`` in UTC.

    For a time inside a spring-forward gap, ``first_instant`` is the end of the gap.
    """
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return first, None, False
    if first.astimezone(tz).replace(tzinfo=None) != wall:
        # Non-existent time: fold=0 uses the offset from before the gap (an instant after it),
        # fold=1 the offset from after it (an instant before it).
        return _transition_instant(second, first, tz), None, True
    return min(first, second), max(first, second), False


def _iter_fires(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """Fire instants (aware UTC) strictly after ``after``, in increasing order, no duplicates.

    Walks matching naive local times with croniter and maps each to UTC. The mapping of a
    time's first instant is non-decreasing, so it bounds everything still to come; the only
    out-of-order candidates (second occurrences in a fall-back, real-time schedules only) are
    buffered in a heap until that bound passes them.
    """
    tz = schedule.tz
    real_time = _follows_real_time(schedule.expression)
    local_after = after.astimezone(tz)
    start = local_after.replace(tzinfo=None)
    if real_time and local_after.fold == 0:
        # `after` in the first pass of a repeated hour: second occurrences of earlier wall
        # times are still in the future.
        first_offset = local_after.utcoffset()
        second_offset = local_after.replace(fold=1).utcoffset()
        if first_offset is not None and second_offset is not None:
            start -= max(first_offset - second_offset, timedelta(0))

    walker = _walker(schedule.expression, start)
    pending: list[datetime] = []
    last: datetime | None = None
    while True:
        try:
            wall: datetime = walker.get_next(datetime)
        except CroniterBadDateError:
            break
        first, second, in_gap = _resolve(wall, tz)
        if not (in_gap and real_time) and first > after:
            heapq.heappush(pending, first)
        if second is not None and real_time and second > after:
            heapq.heappush(pending, second)
        while pending and pending[0] <= first:
            fire = heapq.heappop(pending)
            if last is None or fire > last:
                last = fire
                yield fire
    while pending:
        fire = heapq.heappop(pending)
        if last is None or fire > last:
            last = fire
            yield fire


# Growing windows ending at `now`; None means "from the floor" (rarely reached: every valid
# schedule fires at least every few years).
_LOOKBACK_WINDOWS: tuple[timedelta | None, ...] = (
    timedelta(minutes=2),
    timedelta(hours=2),
    timedelta(days=2),
    timedelta(days=32),
    timedelta(days=367),
    timedelta(days=367 * 5),
    None,
)


def _latest_fire_at_or_before(schedule: Schedule, now: datetime, floor: datetime) -> datetime:
    """Latest fire <= ``now``, given that ``floor`` is one."""
    for window in _LOOKBACK_WINDOWS:
        start = floor if window is None else max(now - window, floor)
        latest = floor
        for fire in _iter_fires(schedule, start):
            if fire > now:
                break
            latest = fire
        if latest > floor or start == floor:
            return latest
    return floor
