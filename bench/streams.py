#!/usr/bin/env python3
"""Webhook ingress with and without 200 open live streams (SPEC 9: open streams must not take
capacity from webhook ingress; goal: at least 0.9 of the throughput without them).

    .venv/bin/python bench/streams.py [--streams 200] [--duration 15] [--rounds 2]

Finds (or starts a throwaway) PostgreSQL and Redis like the test suite, creates and migrates
database ``bench_streams``, seeds an automation with a webhook trigger (as bench/ingest.py)
and one user with ``--streams`` chats, then starts the gateway (``automations gateway``'s
gunicorn) and the stream process (``automations stream``) side by side. Each round measures
ingress for ``--duration`` seconds with no stream open, then again while ``--streams`` streams
are open (one per chat, held by a separate process that reads everything they send) and
``--publish-rate`` live events per second are published to them (deltas of "running turns",
through the same ``shared.chats.live`` publisher the runner uses). It prints both rates, their
ratio, and the median ratio over the rounds. Load generation is bench/ingest.py's (wrk when on
PATH, else its Python client).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

import ingest  # noqa: E402
import redis  # noqa: E402
from proc_cpu import cpu_by_group, machine_times, machine_usage  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from shared import accounts  # noqa: E402
from shared.chats.live import live_events  # noqa: E402
from shared.cli.processes import stream_argv  # noqa: E402
from shared.infra.clock import system_clock  # noqa: E402
from shared.infra.config import Settings  # noqa: E402
from shared.infra.db import migrate  # noqa: E402
from shared.infra.db.engine import make_engine  # noqa: E402
from shared.models import AutomationStatus  # noqa: E402
from shared.triggers.signatures import sign_github  # noqa: E402
from tests import factories  # noqa: E402
from tests.harness.processes import wait_http  # noqa: E402
from tests.harness.services import find_postgres, find_redis, free_port, fresh_pg_database  # noqa: E402

DB_NAME = "bench_streams"
REDIS_DB = 13


def hold_streams(
    port: int, token: str, chat_ids: list[str], ready: Any, stop: Any, out: Any
) -> None:
    """Open one stream per chat over raw sockets and read whatever arrives until ``stop``."""
    sel = selectors.DefaultSelector()
    socks = []
    for chat_id in chat_ids:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(
            (
                f"GET /api/v1/chats/{chat_id}/stream HTTP/1.1\r\nHost: bench\r\n"
                f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        socks.append(sock)
    received = 0
    opened: set[socket.socket] = set()
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.2):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            data = sock.recv(65536)
            if not data:
                sel.unregister(sock)
                continue
            if data.startswith(b"HTTP/") and not data.startswith(
                (b"HTTP/1.1 200", b"HTTP/1.0 200")
            ):
                raise SystemExit(f"stream refused: {data[:200]!r}")
            if sock not in opened and b"event: snapshot" in data:
                opened.add(sock)
                if len(opened) == len(socks):
                    ready.set()
            received += data.count(b"\n\n")
    for sock in socks:
        sock.close()
    out.put({"opened": len(opened), "events": received})


def publish(
    settings: Settings, chat_ids: list[uuid.UUID], rate: float, stop: Any, sent_out: list[int]
) -> None:
    pub = live_events(settings)
    sent = 0
    started = time.monotonic()
    while not stop.is_set():
        if rate <= 0:
            time.sleep(0.1)
            continue
        due = int((time.monotonic() - started) * rate)
        while sent < due:
            pub.publish(chat_ids[sent % len(chat_ids)], "delta", {"text": "lorem ipsum dolor "})
            sent += 1
        time.sleep(0.01)
    sent_out.append(sent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--publish-rate", type=float, default=200.0, help="live events/s")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--load-threads", type=int, default=1)
    parser.add_argument("--python-client", action="store_true", help="do not use wrk")
    args = parser.parse_args()

    pg, rd = find_postgres(), find_redis()
    if pg.url is None or rd.url is None:
        print(
            f"error: PostgreSQL: {pg.reason or 'ok'}; Redis: {rd.reason or 'ok'}", file=sys.stderr
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
            session, system_clock, auto, webhook_secret=ingest.SECRET, replay_window_seconds=0
        )
        org = factories.org(session, system_clock)
        owner = factories.user(session, system_clock, org)
        chats = [factories.chat(session, system_clock, owner, org.id) for _ in range(args.streams)]
        _, token = accounts.create_token(session, system_clock, owner.email)
        chat_ids = [c.id for c in chats]
        trigger_id = str(trigger.id)
        session.commit()

    body = ingest.github_payload()
    signature = sign_github(ingest.SECRET, body)
    workdir = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    body_path = workdir / "body.json"
    body_path.write_bytes(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOMATIONS_", "PROMETHEUS"))}
    gateway_port, stream_port = free_port(), free_port()
    env.update(
        AUTOMATIONS_DATABASE_URL=db_url,
        AUTOMATIONS_BROKER_URL=redis_url,
        AUTOMATIONS_DATA_DIR=str(workdir),
        AUTOMATIONS_BIND=f"127.0.0.1:{gateway_port}",
        AUTOMATIONS_LOG_LEVEL=os.environ.get("AUTOMATIONS_LOG_LEVEL", "WARNING"),
    )
    settings = Settings(database_url=db_url, broker_url=redis_url, data_dir=workdir)
    url = f"http://127.0.0.1:{gateway_port}/api/v1/automations/triggers/{trigger_id}/webhook"
    use_wrk = shutil.which("wrk") is not None and not args.python_client

    def load(secs: float) -> dict[str, Any]:
        if use_wrk:
            return ingest.run_wrk(url, body_path, signature, args, secs, workdir)
        return ingest.run_python(url, body, signature, args, secs)

    gateway = ingest.start_server("webhook_gateway.wsgi:app", env, workdir / "gateway.log")
    with open(workdir / "stream.log", "ab") as log:
        argv = stream_argv(settings, f"127.0.0.1:{stream_port}", threads=max(args.streams, 8) + 50)
        stream = subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    print(
        f"gateway {settings.effective_gateway_workers} workers x {settings.gateway_threads} "
        f"threads; stream process 1 x {max(args.streams, 8) + 50} threads; {args.streams} "
        f"streams, {args.publish_rate:g} live events/s while open; {args.connections} "
        f"connections via {'wrk' if use_wrk else 'python http.client'}; {os.cpu_count()} CPUs; "
        f"{args.duration:g} s per measurement",
        flush=True,
    )
    ratios: list[float] = []
    try:
        wait_http(f"http://127.0.0.1:{gateway_port}/healthz", timeout=60)
        wait_http(f"http://127.0.0.1:{stream_port}/healthz", timeout=60)
        load(args.warmup)

        def classify(pid: int, ppid: int, comm: str) -> str | None:
            if stream.pid in (pid, ppid):
                return "stream"
            if gateway.pid in (pid, ppid):
                return "gateway"
            return None

        def cpu_during(fn: Any) -> tuple[Any, dict[str, float], str]:
            before, machine_before = cpu_by_group(classify), machine_times()
            out = fn()
            after, machine_after = cpu_by_group(classify), machine_times()
            used = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in ("gateway", "stream")}
            return out, used, machine_usage(machine_before, machine_after)

        def with_streams() -> tuple[dict[str, Any], dict[str, Any], int]:
            ready, stop, out = mp.Event(), mp.Event(), mp.Queue()
            holder = mp.Process(
                target=hold_streams,
                args=(stream_port, token, [str(c) for c in chat_ids], ready, stop, out),
            )
            holder.start()
            if not ready.wait(120):
                raise SystemExit("the streams did not all open")
            pub_stop = threading.Event()
            sent: list[int] = []
            publisher = threading.Thread(
                target=publish, args=(settings, chat_ids, args.publish_rate, pub_stop, sent)
            )
            publisher.start()
            result, cpu, machine = cpu_during(lambda: load(args.duration))
            result["cpu"], result["machine"] = cpu, machine
            pub_stop.set()
            publisher.join()
            time.sleep(0.5)
            stop.set()
            held = out.get(timeout=30)
            holder.join()
            return result, held, sent[0]

        for n in range(args.rounds):
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM automation_events"))

            # alternate which comes first: a drifting machine favours neither
            def alone() -> dict[str, Any]:
                out, cpu, machine = cpu_during(lambda: load(args.duration))
                return {**out, "cpu": cpu, "machine": machine}

            if n % 2 == 0:
                without = alone()
                result, held, sent = with_streams()
            else:
                result, held, sent = with_streams()
                without = alone()
            rate0 = without["accepted"] / without["seconds"]
            rate1 = result["accepted"] / result["seconds"]
            ratio = rate1 / rate0 if rate0 else 0.0
            ratios.append(ratio)
            print(
                f"round {n + 1}: 0 streams {rate0:8.1f}/s (p99 {without['p99_ms']:.1f} ms)   "
                f"{held['opened']} streams {rate1:8.1f}/s (p99 {result['p99_ms']:.1f} ms)   "
                f"ratio {ratio:.3f}   ({sent} events published, {held['events']} "
                "received incl. snapshots and keep-alives)",
                flush=True,
            )
            for name, r in (("0 streams", without), (f"{held['opened']} streams", result)):
                secs = r["seconds"]
                print(
                    f"{'':9}{name}: CPU gateway {r['cpu']['gateway'] / secs:.2f} s/s, stream "
                    f"process {r['cpu']['stream'] / secs:.3f} s/s; {r['machine']}",
                    flush=True,
                )
    finally:
        ingest.stop_server(gateway)
        ingest.stop_server(stream)
    median = statistics.median(ratios) if ratios else 0.0
    print(
        f"median ratio over {len(ratios)} rounds: {median:.3f} "
        f"(goal >= 0.9: {'met' if median >= 0.9 else 'NOT met'})"
    )
    redis.Redis.from_url(redis_url).flushdb()
    engine.dispose()
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
