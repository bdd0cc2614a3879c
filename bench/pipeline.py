#!/usr/bin/env python3
"""Event pipeline benchmark: events/s through a real worker pool vs. a no-op Celery task.

    .venv/bin/python bench/pipeline.py [--events 5000] [--automations 50] [--concurrency N]
                                       [--pool prefork] [--rounds 3]

Finds (or starts a throwaway) PostgreSQL and Redis like the test suite does, creates and
migrates its own database ``bench_pipeline`` and uses Redis database 13. Seeds ``--automations``
active automations (limits at their maximum, 1000/h), each with a webhook trigger whose filter
checks the action and whose label paths pick the repository, and ``--events`` pending events
spread over them with ~5 KB GitHub-like payloads: 10 % are filtered out, the rest spread over
20 label values per automation (so about a fifth create a chat and the rest continue one).

One worker (``celery -A pipeline_celery worker``: the production app and settings plus a
no-op task) is started consuming nothing. For each phase the queue is filled first, then the
worker is told to consume it (``add_consumer``) and the clock runs until the queue is empty
and every message acknowledged. Phase 1 is the pipeline (``automations.process_event``),
phase 2 the no-op task, same worker processes, same count. Prints both rates and the ratio
for every round (``--rounds``, 3 by default, each on fresh events) and their medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402
from celery import Celery  # noqa: E402
from proc_cpu import (  # noqa: E402
    Classifier,
    cpu_by_group,
    host_probe_ms,
    ipc_probe_us,
    machine_times,
    machine_usage,
    per_unit_ms,
)
from sqlalchemy import func, insert, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from shared.infra.broker import producer_app  # noqa: E402
from shared.infra.clock import FrozenClock  # noqa: E402
from shared.infra.config import Settings  # noqa: E402
from shared.infra.db.engine import make_engine  # noqa: E402
from shared.infra.queues import PROCESS_EVENT  # noqa: E402
from shared.models import AutomationEvent, EventStatus  # noqa: E402
from tests import factories  # noqa: E402
from tests.harness.processes import Proc  # noqa: E402
from tests.harness.services import find_postgres, find_redis, fresh_pg_database  # noqa: E402

DB_NAME = "bench_pipeline"
REDIS_DB = 13
QUEUE = "bench_pipeline"
IDLE_QUEUE = "bench_idle"
NOOP = "bench.noop"


def payload(repo: str, action: str, i: int, target: int = 5 * 1024) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "action": action,
        "number": i,
        "repository": {"name": repo, "full_name": f"acme/{repo}", "private": False},
        "sender": {"login": "octocat", "id": 1, "type": "User"},
        "pull_request": {"title": f"Change {i}", "body": "", "labels": [], "commits": []},
    }
    n = 0
    while len(json.dumps(doc)) < target:
        n += 1
        doc["pull_request"]["commits"].append(
            {"id": f"{n:040x}", "message": f"commit {n}", "modified": ["README.md"]}
        )
    return doc


def seed(db_url: str, n_events: int, n_automations: int) -> list[str]:
    engine = make_engine(db_url)
    clock = FrozenClock(datetime.now(UTC) - timedelta(minutes=1))
    ids: list[str] = []
    with Session(engine) as s, s.begin():
        org = factories.org(s, clock)
        owner = factories.user(s, clock, org)
        triggers = []
        for a in range(n_automations):
            auto = factories.automation(
                s,
                clock,
                owner,
                name=f"bench-{a}",
                instructions="Review this pull request.",
                max_chat_creates_per_hour=1000,
                max_messages_per_hour=1000,
            )
            triggers.append(
                factories.webhook_trigger(
                    s,
                    clock,
                    auto,
                    filter={"action": {"$in": ["opened", "synchronize"]}},
                    label_paths={"repo": "repository.full_name", "kind": "sender.type"},
                )
            )
        rows = []
        for i in range(n_events):
            trig = triggers[i % n_automations]
            action = "closed" if i % 10 == 9 else "opened"
            repo = f"repo-{a_index(i, n_automations)}-{(i // n_automations) % 20}"
            event_id = uuid.uuid4()
            ids.append(str(event_id))
            rows.append(
                {
                    "id": event_id,
                    "automation_id": trig.automation_id,
                    "trigger_id": trig.id,
                    "received_at": clock.now(),
                    "payload": payload(repo, action, i),
                    "status": EventStatus.PENDING,
                    "occurrences": 1,
                    "publish_attempts": 1,
                    "last_published_at": clock.now(),
                }
            )
        for start in range(0, len(rows), 1000):
            s.execute(insert(AutomationEvent), rows[start : start + 1000])
    engine.dispose()
    return ids


def a_index(i: int, n_automations: int) -> int:
    return i % n_automations


def fill(app: Celery, task: str, ids: list[str]) -> None:
    with app.producer_or_acquire() as producer:
        for event_id in ids:
            app.send_task(task, args=[event_id], queue=QUEUE, producer=producer)


def drained(r: Any) -> bool:
    # kombu's Redis transport: ready messages in the list, delivered-but-unacked in a hash
    return int(r.llen(QUEUE)) == 0 and int(r.hlen("unacked")) == 0


def worker_groups(worker_pids: list[int]) -> Classifier:
    """The worker's main process and its pool children as two groups."""

    def classify(pid: int, ppid: int, comm: str) -> str | None:
        if pid in worker_pids:
            return "worker main"
        if ppid in worker_pids:
            return "worker pool"
        return None

    return classify


def run_phase(
    app: Celery,
    r: Any,
    name: str,
    task: str,
    ids: list[str],
    timeout: float,
    worker_pids: list[int],
) -> float:
    probe, ipc = host_probe_ms(), ipc_probe_us()
    fill(app, task, ids)
    assert int(r.llen(QUEUE)) == len(ids), "queue not filled"
    cpu_before, machine_before = cpu_by_group(worker_groups(worker_pids)), machine_times()
    start = time.perf_counter()
    app.control.add_consumer(QUEUE, reply=False)
    deadline = start + timeout
    while not drained(r):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{name}: {r.llen(QUEUE)} messages left after {timeout}s")
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    # read before cancelling: cancel_consumer waits for replies, and the idle machine during
    # that wait would dilute the busy share
    cpu_after, machine_after = cpu_by_group(worker_groups(worker_pids)), machine_times()
    app.control.cancel_consumer(QUEUE, reply=True, timeout=5)
    rate = len(ids) / elapsed
    print(f"{name:>10}: {len(ids)} tasks in {elapsed:.2f} s = {rate:,.0f} /s", flush=True)
    print(f"{'':>12}CPU ms/task: {per_unit_ms(cpu_before, cpu_after, len(ids))}", flush=True)
    print(
        f"{'':>12}{machine_usage(machine_before, machine_after)}; "
        f"host probes before the phase: Python {probe:.0f} ms, IPC {ipc:.1f} µs "
        "(lower is a faster host)",
        flush=True,
    )
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--automations", type=int, default=50)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="pool processes (default: what `automations worker` uses, one per CPU plus one)",
    )
    parser.add_argument("--pool", default="prefork")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes to start (e.g. 2 with --pool solo)"
    )
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measure pipeline and no-op this many times (fresh events each round) and "
        "report the medians (default 3: a single no-op round moves by ±15%% with the host's "
        "scheduling)",
    )
    args = parser.parse_args()
    if args.concurrency is None:
        args.concurrency = Settings(
            database_url="postgresql+psycopg2:///bench_pipeline"
        ).effective_worker_concurrency

    pg, rd = find_postgres(), find_redis()
    if pg.url is None or rd.url is None:
        print(f"need PostgreSQL and Redis: {pg.reason or rd.reason}", file=sys.stderr)
        return 2
    db_url = fresh_pg_database(pg.url, DB_NAME, migrated=True)
    broker = f"{rd.url.rstrip('/')}/{REDIS_DB}"
    r = redis.Redis.from_url(broker)
    r.flushdb()
    print(
        f"cpus={os.cpu_count()} events={args.events} automations={args.automations} "
        f"pool={args.pool} concurrency={args.concurrency}",
        flush=True,
    )
    t = time.perf_counter()
    # each round its own owner and automations, so every round creates and continues the same
    # number of chats
    rounds_ids = [seed(db_url, args.events, args.automations) for _ in range(args.rounds)]
    print(f"seeded in {time.perf_counter() - t:.1f} s", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOMATIONS_")}
    for key in ("AUTOMATIONS_WORKER_POOL_NICE", "AUTOMATIONS_DB_PREPARED_STATEMENTS"):
        if key in os.environ:  # tuning knobs to compare
            env[key] = os.environ[key]
    env.update(
        AUTOMATIONS_DATABASE_URL=db_url,
        AUTOMATIONS_BROKER_URL=broker,
        AUTOMATIONS_DATA_DIR=str(tmp),
        AUTOMATIONS_LOG_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join([str(REPO / "bench"), str(REPO)]),
    )
    settings = Settings(database_url=db_url, broker_url=broker, data_dir=tmp)
    app = producer_app(settings)
    argv = [sys.executable, "-m", "celery", "-A", "pipeline_celery", "worker"]
    argv += ["--loglevel", "WARNING", "-Q", IDLE_QUEUE, "--pool", args.pool]
    argv += ["--concurrency", str(args.concurrency), "--without-gossip", "--without-mingle"]
    workers = [
        Proc(f"bench-worker-{i}", [*argv, "-n", f"bench{i}@%h"], env, tmp)
        for i in range(args.workers)
    ]
    worker = workers[0]
    results: list[tuple[float, float]] = []
    try:
        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=0.5)) < len(workers):
            if not all(w.alive() for w in workers) or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{worker.log()[-3000:]}")
        # warm-up: every pool process connects to the database and the broker once
        warm = [str(uuid.uuid4()) for _ in range(200)]
        run_phase(app, r, "warm-up", NOOP, warm, 60, [w.pid for w in workers])
        pids = [w.pid for w in workers]
        for n, ids in enumerate(rounds_ids):
            if args.rounds > 1:
                print(f"round {n + 1} of {args.rounds}", flush=True)
            pipeline_rate = run_phase(app, r, "pipeline", PROCESS_EVENT, ids, args.timeout, pids)
            noop_rate = run_phase(app, r, "no-op", NOOP, ids, args.timeout, pids)
            results.append((pipeline_rate, noop_rate))
    finally:
        for w in workers:
            w.stop()
        app.close()

    engine = make_engine(db_url)
    with Session(engine) as s:
        counts: dict[str, int] = {
            str(status): int(n)
            for status, n in s.execute(
                select(AutomationEvent.status, func.count()).group_by(AutomationEvent.status)
            ).all()
        }
    engine.dispose()
    print("outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    if counts.get(EventStatus.PENDING) or counts.get(EventStatus.ERROR):
        print("FAILED: events left pending or in error", file=sys.stderr)
        print(worker.log()[-3000:], file=sys.stderr)
        return 1
    for pipeline_rate, noop_rate in results:
        print(
            f"RESULT pipeline={pipeline_rate:.0f}/s noop={noop_rate:.0f}/s "
            f"ratio={pipeline_rate / noop_rate:.2f}"
        )
    if len(results) > 1:
        print(
            f"MEDIAN of {len(results)} rounds: "
            f"pipeline={statistics.median(p for p, _ in results):.0f}/s "
            f"noop={statistics.median(n for _, n in results):.0f}/s "
            f"ratio={statistics.median(p / n for p, n in results):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
