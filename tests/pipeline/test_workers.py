"""The pipeline under real concurrency: threads on PostgreSQL, and a real Celery worker pool
(prefork, 4 processes) on Redis + PostgreSQL, including a SIGKILLed worker."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.events.backends import open_store
from shared.events.options import PipelineOptions
from shared.events.pipeline import process_event
from shared.events.sweeper import sweep_pending
from shared.infra.broker import producer_app
from shared.infra.clock import FrozenClock, system_clock
from shared.infra.config import Settings
from shared.infra.db.engine import make_engine, make_session_factory
from shared.infra.queues import PROCESS_EVENT, QUEUE_EVENTS
from shared.models import AutomationEvent, Chat, ChatMessage, EventStatus
from tests import factories as f
from tests.harness.processes import Proc, service_env, start_worker
from tests.pipeline.helpers import wait_until

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def engine(pg_committed: str) -> Iterator[Engine]:
    eng = make_engine(pg_committed, pool_size=10, max_overflow=10)
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def _seed(
    factory: sessionmaker[Session],
    n: int,
    labels: Any,
    **automation_kw: Any,
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """One active automation with a webhook trigger and ``n`` committed pending events;
    ``labels(i)`` is event i's ``key`` (the trigger's only label path)."""
    clock = FrozenClock(datetime.now(UTC))
    with factory.begin() as s:
        auto = f.automation(s, clock, **automation_kw)
        trig = f.webhook_trigger(s, clock, auto, label_paths={"key": "key"})
        ids = [
            f.event(s, clock, auto, trigger_id=trig.id, payload={"key": labels(i), "i": i}).id
            for i in range(n)
        ]
        return auto.id, ids


def _statuses(factory: sessionmaker[Session], automation_id: uuid.UUID) -> dict[str, int]:
    with factory() as s:
        rows = s.execute(
            select(AutomationEvent.status, func.count())
            .where(AutomationEvent.automation_id == automation_id)
            .group_by(AutomationEvent.status)
        ).all()
    return {str(status): int(n) for status, n in rows}


def _none_pending(factory: sessionmaker[Session], automation_id: uuid.UUID) -> dict[str, int]:
    counts = _statuses(factory, automation_id)
    return counts if "pending" not in counts else {}


def _assert_applied_once(factory: sessionmaker[Session], automation_id: uuid.UUID) -> None:
    """Every created/continued event has exactly one message; no other event has any; every
    chat of the automation was created by exactly one event."""
    with factory() as s:
        per_event: dict[uuid.UUID | None, int] = {
            event_id: int(n)
            for event_id, n in s.execute(
                select(ChatMessage.event_id, func.count()).group_by(ChatMessage.event_id)
            ).all()
        }
        rows = s.execute(
            select(
                AutomationEvent.id, AutomationEvent.status, AutomationEvent.created_chat_id
            ).where(AutomationEvent.automation_id == automation_id)
        ).all()
        chats = set(s.scalars(select(Chat.id).where(Chat.automation_id == automation_id)))
    for event_id, status, _ in rows:
        expected = 1 if status in (EventStatus.CREATED, EventStatus.CONTINUED) else 0
        assert per_event.get(event_id, 0) == expected, (event_id, status)
    created = [chat for _, status, chat in rows if status == EventStatus.CREATED]
    assert sorted(created) == sorted(chats)


# --- in-process threads ----------------------------------------------------------------


def test_two_workers_racing_on_one_event_apply_it_once(
    factory: sessionmaker[Session],
) -> None:
    def work(event_id: uuid.UUID, barrier: threading.Barrier, applied: list[bool]) -> None:
        barrier.wait()
        with factory.begin() as s:
            outcome = process_event(
                open_store(s.connection(), PipelineOptions()),
                system_clock,
                event_id,
                PipelineOptions(),
            )
        applied.append(outcome.applied)

    for _ in range(5):
        automation_id, (event_id,) = _seed(factory, 1, lambda i: "same")
        barrier = threading.Barrier(4)
        applied: list[bool] = []
        threads = [
            threading.Thread(target=work, args=(event_id, barrier, applied)) for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(applied) == [False, False, False, True]
        assert _statuses(factory, automation_id) == {"created": 1}
        _assert_applied_once(factory, automation_id)


def test_threads_on_one_automation_respect_the_limits_exactly(
    factory: sessionmaker[Session],
) -> None:
    automation_id, ids = _seed(
        factory, 30, lambda i: f"k{i}", max_chat_creates_per_hour=7, max_messages_per_hour=60
    )
    chunks = [ids[i::6] for i in range(6)]

    def work(chunk: list[uuid.UUID]) -> None:
        for event_id in chunk:
            with factory.begin() as s:
                process_event(
                    open_store(s.connection(), PipelineOptions()),
                    system_clock,
                    event_id,
                    PipelineOptions(),
                )

    threads = [threading.Thread(target=work, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert _statuses(factory, automation_id) == {"created": 7, "rate_limited": 23}
    _assert_applied_once(factory, automation_id)


# --- a real worker pool ------------------------------------------------------------------


@pytest.fixture
def env(pg_committed: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    return service_env(database_url=pg_committed, broker_url=redis_url, data_dir=tmp_path)


@pytest.fixture
def producer(pg_committed: str, redis_url: str, tmp_path: Path) -> Iterator[Celery]:
    app = producer_app(Settings(database_url=pg_committed, broker_url=redis_url, data_dir=tmp_path))
    yield app
    app.close()


def _publish(app: Celery, ids: list[uuid.UUID]) -> None:
    with app.producer_or_acquire() as producer:
        for event_id in ids:
            app.send_task(
                PROCESS_EVENT, args=[str(event_id)], queue=QUEUE_EVENTS, producer=producer
            )


@pytest.fixture
def worker(env: dict[str, str], tmp_path: Path) -> Iterator[Proc]:
    proc = start_worker(env, tmp_path, "--concurrency", "4")
    yield proc
    proc.stop()


@pytest.mark.e2e
def test_worker_pool_admits_exactly_the_chat_creation_limit(
    factory: sessionmaker[Session], producer: Celery, worker: Proc
) -> None:
    automation_id, ids = _seed(factory, 40, lambda i: f"distinct-{i}", max_chat_creates_per_hour=10)
    _publish(producer, ids)
    counts = wait_until(lambda: _none_pending(factory, automation_id), 60, what="all processed")
    assert counts == {"created": 10, "rate_limited": 30}
    _assert_applied_once(factory, automation_id)
    with factory() as s:
        errors = set(
            s.scalars(
                select(AutomationEvent.error).where(
                    AutomationEvent.status == EventStatus.RATE_LIMITED
                )
            )
        )
    assert errors == {"chat creation rate limit exceeded: 10/10 per hour"}


@pytest.mark.e2e
def test_worker_pool_with_identical_labels_creates_one_chat_and_caps_messages(
    factory: sessionmaker[Session], producer: Celery, worker: Proc
) -> None:
    automation_id, ids = _seed(
        factory, 40, lambda i: "same", max_chat_creates_per_hour=10, max_messages_per_hour=25
    )
    _publish(producer, ids)
    counts = wait_until(lambda: _none_pending(factory, automation_id), 60, what="all processed")
    assert counts == {"created": 1, "continued": 24, "rate_limited": 15}
    _assert_applied_once(factory, automation_id)
    with factory() as s:
        (chat,) = s.scalars(select(Chat).where(Chat.automation_id == automation_id))
        n = s.scalar(select(func.count()).where(ChatMessage.chat_id == chat.id))
        continued_into = set(
            s.scalars(
                select(AutomationEvent.matched_chat_id).where(
                    AutomationEvent.status == EventStatus.CONTINUED
                )
            )
        )
    assert n == 25 and continued_into == {chat.id}
    assert chat.labels == {"key": "same"}


@pytest.mark.e2e
def test_sigkilled_worker_loses_no_event_and_applies_none_twice(
    factory: sessionmaker[Session],
    producer: Celery,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    total = 400
    automation_id, ids = _seed(
        factory,
        total,
        lambda i: f"k{i % 150}",  # a mix of creates and continues
        max_chat_creates_per_hour=1000,
        max_messages_per_hour=1000,
    )
    first = start_worker(env, tmp_path, "--concurrency", "4", name="doomed")
    try:
        _publish(producer, ids)

        def some_done() -> int:
            done = sum(n for k, n in _statuses(factory, automation_id).items() if k != "pending")
            return done if done >= 20 else 0

        done_at_kill = wait_until(some_done, 60, interval=0.01, what="first outcomes")
    finally:
        first.kill_group()  # the main process and its prefork children, mid-batch
    assert done_at_kill < total, "the batch finished before the kill; nothing was tested"

    second = start_worker(env, tmp_path, "--concurrency", "4", name="survivor")
    try:
        # Messages the dead worker had reserved are unacknowledged: Redis only redelivers
        # them after the visibility timeout. The sweeper re-publishes what stays pending.
        def swept_and_done() -> dict[str, int]:
            counts = _none_pending(factory, automation_id)
            if counts:
                return counts
            with factory.begin() as s:
                result = sweep_pending(
                    s, system_clock, min_age_seconds=0, batch_size=1000, max_attempts=100
                )
            _publish(producer, result.republish)
            return {}

        counts = wait_until(swept_and_done, 60, interval=0.5, what="swept")
    finally:
        second.stop()
    assert counts == {"created": 150, "continued": total - 150}
    _assert_applied_once(factory, automation_id)


@pytest.mark.e2e
def test_pool_processes_run_nicer_than_the_main_process(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The dispatching main process keeps its priority; its prefork children drop theirs by
    AUTOMATIONS_WORKER_POOL_NICE, so that the dispatcher is never starved by its own pool."""
    import os

    proc = start_worker(
        {**env, "AUTOMATIONS_WORKER_POOL_NICE": "7"}, tmp_path, "--concurrency", "2"
    )
    try:
        main = proc.pid
        children_file = Path(f"/proc/{main}/task/{main}/children")

        def pool() -> list[int] | None:
            pids = [int(pid) for pid in children_file.read_text().split()]
            return pids if len(pids) == 2 else None

        children = wait_until(pool, 30, what="two pool processes")
        base = os.getpriority(os.PRIO_PROCESS, main)
        assert base == os.getpriority(os.PRIO_PROCESS, 0)  # the main process is unchanged
        assert [os.getpriority(os.PRIO_PROCESS, c) for c in children] == [min(base + 7, 19)] * 2
    finally:
        proc.stop()
