"""CPU seconds by process group, from /proc (Linux; empty elsewhere), for the benchmarks'
"CPU ms per request" lines."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

#: (pid, parent pid, command name) -> group name, or None for "other"
Classifier = Callable[[int, int, str], str | None]


def _group_by_service(pid: int, ppid: int, comm: str) -> str | None:
    if comm.startswith("postgres"):
        return "postgres"
    if comm.startswith("redis"):
        return "redis"
    return None


def cpu_by_group(classify: Classifier) -> dict[str, float]:
    """CPU seconds used so far by every process, summed per group: ``classify`` names the
    group of a process, else PostgreSQL and Redis processes are grouped by name and the rest
    is ``other``."""
    groups: dict[str, float] = {}
    proc = Path("/proc")
    if not proc.exists():
        return groups
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        pid, ppid = int(entry.name), int(fields[1])
        utime, stime = int(fields[11]), int(fields[12])
        group = classify(pid, ppid, comm) or _group_by_service(pid, ppid, comm) or "other"
        groups[group] = groups.get(group, 0.0) + (utime + stime) / TICKS
    return groups


def per_unit_ms(before: dict[str, float], after: dict[str, float], units: int) -> str:
    """``group x.xx, …  (total y.yy)`` in CPU milliseconds per unit of work, leaving out
    ``other`` (the machine's other tenants: too noisy to attribute)."""
    if not after or not units:
        return "n/a (no /proc)"
    per = {
        g: (after.get(g, 0.0) - before.get(g, 0.0)) * 1000 / units
        for g in sorted(after)
        if g != "other"
    }
    body = ", ".join(f"{g} {v:.2f}" for g, v in per.items())
    return f"{body} (total {sum(per.values()):.2f})"


def machine_times() -> tuple[float, float, float]:
    """(busy, steal, total) jiffies of all CPUs so far, from /proc/stat (zeros elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    steal = fields[7] if len(fields) > 7 else 0
    total = sum(fields[:8])
    return float(total - idle - steal), float(steal), float(total)


def machine_usage(before: tuple[float, float, float], after: tuple[float, float, float]) -> str:
    """``CPUs busy x % (steal y %)`` between two :func:`machine_times` readings."""
    total = after[2] - before[2]
    if total <= 0:
        return "n/a"
    busy = (after[0] - before[0]) / total * 100
    steal = (after[1] - before[1]) / total * 100
    return f"all CPUs busy {busy:.0f} %, stolen by the hypervisor {steal:.0f} %"


_PROBE_TABLE: list[dict[str, int]] = []
_PROBE_ORDER: list[int] = []


def host_probe_ms(rounds: int = 3) -> float:
    """CPU milliseconds of a fixed workload (the fastest of ``rounds``): how fast this host
    runs Python right now, interpreter and memory alike (dict updates in a small table, then
    a walk in random order over 100,000 small dicts, about 20 MB, which misses the caches).
    Shared vCPUs vary by tens of percent between runs of the same code; a benchmark figure is
    comparable with another only at a similar probe."""
    if not _PROBE_TABLE:
        import random

        _PROBE_TABLE.extend({"n": i, "m": i * 7} for i in range(100_000))
        _PROBE_ORDER.extend(random.Random(1).sample(range(100_000), 100_000))
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        table: dict[int, int] = {}
        for i in range(50_000):
            table[i & 1023] = table.get(i & 1023, 0) + i * 3
        total = 0
        for i in _PROBE_ORDER:
            total += _PROBE_TABLE[i]["m"]
        best = min(best, time.process_time() - start)
    return best * 1000


def ipc_probe_us(round_trips: int = 3000) -> float:
    """Microseconds per round trip of one byte between two processes over pipes (wall time,
    the median of three runs): what every hand-off between the worker's processes, Redis and
    PostgreSQL costs on this host right now (wake-ups, context switches). It moves
    independently of :func:`host_probe_ms` on shared vCPUs."""
    runs = []
    for _ in range(3):
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            for _ in range(round_trips):
                os.read(r1, 1)
                os.write(w2, b"x")
            os._exit(0)
        start = time.perf_counter()
        for _ in range(round_trips):
            os.write(w1, b"x")
            os.read(r2, 1)
        runs.append((time.perf_counter() - start) / round_trips * 1e6)
        os.waitpid(pid, 0)
        for fd in (r1, w1, r2, w2):
            os.close(fd)
    return sorted(runs)[1]
