"""Graceful shutdown (issue 7 item 5), with real processes on PostgreSQL and Redis.

* SIGTERM to the gunicorn gateway while slow requests are in flight: every in-flight request
  still gets its 202 and its event is committed; new connections are refused; the master exits
  0 within the graceful timeout.
* SIGTERM to a Celery worker mid-burst: it finishes the tasks it is running and gives back the
  ones it had reserved (acks_late), so a second worker brings every event to exactly one final
  status, without the sweeper, and no event gets more than one chat message.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from celery import Celery
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from shared.infra.broker import producer_app
from shared.infra.clock import FrozenClock
from shared.infra.config import Settings
from shared.infra.db.engine import make_engine
from shared.infra.queues import PROCESS_EVENT, QUEUE_EVENTS
from shared.models import AutomationEvent, ChatMessage, EventStatus
from shared.triggers.signatures import sign_github
from tests import factories as f
from tests.harness.processes import Proc, service_env, start_gateway, start_worker
from tests.pipeline.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SECRET = "5eed" * 16
GRACEFUL_TIMEOUT_S = 30  # webhook_gateway/gunicorn_conf.py
IN_FLIGHT = 20
SLOW_S = 1.5


@pytest.fixture
def engine(pg_committed: str) -> Iterator[Engine]:
    eng = make_engine(pg_committed, pool_size=5, max_overflow=5)
    yield eng
    eng.dispose()


def _seed_trigger(engine: Engine, **automation_kw: Any) -> tuple[uuid.UUID, uuid.UUID]:
    clock = FrozenClock(datetime.now(UTC))
    with Session(engine, expire_on_commit=False) as s:
        auto = f.automation(s, clock, **automation_kw)
        trig = f.webhook_trigger(s, clock, auto, webhook_secret=SECRET, label_paths={"key": "key"})
        s.commit()
        return auto.id, trig.id


def _statuses(engine: Engine, automation_id: uuid.UUID) -> dict[str, int]:
    with Session(engine) as s:
        rows = s.execute(
            select(AutomationEvent.status, func.count())
            .where(AutomationEvent.automation_id == automation_id)
            .group_by(AutomationEvent.status)
        ).all()
    return {str(status): int(n) for status, n in rows}


# ---------------------------------------------------------------------------
# (a) the gateway


class _SlowBody:
    """A chunked request body: the first part at once, the rest after ``delay`` seconds."""

    def __init__(self, body: bytes, delay: float, started: threading.Semaphore) -> None:
        self.body, self.delay, self.started = body, delay, started

    def __iter__(self) -> Iterator[bytes]:
        half = len(self.body) // 2
        yield self.body[:half]
        self.started.release()
        time.sleep(self.delay)
        yield self.body[half:]


def test_sigterm_to_the_gateway_finishes_in_flight_requests(
    engine: Engine, pg_committed: str, redis_url: str, tmp_path: Path
) -> None:
    _, trigger_id = _seed_trigger(engine)
    env = service_env(
        database_url=pg_committed,
        broker_url=redis_url,
        data_dir=tmp_path,
        # enough threads that every slow request is being read by the app at once
        extra={"AUTOMATIONS_GATEWAY_WORKERS": "2", "AUTOMATIONS_GATEWAY_THREADS": "16"},
    )
    gateway, base = start_gateway(env, tmp_path)
    url = f"{base}/api/v1/automations/triggers/{trigger_id}/webhook"
    started = threading.Semaphore(0)
    results: list[Any] = [None] * IN_FLIGHT

    def send(i: int) -> None:
        body = b'{"key": "k%d", "i": %d, "pad": "%s"}' % (i, i, b"x" * 2000)
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_github(SECRET, body),
            "X-GitHub-Delivery": f"shutdown-{i}",
        }
        try:
            resp = requests.post(
                url, data=_SlowBody(body, SLOW_S, started), headers=headers, timeout=60
            )
            results[i] = (resp.status_code, resp.json(), time.monotonic())
        except Exception as exc:  # recorded and asserted below
            results[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(IN_FLIGHT)]
    try:
        for t in threads:
            t.start()
        for _ in range(IN_FLIGHT):  # every request has sent its first half
            assert started.acquire(timeout=30)
        time.sleep(0.3)  # ... and the gateway is reading it
        sigterm_at = time.monotonic()
        gateway.signal(signal.SIGTERM)

        # new connections are refused while the in-flight requests finish
        time.sleep(0.3)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{base}/healthz", timeout=5)

        for t in threads:
            t.join(timeout=60)
        code = gateway.popen.wait(timeout=GRACEFUL_TIMEOUT_S + 5)
        exited_after = time.monotonic() - sigterm_at
    finally:
        gateway.stop()
    assert code == 0, gateway.log()[-3000:]
    assert exited_after < GRACEFUL_TIMEOUT_S, exited_after

    failures = [r for r in results if not (isinstance(r, tuple) and r[0] == 202)]
    assert not failures, failures
    # the requests really were in flight: their answers came after the SIGTERM
    assert all(done > sigterm_at for _, _, done in results)
    event_ids = {uuid.UUID(body["event_id"]) for _, body, _ in results}
    assert len(event_ids) == IN_FLIGHT
    with Session(engine) as s:
        stored = set(s.scalars(select(AutomationEvent.id).where(AutomationEvent.id.in_(event_ids))))
    assert stored == event_ids, "a 202 was answered for an event that is not committed"


# ---------------------------------------------------------------------------
# (b) a worker


@pytest.fixture
def producer(pg_committed: str, redis_url: str, tmp_path: Path) -> Iterator[Celery]:
    app = producer_app(Settings(database_url=pg_committed, broker_url=redis_url, data_dir=tmp_path))
    yield app
    app.close()


def _seed_events(engine: Engine, n: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    clock = FrozenClock(datetime.now(UTC))
    with Session(engine, expire_on_commit=False) as s:
        auto = f.automation(s, clock, max_chat_creates_per_hour=1000, max_messages_per_hour=1000)
        trig = f.webhook_trigger(s, clock, auto, label_paths={"key": "key"})
        ids = [
            f.event(s, clock, auto, trigger_id=trig.id, payload={"key": f"k{i % 100}", "i": i}).id
            for i in range(n)
        ]
        s.commit()
        return auto.id, ids


def test_sigterm_to_a_worker_finishes_or_requeues_its_tasks(
    engine: Engine, producer: Celery, pg_committed: str, redis_url: str, tmp_path: Path
) -> None:
    total = 300
    automation_id, ids = _seed_events(engine, total)
    env = service_env(database_url=pg_committed, broker_url=redis_url, data_dir=tmp_path)
    first: Proc = start_worker(env, tmp_path, "--concurrency", "2", name="terminated")
    try:
        with producer.producer_or_acquire() as p:
            for event_id in ids:
                producer.send_task(
                    PROCESS_EVENT, args=[str(event_id)], queue=QUEUE_EVENTS, producer=p
                )

        def some_done() -> int:
            done = sum(n for k, n in _statuses(engine, automation_id).items() if k != "pending")
            return done if done >= 20 else 0

        done_at_term = wait_until(some_done, 60, interval=0.01, what="first outcomes")
        first.signal(signal.SIGTERM)  # warm shutdown mid-burst
        code = first.popen.wait(timeout=60)
    finally:
        first.stop()
    assert code == 0, first.log()[-3000:]
    assert done_at_term < total, "the burst finished before SIGTERM; nothing was tested"
    pending_after_first = _statuses(engine, automation_id).get("pending", 0)
    assert pending_after_first > 0, "the first worker drained the queue; nothing was tested"

    # no sweeper here: what the first worker did not finish must be back in the queue
    second = start_worker(env, tmp_path, "--concurrency", "2", name="successor")
    try:

        def all_final() -> dict[str, int]:
            counts = _statuses(engine, automation_id)
            return counts if "pending" not in counts else {}

        counts = wait_until(all_final, 90, interval=0.5, what="every event final")
    finally:
        second.stop()
    assert counts == {"created": 100, "continued": total - 100}, counts
    with Session(engine) as s:
        per_event = s.execute(
            select(ChatMessage.event_id, func.count())
            .where(ChatMessage.event_id.in_(ids))
            .group_by(ChatMessage.event_id)
        ).all()
        errors = s.scalar(
            select(func.count()).where(
                AutomationEvent.automation_id == automation_id,
                AutomationEvent.status == EventStatus.ERROR,
            )
        )
    assert all(n == 1 for _, n in per_event), "an event was applied twice"
    assert len(per_event) == total
    assert errors == 0
