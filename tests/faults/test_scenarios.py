"""Fault injection under load (issue 7): real gunicorn gateway, Celery workers and beat on a
private PostgreSQL and Redis, a stream of 2,400 signed webhooks to six automations while a
fault happens, then the delivery invariant (see :mod:`tests.faults.harness`).

Each scenario prints its counts (run with ``-s`` to see them) and takes about a minute.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from shared.infra.clock import OffsetClock
from shared.models import AutomationTrigger
from tests.faults.harness import (
    CronExpectation,
    Report,
    Seeded,
    Sender,
    System,
    check_invariants,
    make_cron_due,
    seed,
    unschedule_cron,
    wait_quiescent,
)
from tests.harness.processes import Proc
from tests.pipeline.helpers import wait_until

pytestmark = [
    pytest.mark.faults,
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.xdist_group("faults"),
    pytest.mark.timeout(240),
]

TOTAL = 2400  # requests per scenario
RATE = 80.0  # requests per second: a 30 s stream


def _start(system: System, workers: int = 2, beats: int = 1) -> list:
    """Gateway, workers and beats, started in parallel (each waits until it is ready)."""
    with ThreadPoolExecutor(max_workers=1 + workers + beats) as pool:
        futures = [pool.submit(system.start_gateway)]
        futures += [pool.submit(system.start_worker, f"worker-{i}") for i in range(workers)]
        futures += [pool.submit(system.start_beat, f"beat-{i}") for i in range(beats)]
        procs = [fut.result() for fut in futures]
    return procs[1 : 1 + workers]


def _at(sender: Sender, seconds: float) -> None:
    """Sleep until ``seconds`` into the stream."""
    delay = seconds - sender.elapsed()
    if delay > 0:
        time.sleep(delay)


def _finish(
    system: System,
    name: str,
    seeded: Seeded,
    sender: Sender,
    *,
    extra: list[str],
    cron: CronExpectation | None = None,
    quiesce_timeout: float = 90,
) -> Report:
    sender.join()
    took = wait_quiescent(system.engine, quiesce_timeout)
    extra = [*extra, f"quiescent {took:.1f}s after the stream ended"]
    report = check_invariants(name, system.engine, seeded, sender, cron=cron, extra=extra)
    print("\n" + report.text(), flush=True)
    system.reports.append(report.text())
    dead = [p.name for p in system.procs if not p.alive() and p is not system.gateway]
    assert not report.problems, report.text() + "\n" + system.logs_tail()
    assert not [p for p in dead if p.startswith("beat")], f"a beat died: {dead}"
    return report


def _answers_between(sender: Sender, start: float, end: float) -> Counter[str]:
    return Counter(outcome for t, outcome in sender.timeline if start <= t <= end)


_TASK_LINE = re.compile(r"Task automations\.process_event\[([0-9a-f-]+)\] (\w+)")


def _unfinished_tasks(proc: Proc) -> set[str]:
    """process_event tasks the worker logged as received but not as finished."""
    received: set[str] = set()
    finished: set[str] = set()
    for task_id, what in _TASK_LINE.findall(proc.log()):
        (received if what == "received" else finished).add(task_id)
    return received - finished


def _kill_when_busy(proc: Proc, timeout: float = 3.0) -> int:
    """SIGKILL the worker's process group as soon as it holds unfinished tasks (or after
    ``timeout``); return how many it held."""
    deadline = time.monotonic() + timeout
    while not _unfinished_tasks(proc) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill_group()  # the main process and its prefork children
    return len(_unfinished_tasks(proc))


def test_worker_sigkilled_repeatedly(system: System) -> None:
    seeded = seed(system.engine)
    workers = _start(system, workers=2)
    sender = Sender(system.base_url, seeded.webhook_triggers, total=TOTAL, rate=RATE).start()
    kills: list[str] = []
    lost_tasks = 0
    for k in range(4):  # t = 4, 10, 16, 22 s: alternately kill worker a / b and replace it
        _at(sender, 4 + 6 * k)
        victim = workers[k % 2]
        held = _kill_when_busy(victim)
        lost_tasks += held
        kills.append(f"t={sender.elapsed():.1f}s {victim.name} holding {held} task(s)")
        workers[k % 2] = system.start_worker(f"worker-r{k}")
    _finish(
        system,
        "worker SIGKILLed repeatedly",
        seeded,
        sender,
        extra=[f"worker kills: {len(kills)}: " + "; ".join(kills)],
    )
    assert lost_tasks > 0, "no kill hit a worker holding a task: nothing was tested"


def test_redis_stopped_for_20s_and_restarted_empty(system: System) -> None:
    seeded = seed(system.engine)
    _start(system, workers=2)
    sender = Sender(
        system.base_url, seeded.webhook_triggers, total=TOTAL, rate=RATE, max_seconds=45
    ).start()
    _at(sender, 4)
    system.redis.stop()
    down_at = sender.elapsed()
    _at(sender, down_at + 20)
    system.redis.start()  # no persistence: every queued message is gone
    up_at = sender.elapsed()
    during = _answers_between(sender, down_at + 0.5, up_at)
    _finish(
        system,
        "Redis stopped for 20 s, restarted empty",
        seeded,
        sender,
        extra=[f"Redis down t={down_at:.1f}s..{up_at:.1f}s; answers meanwhile: {dict(during)}"],
    )
    assert during and set(during) == {"202"}, f"the gateway did not keep answering 202: {during}"


def test_postgres_crashed_and_restarted(system: System) -> None:
    seeded = seed(system.engine)
    _start(system, workers=2)
    sender = Sender(
        system.base_url, seeded.webhook_triggers, total=TOTAL, rate=RATE, max_seconds=45
    ).start()
    _at(sender, 6)
    down_at = sender.elapsed()
    system.pg.stop("immediate")  # a crash: clients cut off, recovery on start
    stopped_at = sender.elapsed()
    time.sleep(6)
    system.pg.start()
    up_at = sender.elapsed()
    during = _answers_between(sender, stopped_at, up_at)
    report = _finish(
        system,
        "PostgreSQL crashed (immediate stop) and restarted",
        seeded,
        sender,
        extra=[
            f"PostgreSQL stopping t={down_at:.1f}s, down t={stopped_at:.1f}s..{up_at:.1f}s; "
            f"answers meanwhile: {dict(during)}"
        ],
    )
    assert during.get("503", 0) > 0, f"no 503 while PostgreSQL was down: {during}"
    assert "500" not in sender.attempt_counts(), report.text()


def test_two_beats_during_cron_fires(system: System) -> None:
    # 200 every-minute cron triggers on two automations (one of them creation-limited), fired
    # while two beats tick every second; a helper makes all of them due again every 2 s
    # within the same minute, so both beats keep racing for slots that were already fired.
    seeded = seed(system.engine, cron_automations=((100, 1000), (100, 150)))
    # Every process runs on the same shifted clock (AUTOMATIONS_CLOCK_OFFSET_SECONDS), set so
    # that the next minute boundary comes about one stream length after the start: no waiting
    # for a wall-clock minute to begin or to end.
    now = datetime.now(UTC)
    offset = (20 - (now.second + now.microsecond / 1e6)) % 60  # shifted "now": hh:mm:20
    system.env["AUTOMATIONS_CLOCK_OFFSET_SECONDS"] = f"{offset:.3f}"
    clock = OffsetClock(offset)
    _start(system, workers=2, beats=2)
    first = make_cron_due(system.engine, seeded.cron_triggers, clock)
    sender = Sender(system.base_url, seeded.webhook_triggers, total=TOTAL, rate=RATE).start()
    boundary = first + timedelta(minutes=1)
    resets = 0
    # Until the next minute starts (and the stream is over): keep re-arming the fired slot.
    while clock.now() < boundary or sender.elapsed() < TOTAL / RATE:
        time.sleep(2)
        if clock.now() < boundary - timedelta(seconds=1):
            make_cron_due(system.engine, seeded.cron_triggers, clock)
            resets += 1
    # Then every trigger must fire the new minute's slot exactly once, and move past it.
    wait_until(
        lambda: _cron_due_at_or_before(system, seeded, boundary) == 0,
        45,
        what=f"every cron trigger to fire the {boundary:%H:%M} slot",
    )
    time.sleep(3)  # a few more ticks of both beats
    unschedule_cron(system.engine, seeded.cron_triggers, clock)
    slots = [first, boundary]
    beats = [p for p in system.procs if p.name.startswith("beat")]
    assert len(beats) == 2 and all(b.alive() for b in beats)
    refused = sum(
        int(n)
        for p in system.procs
        if p.name.startswith("worker")
        for n in re.findall(r"(\d+) fire\(s\) were already recorded", p.log())
    )
    _finish(
        system,
        "two beats during cron fires",
        seeded,
        sender,
        cron=CronExpectation(slots),
        extra=[
            f"two beats ran for {sender.elapsed():.0f}s; all cron triggers made due again "
            f"{resets} times within their minute; re-fires refused by the unique "
            f"(trigger, scheduled time) key: {refused}"
        ],
    )


def _cron_due_at_or_before(system: System, seeded: Seeded, t: datetime) -> int:
    with system.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    AutomationTrigger.id.in_(seeded.cron_triggers),
                    AutomationTrigger.next_fire_at <= t,
                )
            ).scalar_one()
        )


def test_gateway_sigkilled_mid_request(system: System) -> None:
    seeded = seed(system.engine)
    _start(system, workers=2)
    # A faster stream from more connections than the gateway has threads (2 x 8): every kill
    # finds requests in flight, some of them already committed but not yet answered.
    sender = Sender(
        system.base_url,
        seeded.webhook_triggers,
        total=TOTAL,
        rate=160,
        threads=24,
        max_seconds=45,
    ).start()
    kills: list[str] = []
    for k in range(4):  # t = 2, 5.5, 9, 12.5 s
        _at(sender, 2 + 3.5 * k)
        system.kill_gateway()  # gunicorn master and workers, with requests in flight
        killed_at = sender.elapsed()
        system.start_gateway()  # same port; the sender retries with the same delivery ids
        kills.append(f"t={killed_at:.1f}s (back after {sender.elapsed() - killed_at:.1f}s)")
    report = _finish(
        system,
        "gateway SIGKILLed mid-request",
        seeded,
        sender,
        extra=[f"gateway kills: {len(kills)}: " + "; ".join(kills)],
    )
    conn_failures = sum(n for k, n in sender.attempt_counts().items() if k.startswith("conn:"))
    assert conn_failures > 0, "no request was cut off: nothing was tested\n" + report.text()
