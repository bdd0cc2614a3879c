"""Tests of :mod:`shared.lib.gjson`: unit tests, conformance vectors, a bad-input sweep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

#: Per call. A correctness bound against hangs and exponential blow-ups, not a speed target.
BOUND_S = 2.0


def timed(fn: Callable[[], Any], what: str) -> Any:
    """Run ``fn`` and fail when it burns more than :data:`BOUND_S` of CPU. CPU time of this
    thread: a hang burns it, other processes' load on the machine does not."""
    started = time.thread_time()
    try:
        return fn()
    finally:
        elapsed = time.thread_time() - started
        assert elapsed < BOUND_S, f"{what} took {elapsed:.2f}s of CPU"
