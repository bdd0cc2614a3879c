"""Concurrent dispatch ticks against real PostgreSQL never double-fire (no leader needed)."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from shared.cron.dispatch import dispatch_due
from shared.infra.clock import FrozenClock
from shared.infra.db.engine import make_engine, make_session_factory
from shared.models import AutomationEvent
from tests.cron.helpers import Collector, cron, units

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
TRIGGERS = 240
SCHEDULES = ("* * * * *", "*/2 * * * *", "CRON_TZ=Europe/Berlin * * * * *", "0-59/3 * * * *")


@pytest.fixture
def engine(pg_committed: str) -> Iterator[Engine]:
    engine = make_engine(pg_committed, pool_size=20, max_overflow=10)
    yield engine
    engine.dispose()


def _seed(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    with factory() as session:
        for i in range(TRIGGERS):
            cron(session, clock, SCHEDULES[i % len(SCHEDULES)])
        session.commit()


def _fires(factory: sessionmaker[Session]) -> list[tuple[str, str]]:
    with factory() as session:
        rows = session.execute(select(AutomationEvent.trigger_id, AutomationEvent.delivery_id))
        return [(str(t), str(d)) for t, d in rows]


def test_concurrent_ticks_in_threads_never_double_fire(engine: Engine) -> None:
    factory = make_session_factory(engine)
    clock = FrozenClock(T0)
    _seed(factory, clock)
    threads_n = 8
    published: list[str] = []
    lock = threading.Lock()

    for minute in range(1, 6):  # five rounds, each with every thread ticking at once
        clock.set(T0 + timedelta(minutes=minute, seconds=1))
        barrier = threading.Barrier(threads_n)
        errors: list[BaseException] = []

        def tick(
            barrier: threading.Barrier = barrier, errors: list[BaseException] = errors
        ) -> None:
            collect = Collector()
            try:
                barrier.wait()
                # small batches so the threads really interleave on the same triggers
                dispatch_due(units(engine, collect), clock, 7)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            with lock:
                published.extend(collect.published)

        threads = [threading.Thread(target=tick) for _ in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors

    fires = _fires(factory)
    assert len(fires) == len(set(fires)), "a (trigger, scheduled time) fired twice"
    # every schedule fires for every due slot exactly once: ticks at 12:01 … 12:05
    per_trigger = Counter(t for t, _ in fires)
    expected = {"* * * * *": 5, "*/2 * * * *": 2, "0-59/3 * * * *": 1}
    expected["CRON_TZ=Europe/Berlin * * * * *"] = 5
    assert sum(per_trigger.values()) == sum(
        expected[SCHEDULES[i % len(SCHEDULES)]] for i in range(TRIGGERS)
    )
    assert len(published) == len(fires)
    assert len(set(published)) == len(published), "an event was published twice"


def _dispatch_in_process(url: str, now_iso: str, start: Any, results: Any) -> None:
    engine = make_engine(url, pool_size=4)
    clock = FrozenClock(datetime.fromisoformat(now_iso))
    ids: list[str] = []
    start.wait(60)
    for _ in range(3):  # each process ticks repeatedly, as two beats would
        ids += dispatch_due(units(engine), clock, 5)
    engine.dispose()
    results.put(ids)


def test_concurrent_ticks_in_separate_processes_never_double_fire(
    engine: Engine, pg_committed: str
) -> None:
    factory = make_session_factory(engine)
    clock = FrozenClock(T0)
    _seed(factory, clock)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    now = (T0 + timedelta(minutes=3, seconds=3)).isoformat()
    procs = [
        ctx.Process(target=_dispatch_in_process, args=(pg_committed, now, start, results))
        for _ in range(3)
    ]
    for p in procs:
        p.start()
    start.set()
    returned = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    all_ids = [i for ids in returned for i in ids]
    assert len(all_ids) == len(set(all_ids))
    fires = _fires(factory)
    assert len(fires) == TRIGGERS == len(all_ids)  # each trigger once, at its latest slot
    assert len({t for t, _ in fires}) == TRIGGERS
    assert sum(1 for ids in returned if ids) >= 1
