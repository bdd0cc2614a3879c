"""Benchmark: the retention purge of 1,000,000 expired events.

Run: ``.venv/bin/python bench/purge.py [--rows 1000000] [--keep 100000] [--batch-size 5000]``.

Creates (drops first) its own PostgreSQL database ``bench_purge`` next to the test database
(``AUTOMATIONS_TEST_DATABASE_URL`` or the local default, else a throwaway server), migrates it,
COPYs ``--rows`` expired events (8-30 days old, ~1 in 10 a bad-signature ``error`` row, small
JSON payloads) and ``--keep`` recent ones over 100 automations, then runs
``shared.events.retention.purge_expired_events`` with the production defaults (batches of
5,000, 50 ms pause). Reports rows/s (wall clock including pauses, and deleting only), the
longest single batch transaction (target < 1 s) and checks that exactly the expired rows went.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg2
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from shared.events.retention import purge_expired_events
from shared.infra.clock import FrozenClock
from shared.infra.config import Settings
from shared.infra.db.engine import make_engine
from shared.models import AutomationEvent, User
from tests import factories
from tests.harness.services import find_postgres, fresh_pg_database

DB_NAME = "bench_purge"
LONGEST_TRANSACTION_TARGET_S = 1.0
AUTOMATIONS = 100


def seed(db_url: str, clock: FrozenClock, rows: int, keep: int) -> None:
    engine = make_engine(db_url)
    with Session(engine) as session:
        first = factories.automation(session, clock)
        owner = session.get(User, first.owner_id)
        autos = [first.id] + [
            factories.automation(session, clock, owner=owner).id for _ in range(AUTOMATIONS - 1)
        ]
        session.commit()
    engine.dispose()
    now = clock.now()
    dsn = make_url(db_url).render_as_string(hide_password=False)
    conn = psycopg2.connect(dsn.replace("postgresql+psycopg2://", "postgresql://", 1))
    chunk = 200_000
    with conn, conn.cursor() as cur:
        for start in range(0, rows + keep, chunk):
            buf = io.StringIO()
            for i in range(start, min(start + chunk, rows + keep)):
                if i < rows:  # expired: 8 to 30 days old, scattered
                    received = now - timedelta(days=8, seconds=(i * 7919) % (22 * 86400))
                else:
                    received = now - timedelta(seconds=(i * 7919) % (6 * 86400))
                error = i % 10 == 0
                status = "error" if error else "filtered"
                message = "signature verification failed" if error else "\\N"
                buf.write(
                    f"{uuid.uuid4()}\t{autos[i % AUTOMATIONS]}\t{received.isoformat()}\t"
                    f'{{"n": {i}, "action": "opened"}}\t{status}\t{message}\t1\t0\n'
                )
            buf.seek(0)
            cur.copy_expert(
                "COPY automation_events (id, automation_id, received_at, payload, status, "
                "error, occurrences, publish_attempts) FROM STDIN",
                buf,
            )
        cur.execute("ANALYZE automation_events")
    conn.close()


def main() -> int:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="expired events")
    parser.add_argument("--keep", type=int, default=100_000, help="events inside retention")
    parser.add_argument("--batch-size", type=int, default=defaults.purge_batch_size)
    parser.add_argument("--pause", type=float, default=defaults.purge_pause_seconds)
    args = parser.parse_args()

    pg = find_postgres()
    if pg.url is None:
        print(f"needs PostgreSQL: {pg.reason}")
        return 2
    db_url = fresh_pg_database(pg.url, DB_NAME, migrated=True)
    clock = FrozenClock(datetime.now(UTC))
    started = time.perf_counter()
    seed(db_url, clock, args.rows, args.keep)
    print(
        f"seeded {args.rows:,} expired + {args.keep:,} recent events in "
        f"{time.perf_counter() - started:.1f} s"
    )

    engine = make_engine(db_url)
    paused = 0.0

    def pause(seconds: float) -> None:
        nonlocal paused
        paused += seconds
        time.sleep(seconds)

    result = purge_expired_events(
        engine,
        clock,
        defaults.event_retention_days,
        batch_size=args.batch_size,
        pause_seconds=args.pause,
        sleep=pause,
    )
    with Session(engine) as session:
        left = session.scalar(select(func.count()).select_from(AutomationEvent)) or 0
    engine.dispose()

    deleting = result.elapsed_seconds - paused
    print(
        f"purge: deleted {result.deleted:,} rows {dict(sorted(result.deleted_by_status.items()))} "
        f"in {result.batches} batches of {args.batch_size:,}; {result.elapsed_seconds:.1f} s wall "
        f"({result.deleted / result.elapsed_seconds:,.0f} rows/s incl. {paused:.1f} s of pauses, "
        f"{result.deleted / deleting:,.0f} rows/s deleting)"
    )
    print(
        f"longest single transaction: {result.longest_batch_seconds * 1000:.0f} ms "
        f"(mean {deleting / result.batches * 1000:.0f} ms per batch)"
    )
    checks = [
        (
            "exactly the expired rows deleted, the recent ones kept",
            result.deleted == args.rows and left == args.keep and result.complete,
        ),
        (
            f"longest transaction < {LONGEST_TRANSACTION_TARGET_S:.0f} s",
            result.longest_batch_seconds < LONGEST_TRANSACTION_TARGET_S,
        ),
    ]
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
