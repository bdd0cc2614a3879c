"""Bounds of the path engine, and the work budget of one evaluation.

Compilation rejects paths longer than :data:`MAX_PATH_LENGTH` or nested deeper
than :data:`MAX_PATH_NESTING`; evaluation spends at most :data:`MAX_EVAL_OPS`
work units (tracked by a :class:`Ctx`) and fans out at most
:data:`MAX_EVAL_DEPTH` levels deep, and raises :class:`PathError` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .errors import PathError

#: Deepest nesting of sub-paths (queries, multipaths, ``#.`` maps) in a path.
MAX_PATH_NESTING: Final = 32
#: Longest accepted path, in characters.
MAX_PATH_LENGTH: Final = 65_536
#: Work units (candidates, elements, selectors, visited nodes) one evaluation
#: may spend before it is abandoned with :class:`PathError`.
MAX_EVAL_OPS: Final = 1_000_000
#: Deepest recursion of fan-out (wildcards) during one evaluation.
MAX_EVAL_DEPTH: Final = 256
#: With a ``tick``, work units are granted in slices of this size and ``tick`` runs between
#: slices (a few milliseconds of work), so a caller's CPU budget can stop a long evaluation.
TICK_OPS: Final = 4096


class Ctx:
    """The budget of one evaluation: work units left, and the current fan-out depth.

    ``ops`` is the current slice; :meth:`refill` (called when it runs out) grants the next
    one from ``reserve`` after calling ``tick``, which may raise to abandon the evaluation.
    """

    __slots__ = ("depth", "ops", "reserve", "tick")

    def __init__(self, tick: Callable[[], None] | None = None) -> None:
        self.tick = tick
        self.ops = MAX_EVAL_OPS if tick is None else TICK_OPS
        self.reserve = MAX_EVAL_OPS - self.ops
        self.depth = 0

    def refill(self) -> None:
        """``ops`` ran out: raise :class:`PathError` when the whole budget is spent, else
        call ``tick`` and grant the next slice."""
        while self.ops < 0:
            if self.reserve <= 0:
                raise exhausted()
            if self.tick is not None:
                self.tick()
            grant = min(TICK_OPS, self.reserve)
            self.reserve -= grant
            self.ops += grant

    def poll(self, done: int) -> None:
        """In a loop whose work was charged up front: call ``tick`` every :data:`TICK_OPS`
        items (``done`` counts the items processed so far)."""
        if self.tick is not None and done % TICK_OPS == 0:
            self.tick()


def exhausted() -> PathError:
    return PathError(f"path evaluation exceeded {MAX_EVAL_OPS} steps", 0)
