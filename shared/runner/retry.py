"""The retry policy of a chat turn (SPEC 9 "Retry").

Attempt ``n`` (1-based: the attempt that just failed) waits ``max(backoff, retry_after)``
where ``backoff = min(2**(n-1) s, 60 s) × U[0.8, 1.0]`` and ``retry_after`` is what the
provider asked for (``retry-after-ms``, else ``retry-after`` in seconds, else ``retry-after``
as an HTTP date). The provider's hint is a floor: we never retry earlier than it asked, and
never faster than our own backoff curve. A provider asking for more than
``max_retry_after_seconds`` ends the turn with a non-retryable error saying so; at most
``max_attempts`` attempts run per turn.

Everything here is pure: the clock (``now``) and the random source (``rng``) are injected, and
:func:`decide` only says what to do. The runner applies it by putting the chat back to
``pending`` with ``retry_at`` (waiting holds no worker slot).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from shared.runner.errors import ChatError

__all__ = [
    "BACKOFF_CAP_SECONDS",
    "JITTER_MIN",
    "MAX_ATTEMPTS",
    "MAX_RETRY_AFTER_SECONDS",
    "GiveUp",
    "RandomSource",
    "Retry",
    "RetryDecision",
    "backoff_seconds",
    "decide",
    "parse_retry_after",
]

#: defaults of the model config's retry knobs (SPEC 9)
MAX_ATTEMPTS = 10
MAX_RETRY_AFTER_SECONDS = 600.0
BACKOFF_CAP_SECONDS = 60.0
#: the random factor is drawn from [JITTER_MIN, 1.0]
JITTER_MIN = 0.8


class RandomSource(Protocol):
    """What :func:`decide` needs of a random generator (``random.Random`` satisfies it)."""

    def uniform(self, a: float, b: float) -> float: ...


_default_rng = random.Random()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, case-insensitively (``httpx`` headers already are; plain dicts not)."""
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == name:
                return candidate
    return value


def _finite_non_negative(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if math.isnan(value) or math.isinf(value) or value < 0:
        return None
    return value


def parse_retry_after(headers: Mapping[str, str] | None, now: datetime) -> float | None:
    """Seconds the provider asked us to wait, or None when it asked nothing usable.

    Precedence: ``retry-after-ms`` (float milliseconds; OpenAI-specific), else ``retry-after``
    as a number of seconds (integer or float), else ``retry-after`` as an HTTP date, relative
    to ``now``. Garbage, negative, non-finite values and dates in the past are ignored (a form
    that is garbage does not hide a later, valid form).
    """
    if not headers:
        return None
    raw_ms = _header(headers, "retry-after-ms")
    if raw_ms is not None:
        ms = _finite_non_negative(raw_ms)
        if ms is not None:
            return ms / 1000.0
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    seconds = _finite_non_negative(raw)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no claim about the local zone
        when = when.replace(tzinfo=UTC)
    delta = (when - now).total_seconds()
    return delta if delta >= 0 else None


def backoff_seconds(attempt: int, rng: RandomSource | None = None) -> float:
    """``min(2**(attempt-1), 60)`` seconds times a random factor in [0.8, 1.0]."""
    exponent = max(attempt, 1) - 1
    base = BACKOFF_CAP_SECONDS if exponent >= 6 else min(2.0**exponent, BACKOFF_CAP_SECONDS)
    factor = (rng or _default_rng).uniform(JITTER_MIN, 1.0)
    return base * min(max(factor, JITTER_MIN), 1.0)


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again at ``retrying_at``; ``retry`` is the dict shown on the chat and streamed.

    ``attempt`` is the number of the attempt that failed; the next one is ``attempt + 1``.
    """

    attempt: int
    error: ChatError
    delay_ms: int
    retrying_at: datetime

    @property
    def retry(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "kind": self.error.kind,
            "delay_ms": self.delay_ms,
            "retrying_at": self.retrying_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The turn ends for good with ``error`` (stored as the chat's ``last_error``)."""

    error: ChatError


RetryDecision = Retry | GiveUp


def decide(
    attempt: int,
    error: ChatError,
    now: datetime,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    max_retry_after_seconds: float = MAX_RETRY_AFTER_SECONDS,
    rng: RandomSource | None = None,
) -> RetryDecision:
    """What to do after attempt number ``attempt`` (1-based) failed with ``error``."""
    if not error.retryable:
        return GiveUp(error)
    retry_after = error.retry_after_seconds
    if retry_after is not None and retry_after > max_retry_after_seconds:
        return GiveUp(
            replace(
                error,
                retryable=False,
                message=(
                    f"{error.message} The provider asked to retry after {retry_after:.0f} s, "
                    f"more than the limit of {max_retry_after_seconds:.0f} s; giving up."
                ),
            )
        )
    if attempt >= max_attempts:
        return GiveUp(replace(error, message=f"{error.message} Gave up after {attempt} attempts."))
    delay = max(backoff_seconds(attempt, rng), retry_after or 0.0)
    delay_ms = math.ceil(delay * 1000)
    return Retry(
        attempt=attempt,
        error=error,
        delay_ms=delay_ms,
        retrying_at=now + timedelta(milliseconds=delay_ms),
    )
