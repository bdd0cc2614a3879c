"""SPEC 9 "Retry": Retry-After parsing, backoff, and the decision."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.runner.errors import ChatError
from shared.runner.retry import (
    GiveUp,
    Retry,
    backoff_seconds,
    decide,
    parse_retry_after,
)

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


class Fixed:
    """A random source that always answers ``value`` (clamped into the asked range)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def uniform(self, a: float, b: float) -> float:
        return min(max(self.value, a), b)


LOW, HIGH = Fixed(0.0), Fixed(1.0)  # factor 0.8 and 1.0


def rate_limited(retry_after: float | None = None) -> ChatError:
    return ChatError("rate limited", "rate_limit", "openai", True, 429, None, retry_after)


# --- parse_retry_after -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250.5"}, 0.2505),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "Fri, 01 May 2026 12:01:00 GMT"}, 60.0),
        ({"retry-after": "Fri, 01 May 2026 12:00:10 -0000"}, 10.0),  # naive: taken as UTC
        # precedence: ms first, then seconds, then a date
        ({"retry-after-ms": "500", "retry-after": "30"}, 0.5),
        ({"Retry-After-Ms": "500", "Retry-After": "30"}, 0.5),  # names are case-insensitive
        # garbage, negative or non-finite values are ignored; a bad ms falls back to retry-after
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "-100", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "nan", "retry-after": "3"}, 3.0),
        ({"retry-after": "-5"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "tomorrow-ish"}, None),
        ({"retry-after": "Fri, 01 May 2026 11:59:00 GMT"}, None),  # in the past
        ({"retry-after": ""}, None),
        ({}, None),
        (None, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str] | None, expected: float | None) -> None:
    assert parse_retry_after(headers, NOW) == expected


# --- backoff ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "base"), [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (8, 60), (10_000, 60)]
)
def test_backoff_doubles_up_to_a_minute_with_jitter(attempt: int, base: float) -> None:
    assert backoff_seconds(attempt, LOW) == pytest.approx(0.8 * base)
    assert backoff_seconds(attempt, HIGH) == pytest.approx(base)


# --- decide ----------------------------------------------------------------------------------


def test_a_retryable_error_is_retried_after_the_backoff() -> None:
    decision = decide(1, rate_limited(), NOW, rng=HIGH)
    assert isinstance(decision, Retry)
    assert decision.delay_ms == 1000
    assert decision.retrying_at == NOW + timedelta(seconds=1)
    assert decision.retry == {
        "attempt": 1,
        "kind": "rate_limit",
        "delay_ms": 1000,
        "retrying_at": "2026-05-01T12:00:01+00:00",
    }


def test_never_earlier_than_the_provider_asked() -> None:
    decision = decide(1, rate_limited(retry_after=30), NOW, rng=HIGH)
    assert isinstance(decision, Retry) and decision.delay_ms == 30_000
    # a shorter hint keeps our own backoff
    decision = decide(4, rate_limited(retry_after=0.5), NOW, rng=HIGH)
    assert isinstance(decision, Retry) and decision.delay_ms == 8_000


def test_a_non_retryable_error_gives_up_unchanged() -> None:
    error = ChatError("bad key", "auth", "openai", False, 401)
    assert decide(1, error, NOW) == GiveUp(error)


def test_asking_for_more_than_the_cap_ends_the_turn() -> None:
    decision = decide(1, rate_limited(retry_after=601), NOW, rng=HIGH)
    assert isinstance(decision, GiveUp)
    assert decision.error.retryable is False
    assert decision.error.kind == "rate_limit"
    assert "601 s" in decision.error.message and "600 s" in decision.error.message
    # exactly the cap is still honoured, and the cap is configurable
    assert isinstance(decide(1, rate_limited(retry_after=600), NOW), Retry)
    assert isinstance(
        decide(1, rate_limited(retry_after=61), NOW, max_retry_after_seconds=60), GiveUp
    )


def test_attempts_are_bounded() -> None:
    assert isinstance(decide(9, rate_limited(), NOW), Retry)
    exhausted = decide(10, rate_limited(), NOW)
    assert isinstance(exhausted, GiveUp)
    assert exhausted.error.kind == "rate_limit"
    assert "10 attempts" in exhausted.error.message
    assert isinstance(decide(3, rate_limited(), NOW, max_attempts=3), GiveUp)
    assert isinstance(decide(1, rate_limited(), NOW, max_attempts=1), GiveUp)


def test_the_default_random_source_stays_in_range() -> None:
    for _ in range(200):
        decision = decide(3, rate_limited(), NOW)
        assert isinstance(decision, Retry)
        assert 3200 <= decision.delay_ms <= 4000


@given(
    attempt=st.integers(min_value=1, max_value=9),
    retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=600)),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_is_never_below_retry_after_nor_below_the_jittered_backoff(
    attempt: int, retry_after: float | None, seed: int
) -> None:
    decision = decide(attempt, rate_limited(retry_after), NOW, rng=random.Random(seed))
    assert isinstance(decision, Retry)
    delay = decision.delay_ms / 1000
    assert delay >= (retry_after or 0.0)
    assert delay >= 0.8 * min(2 ** (attempt - 1), 60)
    assert delay <= max(retry_after or 0.0, min(2 ** (attempt - 1), 60)) + 0.001
    assert decision.retrying_at == NOW + timedelta(milliseconds=decision.delay_ms)


@given(attempt=st.integers(min_value=1, max_value=10**6), value=st.floats(0, 1))
def test_backoff_is_bounded_for_any_attempt(attempt: int, value: float) -> None:
    assert 0.8 <= backoff_seconds(attempt, Fixed(value)) <= 60


def test_the_retry_after_hint_is_not_compared() -> None:
    """Two errors that differ only in the provider's hint are the same stored error."""
    assert rate_limited(1) == replace(rate_limited(2))
