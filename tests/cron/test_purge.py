"""Retention purge: exactly the expired rows, oldest first, in batches, one run at a time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from shared.events.retention import purge_expired_events, purge_guard
from shared.infra.clock import FrozenClock
from shared.infra.db import migrate
from shared.infra.db.engine import make_engine
from shared.models import AutomationEvent, EventStatus
from tests import factories

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=7)


@pytest.fixture(params=["postgres", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "postgres":
        url = request.getfixturevalue("pg_committed")
    else:
        url = f"sqlite:///{tmp_path / 'purge.db'}"
        migrate.upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _seed(engine: Engine) -> tuple[set[str], list[str]]:
    """23 expired events (5 of them bad-signature errors) and 11 kept; returns (kept, expired
    oldest first)."""
    clock = FrozenClock(NOW)
    with Session(engine) as session:
        auto = factories.automation(session, clock)
        hook = factories.webhook_trigger(session, clock, auto)
        expired: list[tuple[datetime, str]] = []
        kept: set[str] = set()
        for i in range(23):
            received = CUTOFF - timedelta(hours=1 + 7 * i)
            bad_signature = i % 5 == 0
            event = factories.event(
                session,
                clock,
                auto,
                trigger_id=hook.id,
                received_at=received,
                status=EventStatus.ERROR if bad_signature else EventStatus.FILTERED,
                error="signature verification failed" if bad_signature else None,
                occurrences=40 if bad_signature else 1,
            )
            expired.append((received, str(event.id)))
        for i in range(10):
            event = factories.event(
                session, clock, auto, received_at=NOW - timedelta(days=i % 7, minutes=i)
            )
            kept.add(str(event.id))
        # exactly at the cutoff is not older than the retention period: kept
        kept.add(str(factories.event(session, clock, auto, received_at=CUTOFF).id))
        session.commit()
    return kept, [i for _, i in sorted(expired)]


def _remaining(engine: Engine) -> set[str]:
    with Session(engine) as session:
        return {str(i) for i in session.scalars(select(AutomationEvent.id))}


def test_purge_deletes_exactly_the_expired_rows_in_batches(engine: Engine) -> None:
    kept, _ = _seed(engine)
    pauses: list[float] = []
    result = purge_expired_events(
        engine, FrozenClock(NOW), 7, batch_size=5, pause_seconds=0.25, sleep=pauses.append
    )
    assert result.ran and result.complete
    assert result.cutoff == CUTOFF
    assert result.deleted == 23
    assert result.batches == 5  # 5 + 5 + 5 + 5 + 3
    assert pauses == [0.25] * 4  # a pause between batches, none after the last
    assert result.deleted_by_status == {"error": 5, "filtered": 18}
    assert result.longest_batch_seconds > 0  # measured (its target lives in bench/purge.py)
    assert _remaining(engine) == kept
    again = purge_expired_events(engine, FrozenClock(NOW), 7, batch_size=5, sleep=pauses.append)
    assert (again.deleted, again.batches) == (0, 1)


def test_purge_goes_oldest_first_and_can_stop_early(engine: Engine) -> None:
    kept, expired = _seed(engine)
    result = purge_expired_events(
        engine, FrozenClock(NOW), 7, batch_size=4, max_batches=2, sleep=lambda _: None
    )
    assert (result.deleted, result.batches, result.complete) == (8, 2, False)
    assert _remaining(engine) == kept | set(expired[8:])
    rest = purge_expired_events(engine, FrozenClock(NOW), 7, batch_size=4, sleep=lambda _: None)
    assert rest.deleted == 15
    assert _remaining(engine) == kept


def test_only_one_purge_runs_at_a_time(engine: Engine) -> None:
    kept, _ = _seed(engine)
    # another purge holds the guard: this one returns at once without deleting anything
    with engine.connect() as other, purge_guard(other) as acquired:
        assert acquired
        skipped = purge_expired_events(engine, FrozenClock(NOW), 7, batch_size=5)
        assert not skipped.ran and skipped.deleted == 0
    assert len(_remaining(engine)) == 34

    # two purges started together: the second finds the first mid-run (paused between batches)
    in_pause = threading.Event()
    release = threading.Event()
    first: list[int] = []

    def pause(_: float) -> None:
        in_pause.set()
        release.wait(30)

    runner = threading.Thread(
        target=lambda: first.append(
            purge_expired_events(engine, FrozenClock(NOW), 7, batch_size=5, sleep=pause).deleted
        )
    )
    runner.start()
    assert in_pause.wait(30)
    second = purge_expired_events(engine, FrozenClock(NOW), 7, batch_size=5)
    release.set()
    runner.join(30)
    assert not second.ran
    assert first == [23]
    assert _remaining(engine) == kept
    # the guard is released afterwards
    assert purge_expired_events(engine, FrozenClock(NOW), 7).ran
