"""The Celery tasks around the pipeline, run eagerly in-process against PostgreSQL: error
recording, database outages (retry, never ``error``), the sweeper task publishing after
commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from shared.events.options import PipelineOptions
from shared.events.pipeline import process_event
from shared.infra.clock import FrozenClock
from shared.infra.config import Settings
from shared.infra.db.engine import make_engine, make_session_factory
from shared.infra.db.prepared_tx import PreparedTransaction
from shared.infra.queues import PROCESS_EVENT, SWEEP_PENDING_EVENTS
from shared.models import AutomationEvent, EventStatus
from tests import factories as f
from tests.harness.services import terminate_backend
from worker import celery_app
from worker.tasks import base as task_base
from worker.tasks import events as event_tasks
from worker.tasks.base import runtime_of

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def app(pg_committed: str, tmp_path: Path) -> Iterator[Celery]:
    settings = Settings(
        database_url=pg_committed,
        broker_url="memory://",
        data_dir=tmp_path,
        sweeper_min_age_seconds=30,
        sweeper_max_attempts=2,
    )
    application = celery_app.create_celery(settings)
    yield application
    application.tasks[PROCESS_EVENT].runtime.reset_after_fork()


def _event(url: str, **kw: Any) -> uuid.UUID:
    engine = make_engine(url)
    clock = FrozenClock(datetime.now(UTC))
    with Session(engine) as s, s.begin():
        auto = f.automation(s, clock)
        trig = f.webhook_trigger(s, clock, auto)
        event_id = f.event(s, clock, auto, trigger_id=trig.id, payload={"a": 1}, **kw).id
    engine.dispose()
    return event_id


def _row(url: str, event_id: uuid.UUID) -> AutomationEvent:
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        row = s.get(AutomationEvent, event_id)
    engine.dispose()
    assert row is not None
    return row


def test_task_processes_an_event_and_ignores_garbage_ids(app: Celery, pg_committed: str) -> None:
    event_id = _event(pg_committed)
    task = app.tasks[PROCESS_EVENT]
    assert task.apply(args=[str(event_id)]).get() == "created"
    assert task.apply(args=[str(event_id)]).get() == "created"  # idempotent no-op
    assert task.apply(args=["not-a-uuid"]).get() is None
    assert task.apply(args=[str(uuid.uuid4())]).get() is None  # purged event


def test_unexpected_failure_marks_the_event_error(
    app: Celery, pg_committed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = _event(pg_committed)

    def boom(*_: Any) -> None:
        raise ValueError("payload exploded\nwith details")

    monkeypatch.setattr(event_tasks, "process_event", boom)
    assert app.tasks[PROCESS_EVENT].apply(args=[str(event_id)]).get() == "error"
    row = _row(pg_committed, event_id)
    assert row.status == EventStatus.ERROR
    assert row.error == "ValueError: payload exploded"
    assert row.processed_at is not None


def test_database_outage_retries_and_never_marks_the_event_error(
    app: Celery, pg_committed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = _event(pg_committed)
    calls: list[uuid.UUID] = []

    def down(_session: Any, _clock: Any, eid: uuid.UUID, _options: Any) -> None:
        calls.append(eid)
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(event_tasks, "process_event", down)
    result = app.tasks[PROCESS_EVENT].apply(args=[str(event_id)])
    assert result.get() is None
    assert len(calls) == event_tasks.MAX_RETRIES + 1  # the first run and every retry
    row = _row(pg_committed, event_id)
    assert row.status == EventStatus.PENDING  # left for the sweeper
    assert row.error is not None and "server closed the connection" in row.error


def _backend_pid(tx: Any) -> int:
    return int(tx.conn.connection.dbapi_connection.get_backend_pid())  # no round trip


def test_the_event_connection_is_kept_between_tasks_and_replaced_when_dead_or_old(
    app: Celery, pg_committed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = runtime_of(app)
    clock = FrozenClock(datetime.now(UTC))
    options = PipelineOptions()

    def one_task() -> tuple[Any, int]:
        with rt.event_transaction() as tx:
            assert isinstance(tx, PreparedTransaction)
            assert process_event(tx, clock, uuid.uuid4(), options).applied is False
            return tx.conn, _backend_pid(tx)

    conn, pid = one_task()
    assert one_task() == (conn, pid)  # the same connection, not checked in and out

    terminate_backend(pg_committed, pid)
    with pytest.raises(OperationalError) as failure:
        one_task()  # the task's error: transient, retried
    assert event_tasks.is_transient_db_error(failure.value)
    again, new_pid = one_task()  # the retry: reconnected
    assert again is conn and new_pid != pid

    monkeypatch.setattr(task_base, "POOL_RECYCLE_SECONDS", -1)
    replaced, _ = one_task()
    assert replaced is not conn and conn.closed  # given back to the pool, a new one taken

    # a thread pool's threads each have their own
    monkeypatch.setattr(task_base, "POOL_RECYCLE_SECONDS", 3600)
    mine, _ = one_task()
    with ThreadPoolExecutor(1) as pool:
        theirs, _ = pool.submit(one_task).result()
    assert theirs is not mine and one_task()[0] is mine


def test_retry_backoff_doubles_and_is_capped() -> None:
    delays = [event_tasks.retry_countdown(n) for n in range(10)]
    assert 0.8 <= delays[0] <= 1.2 and 1.6 <= delays[1] <= 2.4
    assert all(d <= 72 for d in delays) and delays[-1] >= 48


def test_sweeper_task_publishes_after_commit_and_parks(
    app: Celery, pg_committed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = datetime.now(UTC) - timedelta(minutes=5)
    stuck = _event(pg_committed, received_at=old)
    hopeless = _event(
        pg_committed,
        received_at=old,
        publish_attempts=2,
        last_published_at=old,
        error="OperationalError: timeout",
    )
    published: list[str] = []
    runtime = app.tasks[SWEEP_PENDING_EVENTS].runtime
    monkeypatch.setattr(runtime, "publish_events", published.extend)

    assert app.tasks[SWEEP_PENDING_EVENTS].apply().get() == {"republished": 1, "parked": 1}
    assert published == [str(stuck)]
    row = _row(pg_committed, stuck)
    assert row.status == EventStatus.PENDING and row.publish_attempts == 1
    parked = _row(pg_committed, hopeless)
    assert parked.status == EventStatus.ERROR
    assert parked.error == "not processed after 2 attempts; last error: OperationalError: timeout"
