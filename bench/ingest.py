#!/usr/bin/env python3
"""Webhook ingest benchmark: the real gateway vs. a bare Flask endpoint, same gunicorn settings.

    .venv/bin/python bench/ingest.py [--duration 20] [--connections 16] [--rounds 1]

Finds (or starts a throwaway) PostgreSQL and Redis like the test suite does, creates and
migrates its own database ``bench_ingest``, seeds one active automation with a webhook
trigger, then for each server (the gateway, then ``bench/bare_app.py``):

* starts it under gunicorn on 127.0.0.1 with ``webhook_gateway/gunicorn_conf.py``
  (AUTOMATIONS_GATEWAY_WORKERS x AUTOMATIONS_GATEWAY_THREADS, defaults two per CPU x 4),
* warms it up, then posts signed ~5 KB GitHub-like push payloads with unique
  ``X-GitHub-Delivery`` ids for ``--duration`` seconds over keep-alive connections,
* prints accepted requests/s, p50 and p99 latency, and checks that every 202 is a row.

The load generator is ``wrk`` with a Lua script when it is on PATH (``apt-get install wrk``),
else a multi-process Python client using http.client keep-alive connections.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402
from proc_cpu import (  # noqa: E402
    Classifier,
    cpu_by_group,
    machine_times,
    machine_usage,
    per_unit_ms,
)
from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from shared.infra.clock import system_clock  # noqa: E402
from shared.infra.db import migrate  # noqa: E402
from shared.infra.db.engine import make_engine  # noqa: E402
from shared.models import AutomationEvent, AutomationStatus  # noqa: E402
from shared.triggers.signatures import sign_github  # noqa: E402
from tests import factories  # noqa: E402
from tests.harness.processes import wait_http  # noqa: E402
from tests.harness.services import find_postgres, find_redis, free_port, fresh_pg_database  # noqa: E402

SECRET = "5ec12e7" * 9 + "5"  # 64 hex characters
DB_NAME = "bench_ingest"
REDIS_DB = 14

LUA = r"""
local body = io.open(os.getenv("BENCH_BODY"), "rb"):read("*a")
local signature = os.getenv("BENCH_SIGNATURE")
local run = os.getenv("BENCH_RUN")
local counter = 0
local prefix = ""
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  prefix = run .. "-" .. tostring(tid) .. "-"
end

function request()
  counter = counter + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "GitHub-Hookshot/bench",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = prefix .. counter,
    ["X-Hub-Signature-256"] = signature,
  }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def github_payload(target_size: int = 5 * 1024) -> bytes:
    """A push event shaped like GitHub's, padded with commits to about ``target_size``."""
    commits = []
    doc: dict[str, Any] = {
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5",
        "repository": {
            "id": 35129377,
            "name": "public-repo",
            "full_name": "baxterthehacker/public-repo",
            "owner": {"login": "baxterthehacker", "id": 6752317, "type": "User"},
            "private": False,
            "html_url": "https://github.com/baxterthehacker/public-repo",
            "default_branch": "main",
        },
        "pusher": {"name": "baxterthehacker", "email": "baxterthehacker@users.noreply.github.com"},
        "sender": {"login": "baxterthehacker", "id": 6752317, "type": "User"},
        "commits": commits,
    }
    i = 0
    while len(json.dumps(doc)) < target_size:
        i += 1
        commits.append(
            {
                "id": f"{i:040x}",
                "message": f"Update README.md (change {i})",
                "timestamp": "2026-01-15T12:00:00Z",
                "url": f"https://github.com/baxterthehacker/public-repo/commit/{i:040x}",
                "author": {"name": "baxterthehacker", "email": "baxter@example.com"},
                "added": [],
                "removed": [],
                "modified": ["README.md"],
            }
        )
    return json.dumps(doc).encode()


@dataclass
class Result:
    name: str
    requests: int
    accepted: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    rows: int
    cpu: str = ""
    machine: str = ""

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


# --- load generators -----------------------------------------------------------------------


def run_wrk(
    url: str, body_path: Path, signature: str, args: argparse.Namespace, secs: float, workdir: Path
) -> dict[str, Any]:
    script = workdir / "ingest.lua"
    script.write_text(LUA)
    env = dict(
        os.environ,
        BENCH_BODY=str(body_path),
        BENCH_SIGNATURE=signature,
        BENCH_RUN=uuid.uuid4().hex[:12],
    )
    out = subprocess.run(
        [
            "wrk",
            f"-t{args.load_threads}",
            f"-c{args.connections}",
            f"-d{secs:g}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH_JSON "))
    data = json.loads(line.removeprefix("BENCH_JSON "))
    errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    return {
        "requests": data["requests"],
        "accepted": data["requests"] - data["non2xx"] - errors,
        "seconds": data["duration_us"] / 1e6,
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "errors": data["non2xx"] + errors,
    }


def _py_client(
    host: str, port: int, path: str, body: bytes, signature: str, secs: float, conns: int, out: Any
) -> None:
    latencies: list[float] = []
    counts = {"requests": 0, "accepted": 0}
    lock = threading.Lock()
    run = uuid.uuid4().hex[:12]
    deadline = time.monotonic() + secs

    def loop(n: int) -> None:
        conn = HTTPConnection(host, port, timeout=10)
        mine: list[float] = []
        ok = total = 0
        while time.monotonic() < deadline:
            total += 1
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": f"{run}-{n}-{total}",
                "X-Hub-Signature-256": signature,
            }
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok += resp.status == 202
            except OSError:
                conn.close()
                conn = HTTPConnection(host, port, timeout=10)
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)
            counts["requests"] += total
            counts["accepted"] += ok

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((counts, latencies))


def run_python(
    url: str, body: bytes, signature: str, args: argparse.Namespace, secs: float
) -> dict[str, Any]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    procs_n = max(1, args.load_threads)
    per = max(1, args.connections // procs_n)
    queue: Any = mp.Queue()
    procs = [
        mp.Process(
            target=_py_client,
            args=(parts.hostname, parts.port, parts.path, body, signature, secs, per, queue),
        )
        for _ in range(procs_n)
    ]
    started = time.monotonic()
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.monotonic() - started
    lat = sorted(x for _, ls in results for x in ls)
    requests = sum(c["requests"] for c, _ in results)
    accepted = sum(c["accepted"] for c, _ in results)
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [0.0] * 99
    return {
        "requests": requests,
        "accepted": accepted,
        "seconds": elapsed,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "errors": requests - accepted,
    }


# --- servers -------------------------------------------------------------------------------


def start_server(app: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:webhook_gateway.gunicorn_conf",
        "--pythonpath",
        str(REPO / "bench"),
        app,
    ]
    with open(log, "ab") as fh:
        return subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure(
    name: str,
    app: str,
    path: str,
    env: dict[str, str],
    engine: Any,
    body: bytes,
    body_path: Path,
    args: argparse.Namespace,
    workdir: Path,
) -> Result:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM automation_events"))
    port = free_port()
    env = dict(env, AUTOMATIONS_BIND=f"127.0.0.1:{port}")
    proc = start_server(app, env, workdir / f"{name}.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        url = f"http://127.0.0.1:{port}{path}"
        signature = sign_github(SECRET, body)
        use_wrk = shutil.which("wrk") is not None and not args.python_client

        def load(secs: float) -> dict[str, Any]:
            if use_wrk:
                return run_wrk(url, body_path, signature, args, secs, workdir)
            return run_python(url, body, signature, args, secs)

        load(args.warmup)
        with engine.begin() as conn:
            warm_rows = conn.execute(select(func.count()).select_from(AutomationEvent)).scalar_one()
        classify = server_groups(proc.pid)
        cpu_before, machine_before = cpu_by_group(classify), machine_times()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        data = load(args.duration)
        cpu_after, machine_after = cpu_by_group(classify), machine_times()
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if use_wrk:  # wrk has exited: its CPU time is in this process's reaped children
            cpu_before["wrk"] = 0.0
            cpu_after["wrk"] = (
                children_after.ru_utime
                + children_after.ru_stime
                - children_before.ru_utime
                - children_before.ru_stime
            )
        with engine.begin() as conn:
            rows = conn.execute(select(func.count()).select_from(AutomationEvent)).scalar_one()
    finally:
        stop_server(proc)
    result = Result(name=name, rows=rows - warm_rows, **data)
    result.cpu = per_unit_ms(cpu_before, cpu_after, result.requests)
    result.machine = machine_usage(machine_before, machine_after)
    return result


def server_groups(master_pid: int) -> Classifier:
    """gunicorn (master and workers) as a group of its own."""

    def classify(pid: int, ppid: int, comm: str) -> str | None:
        if pid == master_pid or ppid == master_pid:
            return "gunicorn"
        return None

    return classify


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per server")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--load-threads", type=int, default=1, help="wrk threads (or Python client processes)"
    )
    parser.add_argument("--python-client", action="store_true", help="do not use wrk")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate gateway and bare this many times and report the medians",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()

    pg, rd = find_postgres(), find_redis()
    if pg.url is None or rd.url is None:
        print(
            f"error: PostgreSQL: {pg.reason or 'ok'}; Redis: {rd.reason or 'ok'}",
            file=sys.stderr,
        )
        return 2
    db_url = fresh_pg_database(pg.url, DB_NAME)
    migrate.upgrade(db_url)
    redis_url = f"{rd.url}/{REDIS_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    engine = make_engine(db_url)
    with Session(engine) as session:
        auto = factories.automation(session, system_clock, status=AutomationStatus.ACTIVE)
        trigger = factories.webhook_trigger(
            # one body, many delivery ids: the replay window would fold them into one event
            session,
            system_clock,
            auto,
            webhook_secret=SECRET,
            replay_window_seconds=0,
        )
        ids = (str(auto.id), str(trigger.id))
        session.commit()

    body = github_payload()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    body_path = workdir / "body.json"
    body_path.write_bytes(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOMATIONS_", "PROMETHEUS"))}
    env.update(
        AUTOMATIONS_DATABASE_URL=db_url,
        AUTOMATIONS_BROKER_URL=redis_url,
        AUTOMATIONS_DATA_DIR=str(workdir),
        AUTOMATIONS_LOG_LEVEL=os.environ.get("AUTOMATIONS_LOG_LEVEL", "INFO"),
        BENCH_DATABASE_URL=db_url,
        BENCH_SECRET=SECRET,
        BENCH_AUTOMATION_ID=ids[0],
        BENCH_TRIGGER_ID=ids[1],
    )
    for key in (
        "AUTOMATIONS_GATEWAY_WORKERS",
        "AUTOMATIONS_GATEWAY_THREADS",
        "AUTOMATIONS_DB_POOL_SIZE",
        "AUTOMATIONS_DB_MAX_OVERFLOW",
    ):
        if key in os.environ:
            env[key] = os.environ[key]
    from shared.infra.config import Settings

    settings = Settings(database_url=db_url)  # defaults + AUTOMATIONS_* of this process
    loader = "wrk" if shutil.which("wrk") and not args.python_client else "python http.client"
    print(
        f"payload {len(body)} bytes; gunicorn {settings.effective_gateway_workers} workers x "
        f"{settings.gateway_threads} threads; {args.connections} connections via {loader}; "
        f"{os.cpu_count()} CPUs; {args.duration:g} s per server",
        flush=True,
    )

    servers = (
        ("gateway", "webhook_gateway.wsgi:app", f"/api/v1/automations/triggers/{ids[1]}/webhook"),
        ("bare", "bare_app:app", "/hook"),
    )
    rounds: list[tuple[Result, Result]] = []
    for n in range(args.rounds):
        if args.rounds > 1:
            print(f"round {n + 1} of {args.rounds}", flush=True)
        results = []
        for name, app, path in servers:
            res = measure(name, app, path, env, engine, body, body_path, args, workdir)
            results.append(res)
            print(
                f"{name:8s} accepted {res.rate:8.1f}/s  p50 {res.p50_ms:6.2f} ms  "
                f"p99 {res.p99_ms:6.2f} ms  ({res.accepted} accepted, {res.errors} errors, "
                f"{res.rows} rows)",
                flush=True,
            )
            print(f"{'':9}CPU ms/request: {res.cpu}; {res.machine}", flush=True)
            # rows may exceed the count by the requests in flight when the load stopped
            if res.rows < res.accepted:
                print(f"ERROR: {res.accepted} accepted but only {res.rows} rows", file=sys.stderr)
        gateway, bare = results
        rounds.append((gateway, bare))
        print(f"ratio gateway/bare {gateway.rate / bare.rate if bare.rate else 0.0:.2f}")
    # medians over the rounds: on a shared machine single runs swing with the neighbours
    rate = statistics.median(g.rate for g, _ in rounds)
    p99 = statistics.median(g.p99_ms for g, _ in rounds)
    bare_rate = statistics.median(b.rate for _, b in rounds)
    ratio = statistics.median(g.rate / b.rate if b.rate else 0.0 for g, b in rounds)
    if args.rounds > 1:
        print(
            f"median of {args.rounds} rounds: gateway {rate:.1f}/s p99 {p99:.2f} ms, "
            f"bare {bare_rate:.1f}/s, ratio {ratio:.2f}"
        )
    targets = rate >= 1000 and p99 < 50 and ratio >= 0.8
    print(f"targets (>= 1000/s, p99 < 50 ms, >= 0.8 of bare): {'met' if targets else 'NOT met'}")
    if args.json:
        print(
            json.dumps(
                {
                    "rounds": [
                        {r.name: {**r.__dict__, "rate": r.rate} for r in pair} for pair in rounds
                    ],
                    "median": {"rate": rate, "p99_ms": p99, "bare_rate": bare_rate, "ratio": ratio},
                }
            )
        )
    redis.Redis.from_url(redis_url).flushdb()
    engine.dispose()
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
