#!/usr/bin/env python3
"""Soak: the whole system at a steady request rate for a long time; does memory keep growing?

    .venv/bin/python bench/soak.py [--duration 600] [--rate 100] [--workers 2]

Finds (or starts a throwaway) PostgreSQL like the test suite does, creates and
migrates its own database ``bench_soak``, starts a private redis-server (``--shared-redis``:
database 12 of the machine's Redis instead), seeds ``--copies``
(15) x six active automations (a webhook trigger each, label paths over a few hundred values,
limits at the maximum of 1000/h, which at the defaults no automation reaches, so every event
creates or continues a chat or is filtered), then runs the real processes:

* the gateway under gunicorn (``automations gateway``; by default two processes per CPU,
  4 gthreads each),
* ``--workers`` Celery workers (``automations worker --concurrency N``),
* one beat (sweeper, cron dispatch, purge),

and posts signed ~1 KB webhooks at ``--rate`` requests/s over keep-alive connections for
``--duration`` seconds. It prints throughput, p50/p99 latency (overall and per sample window),
the backlog, and the resident memory (RSS summed over each process tree via /proc) of every
process at the start, at ``--samples`` points in between and at the end. Growth of more than
``--growth-limit`` (20 %) between the first sample after ``--warmup`` and the end is flagged
and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg2  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from shared.infra.db import migrate  # noqa: E402
from shared.infra.db.engine import make_engine  # noqa: E402
from shared.models import AutomationEvent  # noqa: E402
from shared.triggers.signatures import sign_github  # noqa: E402
from tests.faults.harness import SECRET, AutomationSpec, seed  # noqa: E402
from tests.harness.processes import (  # noqa: E402
    Proc,
    service_env,
    start_beat,
    start_gateway,
    start_worker,
)
from tests.harness.services import ThrowawayRedis, find_postgres, find_redis  # noqa: E402

DB_NAME = "bench_soak"
REDIS_DB = 11  # with --shared-redis; the other benches use 12-14

SPECS = (
    AutomationSpec("solo", {}, max_chat_creates_per_hour=1000),
    AutomationSpec("repo", {"repo": "repository.full_name"}, group="shared"),
    AutomationSpec("repo-too", {"repo": "repository.full_name"}, group="shared"),
    AutomationSpec(
        "pr",
        {"repo": "repository.full_name", "pr": "pull_request.number"},
        filter={"action": {"$in": ["opened", "synchronize"]}},
    ),
    AutomationSpec("issue", {"issue": "issue.number"}),
    AutomationSpec("service", {"service": "alert.service", "severity": "alert.severity"}),
)


def fresh_database(base_url: str) -> str:
    url = make_url(base_url)
    admin = psycopg2.connect(
        dbname=url.database, user=url.username, host=url.host, port=url.port, password=url.password
    )
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (DB_NAME,)
        )
        cur.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}"')
        cur.execute(f'CREATE DATABASE "{DB_NAME}"')
    admin.close()
    return url.set(database=DB_NAME).render_as_string(hide_password=False)


def body_for(seq: int, rng: random.Random) -> bytes:
    doc = {
        "action": rng.choice(["opened", "synchronize", "closed"]),
        "repository": {"full_name": f"acme/repo-{rng.randrange(40)}"},
        "pull_request": {"number": rng.randrange(1, 400), "title": f"change {seq}"},
        "issue": {"number": rng.randrange(1, 2000), "title": "Something broke"},
        "alert": {"service": f"svc-{rng.randrange(30)}", "severity": rng.choice(["p1", "p2"])},
        "sender": {"login": "octocat", "id": 583231, "type": "User"},
        "seq": seq,
        "note": "x" * 600,
    }
    return json.dumps(doc).encode()


# --- memory -----------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mib(root: int, kids: dict[int, list[int]]) -> tuple[float, int]:
    """(RSS of ``root`` and all its descendants in MiB, number of processes)."""
    total, n, stack = 0, 0, [root]
    while stack:
        pid = stack.pop()
        rss = _rss_kib(pid)
        if rss:
            total += rss
            n += 1
        stack.extend(kids.get(pid, []))
    return total / 1024, n


# --- load -------------------------------------------------------------------------------------


@dataclass
class Load:
    host: str
    port: int
    triggers: list[uuid.UUID]
    rate: float
    duration: float
    threads: int
    started: float = 0.0
    #: (send time relative to start, latency seconds, status or "conn")
    results: list[tuple[float, float, str]] = field(default_factory=list)
    late: int = 0
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        self.started = time.monotonic()
        workers = [threading.Thread(target=self._loop, daemon=True) for _ in range(self.threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()

    def _loop(self) -> None:
        rng = random.Random()
        conn: http.client.HTTPConnection | None = None
        run = uuid.uuid4().hex[:8]
        while True:
            with self._lock:
                seq = self._next
                self._next += 1
            due = self.started + seq / self.rate
            if due - self.started >= self.duration:
                break
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:
                self.late += 1
            trigger = self.triggers[seq % len(self.triggers)]
            body = body_for(seq, rng)
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": f"{run}-{seq}",
                "X-Hub-Signature-256": sign_github(SECRET, body),
            }
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                conn.request(
                    "POST", f"/api/v1/automations/triggers/{trigger}/webhook", body, headers
                )
                resp = conn.getresponse()
                resp.read()
                status = str(resp.status)
            except (OSError, http.client.HTTPException):
                status = "conn"
                if conn is not None:
                    conn.close()
                conn = None
            t1 = time.monotonic()
            self.results.append((t0 - self.started, t1 - t0, status))  # list.append is atomic


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load (600)")
    ap.add_argument("--rate", type=float, default=100.0, help="requests per second (100)")
    ap.add_argument("--workers", type=int, default=2, help="Celery worker processes (2)")
    ap.add_argument("--concurrency", type=int, default=2, help="pool size of each worker (2)")
    ap.add_argument("--connections", type=int, default=8, help="sender threads/connections (8)")
    ap.add_argument(
        "--copies",
        type=int,
        default=15,
        help="copies of the six automations (15: 90 automations, so that at 100 req/s for\n"
        "10 minutes no automation reaches its 1000/h limits and every event does real work)",
    )
    ap.add_argument(
        "--shared-redis",
        action="store_true",
        help="use the machine's Redis (database 12) instead of a private redis-server; on a\n"
        "shared machine a concurrent test run may pick the same database and flush it",
    )
    ap.add_argument("--samples", type=int, default=10, help="memory samples during the run (10)")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline (60)")
    ap.add_argument("--growth-limit", type=float, default=0.20, help="flag RSS growth above (0.2)")
    args = ap.parse_args()

    pg = find_postgres()
    private_redis: ThrowawayRedis | None = None
    if args.shared_redis:
        rd = find_redis()
        redis_url = rd.url
    else:
        private_redis = ThrowawayRedis()
        private_redis.start()
        redis_url = private_redis.url
    if pg.url is None or redis_url is None:
        print("PostgreSQL/Redis unavailable", file=sys.stderr)
        return 2
    db_url = fresh_database(pg.url)
    migrate.upgrade(db_url)
    broker = f"{redis_url}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    engine = make_engine(db_url, pool_size=2, max_overflow=2)
    specs = [
        dataclasses.replace(spec, key=f"{spec.key}-{i}", group=spec.group and f"{spec.group}-{i}")
        for i in range(args.copies)
        for spec in SPECS
    ]
    seeded = seed(engine, specs)
    triggers = [t for _, t in seeded.webhook_triggers]

    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    (workdir / "metrics").mkdir()
    env = service_env(
        database_url=db_url,
        broker_url=broker,
        data_dir=workdir / "var",
        extra={"PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics")},
    )
    procs: list[Proc] = []
    try:
        gateway, base = start_gateway(env, workdir, timeout=60)
        procs.append(gateway)
        for i in range(args.workers):
            procs.append(
                start_worker(
                    env, workdir, "--concurrency", str(args.concurrency), name=f"worker-{i}"
                )
            )
        procs.append(start_beat(env, workdir))
        host, port = env["AUTOMATIONS_BIND"].rsplit(":", 1)
        print(
            f"soak: {args.duration:.0f}s at {args.rate:g} req/s; gateway {base}, "
            f"{args.workers} worker(s) x {args.concurrency}, beat; database {DB_NAME}; "
            f"logs in {workdir}",
            flush=True,
        )

        load = Load(host, int(port), triggers, args.rate, args.duration, args.connections)
        loader = threading.Thread(target=load.run, daemon=True)
        samples: list[tuple[float, dict[str, tuple[float, int]], int, int]] = []
        q = redis.Redis.from_url(broker)

        def sample(at: float) -> None:
            kids = _children()
            rss = {p.name: tree_rss_mib(p.pid, kids) for p in procs}
            with engine.connect() as conn:
                pending = int(
                    conn.execute(
                        select(func.count()).where(AutomationEvent.status == "pending")
                    ).scalar_one()
                )
            backlog = int(q.llen("events"))  # type: ignore[arg-type]
            samples.append((at, rss, backlog, pending))
            mem = "  ".join(f"{n} {m:.0f} MiB/{k}p" for n, (m, k) in rss.items())
            print(f"  t={at:5.0f}s  backlog {backlog:5d}  pending {pending:5d}  {mem}", flush=True)

        sample(0.0)
        loader.start()
        every = args.duration / (args.samples + 1)
        marks = sorted({args.warmup, *(every * i for i in range(1, args.samples + 1))})
        for mark in marks:
            if mark >= args.duration:
                continue
            time.sleep(max(0.0, load.started + mark - time.monotonic()))
            sample(time.monotonic() - load.started)
        loader.join()
        load_end = time.monotonic() - load.started
        sample(load_end)

        # drain: wait (bounded) until nothing is pending
        drain_start = time.monotonic()
        while time.monotonic() - drain_start < 120:
            with engine.connect() as conn:
                pending = conn.execute(
                    select(func.count()).where(AutomationEvent.status == "pending")
                ).scalar_one()
            if not pending:
                break
            time.sleep(1)
        drained = time.monotonic() - drain_start
        with engine.connect() as conn:
            statuses = {
                str(s): int(n)
                for s, n in conn.execute(
                    select(AutomationEvent.status, func.count()).group_by(AutomationEvent.status)
                ).all()
            }
    finally:
        for p in reversed(procs):
            p.stop()
        engine.dispose()
        if private_redis is not None:
            private_redis.close()

    # --- report --------------------------------------------------------------------------------
    results = load.results
    ok = [lat for _, lat, s in results if s == "202"]
    bad: dict[str, int] = {}
    for _, _, s in results:
        if s != "202":
            bad[s] = bad.get(s, 0) + 1
    print()
    print(f"requests: {len(results)} in {load_end:.1f}s; 202: {len(ok)}; other: {bad or 0}")
    print(
        f"throughput: {len(ok) / load_end:.1f} accepted/s (target {args.rate:g}); "
        f"latency p50 {1000 * pct(ok, 0.5):.1f} ms, p99 {1000 * pct(ok, 0.99):.1f} ms, "
        f"max {1000 * max(ok, default=0):.0f} ms; sent more than 1 s late: {load.late}"
    )
    print(f"events: {statuses}; drained {drained:.1f}s after the load stopped")
    processed = sum(n for s, n in statuses.items() if s != "pending")
    print(f"processed: {processed} events, {processed / (load_end + drained):.1f}/s")

    print("\nlatency per window (202s):")
    bounds = [s[0] for s in samples]
    for lo, hi in itertools.pairwise(bounds):
        window = [lat for t, lat, s in results if lo <= t < hi and s == "202"]
        if window:
            print(
                f"  {lo:5.0f}-{hi:5.0f}s  n={len(window):6d}  "
                f"p50 {1000 * statistics.median(window):6.1f} ms  "
                f"p99 {1000 * pct(window, 0.99):7.1f} ms"
            )

    names = list(samples[0][1])
    baseline = next((s for s in samples if s[0] >= args.warmup - 1), samples[0])
    end = samples[-1]
    print(f"\nresident memory (MiB, process tree), baseline = sample at t={baseline[0]:.0f}s:")
    print("| process | start | " + " | ".join(f"t={s[0]:.0f}s" for s in samples[1:]) + " |")
    print("| --- " * (len(samples) + 1) + "|")
    flagged = []
    for name in names:
        row = [f"{s[1][name][0]:.1f}" for s in samples]
        print(f"| {name} ({samples[0][1][name][1]}p) | " + " | ".join(row) + " |")
        b, e = baseline[1][name][0], end[1][name][0]
        growth = (e - b) / b if b else 0.0
        if growth > args.growth_limit:
            flagged.append(f"{name}: {b:.1f} -> {e:.1f} MiB (+{100 * growth:.0f}%)")
    for name in names:
        b, e = baseline[1][name][0], end[1][name][0]
        print(f"  {name}: after warm-up {b:.1f} MiB, end {e:.1f} MiB ({(e - b):+.1f} MiB)")
    if flagged:
        print(f"\nMEMORY GROWTH FLAGGED (> {100 * args.growth_limit:.0f}% after warm-up):")
        for line in flagged:
            print(f"  {line}")
        return 1
    print(f"\nmemory: no process tree grew more than {100 * args.growth_limit:.0f}% after warm-up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
