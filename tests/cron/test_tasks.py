"""The thin Celery tasks and the beat schedule, run in-process against PostgreSQL and Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.infra.clock import FrozenClock
from shared.infra.config import Settings
from shared.infra.db.engine import make_engine
from shared.infra.queues import (
    DISPATCH_CRON,
    PROCESS_EVENT,
    PURGE_EVENTS,
    QUEUE_EVENTS,
    QUEUE_MAINTENANCE,
)
from shared.models import AutomationEvent, EventStatus
from tests import factories
from tests.cron.helpers import cron
from worker.celery_app import create_celery
from worker.schedule import beat_schedule

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def test_beat_schedule_names_interval_and_queue() -> None:
    settings = Settings(cron_dispatch_interval_seconds=2, purge_interval_seconds=600)
    schedule = beat_schedule(settings)
    assert schedule["dispatch-cron"]["task"] == DISPATCH_CRON
    assert schedule["dispatch-cron"]["schedule"] == 2
    assert schedule["purge-events"]["task"] == PURGE_EVENTS
    assert schedule["purge-events"]["schedule"] == 600
    for job in schedule.values():
        assert job["options"]["queue"] == QUEUE_MAINTENANCE


def test_dispatch_and_purge_tasks(pg_committed: str, redis_url: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=pg_committed,
        broker_url=redis_url,
        cron_dispatch_batch_size=3,
        purge_batch_size=2,
        purge_pause_seconds=0,
    )
    clock = FrozenClock(NOW)
    app = create_celery(settings, clock=clock)
    assert app.tasks[DISPATCH_CRON].queue == QUEUE_MAINTENANCE
    assert app.tasks[PURGE_EVENTS].queue == QUEUE_MAINTENANCE

    engine = make_engine(pg_committed)
    with Session(engine) as session:
        for _ in range(7):
            cron(session, clock, "* * * * *")
        auto = factories.automation(session, clock)
        for days in (8, 9, 10, 1):
            factories.event(
                session,
                clock,
                auto,
                received_at=NOW - timedelta(days=days),
                status=EventStatus.FILTERED,
            )
        session.commit()

    clock.set(NOW + timedelta(minutes=1))
    assert app.tasks[DISPATCH_CRON].apply().get() == 7
    queued: list[bytes] = redis.Redis.from_url(redis_url).lrange(QUEUE_EVENTS, 0, -1)  # type: ignore[assignment]
    messages = [json.loads(m) for m in queued]
    assert len(messages) == 7
    assert {m["headers"]["task"] for m in messages} == {PROCESS_EVENT}
    assert app.tasks[DISPATCH_CRON].apply().get() == 0  # idempotent

    assert app.tasks[PURGE_EVENTS].apply().get() == 3
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(AutomationEvent)) == 8
    engine.dispose()
