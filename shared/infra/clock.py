"""Injectable clocks. Application code takes a ``Clock`` and never calls ``datetime.now``."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to; for tests and benchmarks."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when.astimezone(UTC)

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


class OffsetClock:
    """The system clock shifted by a fixed number of seconds.

    Every process of a deployment built with the same ``AUTOMATIONS_CLOCK_OFFSET_SECONDS``
    agrees on the shifted time: the fault scenarios use it to start a few seconds before a
    minute boundary instead of waiting for one. Production keeps the offset at 0.
    """

    def __init__(self, seconds: float) -> None:
        self.offset = timedelta(seconds=seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


system_clock = SystemClock()


def clock_with_offset(seconds: float) -> Clock:
    """The system clock, shifted by ``seconds`` when that is not 0."""
    return OffsetClock(seconds) if seconds else system_clock
