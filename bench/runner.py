#!/usr/bin/env python3
"""Chat runner benchmark (issue 17 "Performance"): turns in flight, turn rate, CPU per turn,
pending-to-request delay, and the event pipeline's rate while the runner is saturated.

    .venv/bin/python bench/runner.py [--chats 200] [--latency 2] [--window 10]
                                     [--events 2000] [--rounds 2] [--concurrency N]

Finds (or starts a throwaway) PostgreSQL and Redis like the test suite does, creates and
migrates its own database ``bench_runner`` and uses Redis database 10. Starts three processes:

* a fake OpenAI-compatible provider (this script with ``--serve-fake``, a process of its own so
  that its CPU is not the worker's): every request waits ``--latency`` seconds, then streams a
  short reply with usage; it records each request's arrival and end and samples its in-flight
  count every 20 ms;
* the chat runner: ``automations worker -Q chats -n bench-chats@%h`` (default concurrency);
* an events-only worker: ``automations worker -Q events -n bench-events@%h``.

The database is dropped and the Redis database emptied at the end. Keep ``--window`` at five
or more latencies: turns start in waves, and a short window counts one wave more or less.

Every round seeds ``--chats`` pending chats (one organization, one automation whose model
config points at the fake) and ``--events`` pending events (bench/pipeline.py's seed: 50
automations without a model config, ~5 KB payloads), then:

1. **events alone**: the events worker stops consuming ``events``, the queue is filled with
   ``process_event`` for every event, the worker consumes again, the clock runs until no event
   is pending;
2. **runner**: ``run_chat`` is published for every chat at once (as after the pipeline's
   commit). Each time the fake receives a chat's request, this script posts a user message to
   that chat (``shared.chats.messages.post_message``, the API's domain function), so every turn
   ends in a follow-up turn and every chat wants a turn all the time: the ideal turn rate is
   ``chats / latency``. After the ramp, a ``--window`` of seconds is measured with the runner
   alone;
3. **events while saturated**: phase 1 again (fresh events) while the runner keeps running.

Figures: peak and mean turns in flight at the fake, turns/s against the ideal, CPU ms per turn
of the chat worker (main + pool processes) and of PostgreSQL/Redis, the delay from the publish
to the fake receiving the request (p50/p99; the claim and the turn's load are inside it), the
gap between a turn's end at the fake and the chat's next request (commit, follow-up publish,
claim, load), and the events rates alone and saturated with their ratio. The machine's other
tenants show in the "all CPUs busy" share and the host probes (bench/proc_cpu.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.request import urlopen

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

CHAT_TAG = re.compile(rb"bench-chat ([0-9a-f-]{36})")
DB_NAME = "bench_runner"
REDIS_DB = 10  # the other benches use 11-14
HOST = socket.gethostname()
CHATS_WORKER = f"bench-chats@{HOST}"
EVENTS_WORKER = f"bench-events@{HOST}"


# --- the fake provider (its own process) ---------------------------------------------------


class _FakeState:
    def __init__(self, latency: float) -> None:
        from tests.harness.fake_providers import Reply, stream_events

        self.latency = latency
        self.events = [
            e.encode()
            for e in stream_events(
                "openai", Reply.ok("Release 1.2 ", "fixed the login ", "bug."), "fake-model-1"
            )
        ]
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.arrivals: list[tuple[str, float]] = []
        self.turns: list[tuple[str, float, float]] = []  # chat, arrival, end
        self.samples: list[tuple[float, int]] = []

    def sample_forever(self) -> None:
        while True:
            with self.lock:
                self.samples.append((time.time(), self.in_flight))
            time.sleep(0.02)


class _FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real provider
    server: _FakeServer

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _json(self, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        st = self.server.state
        since = int(self.path.rpartition("=")[2]) if "since=" in self.path else 0
        with st.lock:
            if self.path.startswith("/arrivals"):
                self._json({"arrivals": st.arrivals[since:], "in_flight": st.in_flight})
                return
            doc = {"peak": st.peak, "turns": st.turns, "samples": st.samples}
            if self.path.startswith("/reset"):
                st.peak, st.turns, st.samples, st.arrivals = st.in_flight, [], [], []
        self._json(doc)

    def do_POST(self) -> None:
        st = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        found = CHAT_TAG.search(body)
        chat = found.group(1).decode() if found else "?"
        arrival = time.time()
        with st.lock:
            st.in_flight += 1
            st.peak = max(st.peak, st.in_flight)
            st.arrivals.append((chat, arrival))
        try:
            time.sleep(st.latency)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in st.events:
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        finally:
            with st.lock:
                st.in_flight -= 1
                st.turns.append((chat, arrival, time.time()))


class _FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048
    state: _FakeState


def serve_fake(latency: float) -> None:
    server = _FakeServer(("127.0.0.1", 0), _FakeHandler)
    server.state = _FakeState(latency)
    threading.Thread(target=server.state.sample_forever, daemon=True).start()
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.05)


# --- the driver ---------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def get_json(url: str) -> Any:
    with urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


class Bench:
    def __init__(self, args: argparse.Namespace, db_url: str, broker: str, tmp: Path) -> None:
        from sqlalchemy.orm import Session

        from shared.infra.broker import Publisher, producer_app
        from shared.infra.config import Settings
        from shared.infra.db.engine import make_engine
        from shared.infra.db.uow import Database

        self.args = args
        self.db_url = db_url
        self.engine = make_engine(db_url)
        self.app = producer_app(Settings(database_url=db_url, broker_url=broker, data_dir=tmp))
        self.db = Database(self.engine, Publisher(self.app))
        self.Session = Session
        self.fake_url = ""
        self.posting = threading.Event()
        self.posted = 0
        self.post_errors = 0

    # seeding

    def seed_chats(self, n: int) -> tuple[list[uuid.UUID], Any]:
        from shared.accounts.authz import Principal
        from shared.infra.clock import FrozenClock
        from shared.models import ChatStatus, OrgRole, SiteRole
        from tests import factories as f
        from tests.runner.runner_helpers import add_message, model_config

        clock = FrozenClock(datetime.now(UTC) - timedelta(seconds=1))
        with self.Session(self.engine) as s, s.begin():
            org = f.org(s, clock)
            owner = f.user(s, clock, org)
            config = model_config(
                s, clock, org.id, provider="openai", base_url=f"{self.fake_url}/v1"
            )
            auto = f.automation(
                s,
                clock,
                owner,
                organization_id=org.id,
                instructions="You are the release bot. Be brief.",
                model_config_id=config.id,
            )
            ids = []
            for _ in range(n):
                chat = f.chat(
                    s,
                    clock,
                    owner,
                    org.id,
                    automation_id=auto.id,
                    status=ChatStatus.PENDING,
                    queued_at=clock.now(),
                )
                add_message(s, clock, chat.id, f"bench-chat {chat.id}: what changed in 1.2?")
                ids.append(chat.id)
            principal = Principal(
                user_id=owner.id,
                email=owner.email,
                site_role=SiteRole.MEMBER,
                memberships={org.id: OrgRole.MEMBER},
            )
        return ids, principal

    # the follow-up poster: one user message per request the fake receives

    def follow_ups(self, principal: Any, stop: threading.Event) -> None:
        from shared.chats.messages import post_message
        from shared.infra.clock import system_clock

        def post(chat_id: str) -> None:
            try:
                with self.db.unit() as uow:
                    post_message(uow, system_clock, principal, uuid.UUID(chat_id), "And then?")
                self.posted += 1
            except Exception:
                self.post_errors += 1

        seen = 0
        with ThreadPoolExecutor(4, "follow-up") as pool:
            while not stop.is_set():
                new = get_json(f"{self.fake_url}/arrivals?since={seen}")["arrivals"]
                seen += len(new)
                if self.posting.is_set():
                    for chat_id, _ in new:
                        pool.submit(post, chat_id)
                time.sleep(0.05)

    # phases

    def events_phase(self, name: str, ids: list[str], groups: Any) -> tuple[float, str]:
        from proc_cpu import cpu_by_group, machine_times, machine_usage, per_unit_ms
        from sqlalchemy import text

        from shared.infra.queues import PROCESS_EVENT, QUEUE_EVENTS

        ctl = self.app.control
        ctl.cancel_consumer(QUEUE_EVENTS, destination=[EVENTS_WORKER], reply=True, timeout=5)
        with self.app.producer_or_acquire() as producer:
            for event_id in ids:
                self.app.send_task(
                    PROCESS_EVENT, args=[event_id], queue=QUEUE_EVENTS, producer=producer
                )
        cpu0, m0 = cpu_by_group(groups), machine_times()
        start = time.time()
        ctl.add_consumer(QUEUE_EVENTS, destination=[EVENTS_WORKER], reply=False)
        pending = text("SELECT count(*) FROM automation_events WHERE status = 'pending'")
        while True:
            with self.engine.connect() as conn:
                if not conn.scalar(pending):
                    break
            if time.time() - start > self.args.timeout:
                raise TimeoutError(f"{name}: events still pending after {self.args.timeout} s")
            time.sleep(0.05)
        elapsed = time.time() - start
        cpu1, m1 = cpu_by_group(groups), machine_times()
        rate = len(ids) / elapsed
        print(f"  {name}: {len(ids)} events in {elapsed:.2f} s = {rate:,.0f} /s", flush=True)
        print(f"    CPU ms/event: {per_unit_ms(cpu0, cpu1, len(ids))}", flush=True)
        print(f"    {machine_usage(m0, m1)}", flush=True)
        return rate, machine_usage(m0, m1)

    def runner_round(
        self, chat_ids: list[uuid.UUID], principal: Any, event_ids: list[str], groups: Any
    ) -> dict[str, float]:
        from proc_cpu import cpu_by_group, machine_times, machine_usage, per_unit_ms

        from shared.infra.queues import QUEUE_CHATS, RUN_CHAT

        n, latency = len(chat_ids), self.args.latency
        get_json(f"{self.fake_url}/reset")
        stop = threading.Event()
        poster = threading.Thread(target=self.follow_ups, args=(principal, stop), daemon=True)
        self.posting.set()
        poster.start()
        published: dict[str, float] = {}
        t0 = time.time()
        with self.app.producer_or_acquire() as producer:
            for cid in chat_ids:
                self.app.send_task(RUN_CHAT, args=[str(cid)], queue=QUEUE_CHATS, producer=producer)
                published[str(cid)] = time.time()
        print(f"  published {n} run_chat in {time.time() - t0:.2f} s", flush=True)
        # ramp: two turns per chat, so the window starts in the steady state
        time.sleep(2 * latency + 1)
        w0, cpu0, m0 = time.time(), cpu_by_group(groups), machine_times()
        time.sleep(self.args.window)
        w1, cpu1, m1 = time.time(), cpu_by_group(groups), machine_times()
        ev_rate, _ = self.events_phase("events while saturated", event_ids, groups)
        e1 = time.time()
        self.posting.clear()
        stop.set()
        poster.join()
        stats = get_json(f"{self.fake_url}/stats")
        self.wait_settled(chat_ids)

        turns: list[tuple[str, float, float]] = [tuple(t) for t in stats["turns"]]
        samples: list[tuple[float, int]] = [tuple(s) for s in stats["samples"]]

        def window(a: float, b: float) -> tuple[int, float]:
            done = sum(1 for _, _, end in turns if a <= end < b)
            inflight = [k for t, k in samples if a <= t < b]
            return done, statistics.fmean(inflight) if inflight else 0.0

        done, mean_in_flight = window(w0, w1)
        done_ev, mean_ev = window(w1, e1)
        rate, rate_ev = done / (w1 - w0), done_ev / max(e1 - w1, 1e-9)
        ideal = n / latency
        first: dict[str, float] = {}
        by_chat: dict[str, list[tuple[float, float]]] = {}
        for chat, arrival, end in sorted(turns, key=lambda t: t[1]):
            first.setdefault(chat, arrival)
            by_chat.setdefault(chat, []).append((arrival, end))
        delays = [(first[c] - t) * 1000 for c, t in published.items() if c in first]
        gaps = [
            (nxt[0] - cur[1]) * 1000
            for seq in by_chat.values()
            for cur, nxt in itertools.pairwise(seq)
            if w0 <= nxt[0] < w1
        ]
        print(
            f"  runner alone, {w1 - w0:.1f} s window: {done} turns = {rate:.1f} /s; ideal "
            f"{n}/{latency:g} s = {ideal:.1f} /s; ratio {rate / ideal:.2f}",
            flush=True,
        )
        print(
            f"    turns in flight at the fake: peak {stats['peak']}, mean {mean_in_flight:.1f}",
            flush=True,
        )
        print(f"    CPU ms/turn: {per_unit_ms(cpu0, cpu1, done)}", flush=True)
        print(f"    {machine_usage(m0, m1)}", flush=True)
        print(
            f"    publish -> request (first turn, {len(delays)} chats): "
            f"p50 {pct(delays, 0.5):.0f} ms, p99 {pct(delays, 0.99):.0f} ms, "
            f"max {max(delays, default=float('nan')):.0f} ms",
            flush=True,
        )
        print(
            f"    turn end -> next request ({len(gaps)} follow-ups): p50 {pct(gaps, 0.5):.0f} ms,"
            f" p99 {pct(gaps, 0.99):.0f} ms",
            flush=True,
        )
        print(
            f"  runner during the events phase ({e1 - w1:.1f} s): {rate_ev:.1f} turns/s, "
            f"ratio {rate_ev / ideal:.2f}, mean in flight {mean_ev:.1f}",
            flush=True,
        )
        print(f"  follow-up messages posted {self.posted}, failed {self.post_errors}", flush=True)
        return {
            "peak": float(stats["peak"]),
            "mean_in_flight": mean_in_flight,
            "rate": rate,
            "ratio": rate / ideal,
            "ratio_during_events": rate_ev / ideal,
            "p99_delay_ms": pct(delays, 0.99),
            "p99_gap_ms": pct(gaps, 0.99),
            "cpu_ms_per_turn": (
                sum(cpu1.get(g, 0.0) - cpu0.get(g, 0.0) for g in ("chats main", "chats pool"))
                * 1000
                / max(done, 1)
            ),
            "events_saturated": ev_rate,
        }

    def wait_settled(self, chat_ids: list[uuid.UUID], timeout: float = 120) -> None:
        from sqlalchemy import func, select

        from shared.models import Chat, ChatStatus

        deadline = time.time() + timeout
        counts: dict[str, int] = {}
        while time.time() < deadline:
            with self.Session(self.engine) as s:
                rows = s.execute(
                    select(Chat.status, func.count())
                    .where(Chat.id.in_(chat_ids))
                    .group_by(Chat.status)
                ).all()
            counts = {str(ChatStatus(status).value): int(n) for status, n in rows}
            if set(counts) <= {"waiting", "error"}:
                errors = counts.get("error", 0)
                if errors:
                    print(f"  WARNING: {errors} chats in error", flush=True)
                return
            time.sleep(0.2)
        print(f"  WARNING: chats not settled after {timeout} s: {counts}", flush=True)


def start_fake(latency: float) -> tuple[subprocess.Popen[str], str]:
    argv = [sys.executable, __file__, "--serve-fake", "--latency", str(latency)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--window", type=float, default=10.0, help="runner-alone seconds")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="chat worker pool processes (default: "
        "what `automations worker` uses, one per CPU plus one)",
    )
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.latency)
        return 0

    from pipeline import seed as seed_events
    from proc_cpu import host_probe_ms, ipc_probe_us

    from shared.infra.config import Settings
    from tests.harness.processes import Proc, cli, service_env
    from tests.harness.services import (
        drop_pg_database,
        find_postgres,
        find_redis,
        fresh_pg_database,
    )

    pg, rd = find_postgres(), find_redis()
    if pg.url is None or rd.url is None:
        print(f"need PostgreSQL and Redis: {pg.reason or rd.reason}", file=sys.stderr)
        return 2
    db_url = fresh_pg_database(pg.url, DB_NAME, migrated=True)
    broker = f"{rd.url.rstrip('/')}/{REDIS_DB}"
    import redis

    redis.Redis.from_url(broker).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="bench-runner-"))
    concurrency = Settings(database_url=db_url).effective_worker_concurrency
    print(
        f"cpus={os.cpu_count()} chats={args.chats} latency={args.latency:g}s "
        f"window={args.window:g}s events={args.events} worker concurrency="
        f"{args.concurrency or concurrency} (chats), {concurrency} (events); "
        f"host probes: Python {host_probe_ms():.0f} ms, IPC {ipc_probe_us():.1f} µs",
        flush=True,
    )
    print("uptime before: " + subprocess.run(["uptime"], capture_output=True, text=True).stdout)
    fake, fake_url = start_fake(args.latency)
    env = service_env(
        database_url=db_url,
        broker_url=broker,
        data_dir=tmp,
        extra={"AUTOMATIONS_OUTBOUND_ALLOW_PRIVATE": "true", "AUTOMATIONS_LOG_LEVEL": "WARNING"},
    )
    chat_argv = cli("worker", "-Q", "chats", "-n", "bench-chats@%h")
    if args.concurrency:
        chat_argv += ["--concurrency", str(args.concurrency)]
    chats = Proc("bench-chats", chat_argv, env, tmp)
    events = Proc("bench-events", cli("worker", "-Q", "events", "-n", "bench-events@%h"), env, tmp)
    bench = Bench(args, db_url, broker, tmp)
    bench.fake_url = fake_url  # stats at the root; the model config's base_url adds /v1
    me = os.getpid()
    # `timeout` and Ctrl-C: stop the children in the finally below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def groups(pid: int, ppid: int, comm: str) -> str | None:
        for name, proc in (("chats", chats), ("events", events)):
            if pid == proc.pid:
                return f"{name} main"
            if ppid == proc.pid:
                return f"{name} pool"
        if pid == fake.pid:
            return "fake provider"
        if pid == me:
            return "driver"
        return None

    results: list[dict[str, float]] = []
    alone: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while len(bench.app.control.ping([CHATS_WORKER, EVENTS_WORKER], timeout=0.5)) < 2:
            if not (chats.alive() and events.alive()) or time.monotonic() > deadline:
                raise RuntimeError(f"workers did not start:\n{chats.log()[-3000:]}")
        for r in range(args.rounds):
            print(f"round {r + 1} of {args.rounds}", flush=True)
            chat_ids, principal = bench.seed_chats(args.chats)
            # one batch at a time: a phase ends when no event is pending
            ev_alone = seed_events(db_url, args.events, 50)
            alone.append(bench.events_phase("events alone", ev_alone, groups)[0])
            ev_saturated = seed_events(db_url, args.events, 50)
            res = bench.runner_round(chat_ids, principal, ev_saturated, groups)
            res["events_alone"] = alone[-1]
            results.append(res)
    finally:
        chats.stop()
        events.stop()
        fake.terminate()
        fake.wait(10)
        bench.app.close()
        bench.engine.dispose()
        drop_pg_database(db_url)
        redis.Redis.from_url(broker).flushdb()
    print("uptime after: " + subprocess.run(["uptime"], capture_output=True, text=True).stdout)
    header = (
        f"{'round':>5} {'peak':>5} {'mean':>6} {'turns/s':>8} {'ratio':>6} {'ratio+ev':>8} "
        f"{'cpu ms/turn':>11} {'p99 pub->req':>12} {'p99 gap':>8} {'ev alone/s':>10} "
        f"{'ev sat/s':>8} {'ev ratio':>8}"
    )
    print(header)
    for i, x in enumerate(results, 1):
        print(
            f"{i:>5} {x['peak']:>5.0f} {x['mean_in_flight']:>6.1f} {x['rate']:>8.1f} "
            f"{x['ratio']:>6.2f} {x['ratio_during_events']:>8.2f} {x['cpu_ms_per_turn']:>11.2f} "
            f"{x['p99_delay_ms']:>10.0f}ms {x['p99_gap_ms']:>6.0f}ms {x['events_alone']:>10.0f} "
            f"{x['events_saturated']:>8.0f} {x['events_saturated'] / x['events_alone']:>8.2f}"
        )
    goals = (
        f"goals: in flight >= 200 (peak {max(x['peak'] for x in results):.0f}); turn-rate ratio "
        f">= 0.9 (median {statistics.median(x['ratio'] for x in results):.2f}); events ratio "
        f"~1.0 (median "
        f"{statistics.median(x['events_saturated'] / x['events_alone'] for x in results):.2f})"
    )
    print(goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
