"""The compiled form of a path: opcodes and step classes.

A path compiles into *segments* (separated by ``|`` or by a ``.`` that is
followed by a modifier, ``[`` or ``{``); a segment is a list of *steps*, each
tagged with an opcode (``op``) that the evaluator dispatches on, and with the
position (``pos``) of its text in the path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ._limits import Ctx
from ._match import Glob

# step opcodes
KEY: Final = 0
WILD: Final = 1
COUNT: Final = 2
MAP: Final = 3
QUERY: Final = 4
MOD: Final = 5
LIT: Final = 6
MULTI: Final = 7


class SoftList(list):  # type: ignore[type-arg]
    """Result of ``#(...)#``: gjson records it without a "hit", so a later
    wildcard candidate with a real hit takes precedence."""

    __slots__ = ()


class Step:
    __slots__ = ("op", "pos")

    def __init__(self, op: int, pos: int) -> None:
        self.op = op
        self.pos = pos


class KeyStep(Step):
    __slots__ = ("index", "name")

    def __init__(self, name: str, pos: int) -> None:
        super().__init__(KEY, pos)
        self.name = name
        self.index: int | None = int(name) if name.isascii() and name.isdigit() else None


class WildStep(Step):
    __slots__ = ("glob",)

    def __init__(self, glob: Glob, pos: int) -> None:
        super().__init__(WILD, pos)
        self.glob = glob


class SubStep(Step):
    """``#.rest`` (MAP) - ``sub`` is the compiled rest."""

    __slots__ = ("sub",)

    def __init__(self, op: int, sub: Segments, pos: int) -> None:
        super().__init__(op, pos)
        self.sub = sub


class QueryStep(Step):
    __slots__ = ("all", "number", "path", "qop", "sub", "tilde", "value")

    def __init__(
        self,
        path: Segments | None,
        qop: str,
        value: str,
        all_: bool,
        sub: Segments | None,
        pos: int,
    ) -> None:
        super().__init__(QUERY, pos)
        self.path = path
        self.qop = qop
        self.value = value
        self.all = all_
        self.sub = sub
        self.tilde: str | None = value[1:] if value.startswith("~") else None
        self.number = go_parse_float(value)


class ModStep(Step):
    """``@name:arg`` - ``fn`` is the modifier's implementation (see ``_modifiers``)."""

    __slots__ = ("arg", "fn", "name", "sub")

    def __init__(
        self,
        name: str,
        arg: Any,
        sub: Segments | None,
        pos: int,
        fn: Modifier,
    ) -> None:
        super().__init__(MOD, pos)
        self.name = name
        self.arg = arg
        self.sub = sub
        self.fn: Modifier = fn


class LitStep(Step):
    __slots__ = ("value",)

    def __init__(self, value: Any, pos: int) -> None:
        super().__init__(LIT, pos)
        self.value = value


class MultiStep(Step):
    __slots__ = ("is_object", "selectors")

    def __init__(self, is_object: bool, selectors: list[tuple[str, Segments]], pos: int) -> None:
        super().__init__(MULTI, pos)
        self.is_object = is_object
        self.selectors = selectors


Segments = list[list[Step]]

#: A modifier's implementation: ``fn(value, step, ctx)`` -> the new value (or ``MISSING``).
Modifier = Callable[[Any, ModStep, Ctx], Any]


def go_parse_float(s: str) -> float:
    """strconv.ParseFloat(s, 64) with errors mapped to 0 (as gjson ignores them)."""
    if "_" in s:
        return 0.0
    try:
        return float(s)
    except ValueError:
        return 0.0
