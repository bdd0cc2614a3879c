"""Bounds of the path engine, and the work budget of one evaluation.

Compilation rejects paths longer than :data:`MAX_PATH_LENGTH` or nested deeper
than :data:`MAX_PATH_NESTING`; evaluation spends at most :data:`MAX_EVAL_OPS`
work units (tracked by a :class:`Ctx`) and fans out at most
:data:`MAX_EVAL_DEPTH` levels deep, and raises :class:`PathError` otherwise.
"""

from __future__ import annotations

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


class Ctx:
    """The budget of one evaluation: work units left, and the current fan-out depth."""

    __slots__ = ("depth", "ops")

    def __init__(self) -> None:
        self.ops = MAX_EVAL_OPS
        self.depth = 0


def exhausted() -> PathError:
    return PathError(f"path evaluation exceeded {MAX_EVAL_OPS} steps", 0)
