#!/usr/bin/env python3
"""The event pipeline's own cost, without Celery: events/s and CPU per event.

    .venv/bin/python bench/pipeline_inproc.py [--events 3000] [--processes 1] [--automations 50]
                                              [--transaction prepared|plain]

Seeds the same data as ``bench/pipeline.py`` (its own database ``bench_pipeline_inproc``),
then ``--processes`` plain processes each take every n-th pending event and run the
worker's unit of work and ``process_event`` on it, one after the other. Prints events/s and
the CPU milliseconds per event of those processes and of their PostgreSQL backends (from
/proc). ``--transaction plain`` runs the store's statements as plain SQL instead of
server-side prepared statements, for comparison.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from pipeline import seed  # noqa: E402
from proc_cpu import TICKS  # noqa: E402
from sqlalchemy import text  # noqa: E402

from shared.events.backends import open_store  # noqa: E402
from shared.events.options import PipelineOptions  # noqa: E402
from shared.events.pipeline import process_event  # noqa: E402
from shared.infra.clock import system_clock  # noqa: E402
from shared.infra.db.engine import make_engine  # noqa: E402
from shared.infra.db.uow import Database  # noqa: E402
from tests.harness.services import find_postgres, fresh_pg_database  # noqa: E402

DB_NAME = "bench_pipeline_inproc"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _work(url: str, ids: list[str], mode: str, start: Any, results: Any) -> None:
    # one pooled connection: every unit of work gets the same one (and its backend)
    engine = make_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=False)
    options = PipelineOptions(prepared_statements=mode == "prepared")
    db = Database(engine)
    with engine.connect() as conn:
        backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    start.wait()
    cpu, backend_cpu = time.process_time(), _cpu_seconds(backend)
    for event_id in ids:
        with db.unit() as uow:  # the worker's unit of work
            process_event(
                open_store(uow.connection, options), system_clock, uuid.UUID(event_id), options
            )
    results.put((time.process_time() - cpu, _cpu_seconds(backend) - backend_cpu))
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--automations", type=int, default=50)
    parser.add_argument("--transaction", choices=["prepared", "plain"], default="prepared")
    args = parser.parse_args()
    if not Path("/proc/self/stat").exists():
        print("needs Linux /proc for the CPU figures", file=sys.stderr)
        return 2
    pg = find_postgres()
    if pg.url is None:
        print(f"need PostgreSQL: {pg.reason}", file=sys.stderr)
        return 2
    url = fresh_pg_database(pg.url, DB_NAME, migrated=True)
    print(f"seeding {args.events} events over {args.automations} automations…", flush=True)
    ids = seed(url, args.events, args.automations)
    start, results = mp.Event(), mp.Queue()
    n = args.processes
    procs = [
        mp.Process(target=_work, args=(url, ids[i::n], args.transaction, start, results))
        for i in range(n)
    ]
    for p in procs:
        p.start()
    time.sleep(2)  # every process connected and waiting
    began = time.perf_counter()
    start.set()
    done = [results.get() for _ in procs]
    elapsed = time.perf_counter() - began
    for p in procs:
        p.join()
    client = sum(d[0] for d in done) * 1000 / len(ids)
    server = sum(d[1] for d in done) * 1000 / len(ids)
    print(
        f"{len(ids)} events, {n} process(es), transaction={args.transaction}: "
        f"{len(ids) / elapsed:,.0f} events/s; CPU ms/event: client {client:.3f}, "
        f"PostgreSQL {server:.3f} (cpus={os.cpu_count()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
