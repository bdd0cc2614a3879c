"""Benchmark: one cron dispatch pass over 10,000 due triggers, and the due query when idle.

Run: ``.venv/bin/python bench/cron_dispatch.py [--triggers 100000] [--due 10000]``.

Creates (drops first) its own PostgreSQL database ``bench_cron`` next to the test database
(``AUTOMATIONS_TEST_DATABASE_URL`` or the local default, else a throwaway server), migrates it,
bulk-loads ``--triggers`` cron triggers with COPY (``--due`` of them due now, the rest due
within the next hour) and runs ``shared.cron.dispatch.dispatch_due`` once with the production
publisher (``process_event`` to Redis database 12, flushed first). Reports:

* the pass: wall time, fires/s, events inserted and messages enqueued (must both equal
  ``--due``, and a second pass must fire nothing);
* the due query (the real claim query, ``FOR UPDATE SKIP LOCKED`` and all) with nothing due:
  median and p95 of 200 runs, target < 50 ms, and its EXPLAIN (must use
  ``ix_automation_triggers_next_fire_at``).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg2
import redis
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from shared.cron.dispatch import dispatch_due, due_query
from shared.infra.broker import Publisher, producer_app
from shared.infra.clock import FrozenClock
from shared.infra.config import Settings
from shared.infra.db.engine import make_engine
from shared.infra.db.uow import Database, TaskMessage
from shared.infra.queues import QUEUE_EVENTS
from shared.models import AutomationEvent, User
from tests import factories
from tests.harness.services import find_postgres, find_redis, fresh_pg_database

DB_NAME = "bench_cron"
REDIS_DB = 12
DUE_QUERY_TARGET_MS = 50.0
TRIGGERS_PER_AUTOMATION = 100
ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Adelaide",
    "America/Los_Angeles",
    "Europe/London",
    "America/Sao_Paulo",
    "Africa/Cairo",
    "Asia/Kathmandu",
    "Pacific/Auckland",
    "America/St_Johns",
    "Asia/Shanghai",
    "Europe/Moscow",
    "America/Chicago",
    "Asia/Dubai",
    "Pacific/Honolulu",
    "Europe/Paris",
    "Asia/Singapore",
)


def seed(db_url: str, clock: FrozenClock, triggers: int, due: int) -> None:
    """Automations via the factories, then the triggers with one COPY."""
    engine = make_engine(db_url)
    now = clock.now()
    automations: list[uuid.UUID] = []
    with Session(engine) as session:
        first = factories.automation(session, clock, status="active")
        owner = session.get(User, first.owner_id)
        automations.append(first.id)
        for _ in range((triggers - 1) // TRIGGERS_PER_AUTOMATION):
            automations.append(factories.automation(session, clock, owner=owner).id)
        session.commit()
    engine.dispose()

    slot = now.replace(second=0, microsecond=0)
    buf = io.StringIO()
    for i in range(triggers):
        if i < due:
            # due now: every-minute schedules in 20 zones, stored slot 0-9 minutes ago (a short
            # outage to coalesce): 200 distinct (schedule, slot) pairs
            zone = ZONES[i % len(ZONES)]
            schedule = f"CRON_TZ={zone} * * * * *"
            next_fire = slot - timedelta(minutes=(i // len(ZONES)) % 10)
        else:
            # not due: hourly schedules at every minute of the next hour
            minute = 1 + i % 59
            schedule = f"{(slot.minute + minute) % 60} * * * *"
            next_fire = slot + timedelta(minutes=minute)
        auto = automations[i // TRIGGERS_PER_AUTOMATION]
        buf.write(
            f"{uuid.uuid4()}\t{auto}\tcron\t{schedule}\t{next_fire.isoformat()}\t{{}}\t{{}}\t"
            f"{now.isoformat()}\t{now.isoformat()}\n"
        )
    buf.seek(0)
    conn = psycopg2.connect(
        make_url(db_url)
        .render_as_string(hide_password=False)
        .replace("postgresql+psycopg2://", "postgresql://", 1)
    )
    with conn, conn.cursor() as cur:
        cur.copy_expert(
            "COPY automation_triggers (id, automation_id, type, cron_schedule, next_fire_at, "
            "filter, label_paths, created_at, updated_at) FROM STDIN",
            buf,
        )
        cur.execute("ANALYZE")
    conn.close()


def time_due_query(db_url: str, now: datetime, batch_size: int, runs: int) -> list[float]:
    engine = make_engine(db_url)
    timings: list[float] = []
    stmt = due_query(now, batch_size, postgres=True)
    with engine.connect() as conn:
        for _ in range(runs):
            started = time.perf_counter()
            with conn.begin():
                rows = conn.execute(stmt).all()
            timings.append((time.perf_counter() - started) * 1000)
            assert not rows, "expected nothing due"
    engine.dispose()
    return timings


def explain(db_url: str, now: datetime, batch_size: int) -> str:
    engine = make_engine(db_url)
    compiled = due_query(now, batch_size, postgres=True).compile(
        dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"literal_binds": True},
    )
    with engine.connect() as conn:
        lines = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, COSTS OFF) {compiled}").scalars().all()
    engine.dispose()
    return "\n".join(f"    {line}" for line in lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triggers", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=Settings().cron_dispatch_batch_size)
    parser.add_argument("--query-runs", type=int, default=200)
    args = parser.parse_args()
    if not 0 < args.due <= args.triggers:
        parser.error("need 0 < --due <= --triggers")

    pg, rds = find_postgres(), find_redis()
    if pg.url is None or rds.url is None:
        print(f"needs PostgreSQL and Redis: {pg.reason or rds.reason}")
        return 2
    db_url = fresh_pg_database(pg.url, DB_NAME, migrated=True)
    redis_url = f"{rds.url}/{REDIS_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    clock = FrozenClock(datetime.now(UTC).replace(second=30, microsecond=0))

    started = time.perf_counter()
    seed(db_url, clock, args.triggers, args.due)
    print(
        f"seeded {args.triggers:,} cron triggers ({args.due:,} due) in "
        f"{time.perf_counter() - started:.1f} s; batch size {args.batch_size}"
    )

    settings = Settings(database_url=db_url, broker_url=redis_url)
    engine = make_engine(db_url, pool_size=2)
    publisher = Publisher(producer_app(settings))

    idle_before = time_due_query(db_url, clock.now() - timedelta(minutes=15), args.batch_size, 20)
    publish_seconds = 0.0

    class TimedPublisher:
        def publish(self, messages: Sequence[TaskMessage]) -> None:
            nonlocal publish_seconds
            begun = time.perf_counter()
            publisher.publish(messages)
            publish_seconds += time.perf_counter() - begun

    db = Database(engine, TimedPublisher())

    started = time.perf_counter()
    fired = dispatch_due(db.unit, clock, args.batch_size)
    pass_seconds = time.perf_counter() - started
    with Session(engine) as session:
        inserted = session.scalar(select(func.count()).select_from(AutomationEvent)) or 0
    enqueued = int(redis.Redis.from_url(redis_url).llen(QUEUE_EVENTS))  # type: ignore[arg-type]
    second_pass = dispatch_due(db.unit, clock, args.batch_size)
    engine.dispose()

    idle = time_due_query(db_url, clock.now(), args.batch_size, args.query_runs)
    idle_median = statistics.median(idle)
    idle_p95 = statistics.quantiles(idle, n=20)[-1]
    plan = explain(db_url, clock.now(), args.batch_size)
    uses_index = "ix_automation_triggers_next_fire_at" in plan

    print(
        f"dispatch pass: {len(fired):,} fires in {pass_seconds:.2f} s "
        f"({len(fired) / pass_seconds:,.0f} fires/s; database and schedule work "
        f"{pass_seconds - publish_seconds:.2f} s, enqueueing {publish_seconds:.2f} s); "
        f"events inserted {inserted:,}, "
        f"process_event messages enqueued {enqueued:,}; second pass fired {len(second_pass)}"
    )
    print(
        f"due query, nothing due: median {idle_median:.2f} ms, p95 {idle_p95:.2f} ms "
        f"({args.query_runs} runs; before the pass: median {statistics.median(idle_before):.2f} ms)"
    )
    print(f"EXPLAIN ANALYZE of the due query (nothing due):\n{plan}")

    exact = len(fired) == inserted == enqueued == args.due and not second_pass
    checks = [
        ("every due trigger fired and enqueued exactly once", exact),
        (f"due query median < {DUE_QUERY_TARGET_MS:.0f} ms", idle_median < DUE_QUERY_TARGET_MS),
        ("due query uses ix_automation_triggers_next_fire_at", uses_index),
    ]
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
