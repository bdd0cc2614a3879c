"""The Celery tasks around the pipeline, run eagerly in-process against PostgreSQL: error
recording, database outages (retry, never ``error``), the sweeper task publishing after
commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from shared.errors import TransientDatabaseError, is_transient_db_error
from shared.events.backends import open_store
from shared.events.options import PipelineOptions
from shared.events.pipeline import process_event
from shared.infra.clock import FrozenClock
from shared.infra.config import Settings
from shared.infra.db.engine import make_engine, make_session_factory
from shared.infra.queues import PROCESS_EVENT, SWEEP_PENDING_EVENTS
from shared.models import AutomationEvent, EventStatus
from tests import factories as f
from tests.harness.services import terminate_backend
from worker import celery_app
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
    assert len(calls) == app.tasks[PROCESS_EVENT].max_retries + 1  # the first run and retries
    row = _row(pg_committed, event_id)
    assert row.status == EventStatus.PENDING  # left for the sweeper
    assert row.error is not None and "server closed the connection" in row.error


def test_a_dead_connection_is_transient_and_the_next_unit_reconnects_and_reprepares(
    app: Celery, pg_committed: str
) -> None:
    rt = runtime_of(app)
    clock = FrozenClock(datetime.now(UTC))
    options = PipelineOptions()

    def one_unit() -> tuple[int, set[str]]:
        with rt.unit_of_work() as uow:
            conn = uow.connection
            assert (
                process_event(open_store(conn, options), clock, uuid.uuid4(), options).applied
                is False
            )
            pid = int(conn.connection.dbapi_connection.get_backend_pid())  # type: ignore[union-attr]
            return pid, set(conn.info.get("automations_prepared", ()))

    pid, prepared = one_unit()
    assert "automations_pipeline_load_v3" in prepared
    assert one_unit()[0] == pid  # the pooled connection, its statements still prepared

    terminate_backend(pg_committed, pid)
    with pytest.raises(OperationalError) as failure:
        one_unit()  # the task's error: transient, retried
    assert is_transient_db_error(failure.value)
    new_pid, prepared = one_unit()  # the retry: a new connection, statements prepared again
    assert new_pid != pid and "automations_pipeline_load_v3" in prepared


def test_retry_policy_is_declared_on_the_base_class(app: Celery) -> None:
    task = app.tasks[PROCESS_EVENT]
    assert task.autoretry_for == (TransientDatabaseError,)
    assert task.retry_backoff and task.retry_jitter and task.max_retries == 6
    assert task.retry_backoff_max == 60
    # Celery's own back-off: 1 s doubling, capped at 60 s, full jitter
    delays = [
        get_exponential_backoff_interval(factor=1, retries=n, maximum=60, full_jitter=False)
        for n in range(10)
    ]
    assert delays[:3] == [1, 2, 4] and delays[-1] == 60
    # periodic ticks are never retried
    assert app.tasks[SWEEP_PENDING_EVENTS].autoretry_for == ()


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

    class Recorder:
        def publish(self, messages: Any) -> None:
            published.extend(m.args[0] for m in messages)

    runtime = app.tasks[SWEEP_PENDING_EVENTS].runtime
    monkeypatch.setattr(runtime.db, "publisher", Recorder())

    assert app.tasks[SWEEP_PENDING_EVENTS].apply().get() == {"republished": 1, "parked": 1}
    assert published == [str(stuck)]
    row = _row(pg_committed, stuck)
    assert row.status == EventStatus.PENDING and row.publish_attempts == 1
    parked = _row(pg_committed, hopeless)
    assert parked.status == EventStatus.ERROR
    assert parked.error == "not processed after 2 attempts; last error: OperationalError: timeout"
