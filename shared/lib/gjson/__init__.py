"""A Python implementation of the path syntax of tidwall/gjson.

    >>> from shared.lib.gjson import get
    >>> r = get('{"friends": [{"age": 44}, {"age": 68}]}', "friends.#.age")
    >>> r.value, r.raw, r.string()
    ([44, 68], '[44,68]', '[44,68]')

``get(document, path)`` accepts JSON text (``str``/``bytes``) or an already
parsed value (``dict``/``list``/``int``/``float``/``bool``/``None``; a ``str``
is always treated as JSON text).  Paths are compiled once and cached.

Supported syntax (see gjson's SYNTAX.md): dot paths with ``\\`` escapes,
``*``/``?`` wildcards, array indexes, ``#`` (length), ``#.path`` mapping,
``#(...)``/``#(...)#`` queries (``== != < <= > >= % !%``, ``~true`` etc.,
nested queries, legacy ``#[...]``), ``|`` pipes, multipaths ``[a,b]`` and
``{a,"name":b}``, literals (``!true``, ``!{"a":1}``), JSON Lines (``..``) and
the modifiers ``@reverse @this @flatten @join @keys @values @valid @ugly
@pretty @tostr @fromstr @group @dig``.

Differences from gjson, which works on raw text:

* ``raw`` is re-serialised compact JSON, not the original bytes (original
  whitespace and number spelling are not kept; ``string()`` of numbers
  follows gjson exactly, e.g. ``1.50`` -> ``1.5``, ``1e3`` -> ``1000``).
* duplicate keys in *parsed* dicts cannot exist (the last one won when they
  were parsed); JSON text given to :func:`get` keeps gjson's first-match rule.
* invalid JSON text has no values (gjson scans malformed text leniently).
* :func:`validate` is stricter than gjson's evaluator: unknown modifiers,
  invalid literals, empty components and unknown query operators are
  rejected there, while :func:`get` evaluates them the way gjson does
  (``@key`` is then just a key).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ._compiler import compile_path
from ._eval import CompiledPath
from ._json import MISSING, dumps, format_number, json_type_name, parse, parse_lines, pretty
from .errors import PathError

__all__ = ["CompiledPath", "PathError", "Result", "compile_path", "get", "validate"]

_TEXT_TYPES: Final = (str, bytes, bytearray, memoryview)


class Result:
    """The outcome of :func:`get` (gjson's ``Result``)."""

    __slots__ = ("_v",)

    _v: Any

    def __init__(self, value: Any = MISSING) -> None:
        self._v = value

    @property
    def exists(self) -> bool:
        """True when the path matched a value (``null`` included)."""
        return self._v is not MISSING

    @property
    def value(self) -> Any:
        """The matched value as a Python object (``None`` when missing)."""
        v = self._v
        return None if v is MISSING else v

    @property
    def raw(self) -> str:
        """Compact JSON text of the value; ``""`` when missing."""
        v = self._v
        if v is MISSING:
            return ""
        return dumps(v)

    @property
    def type(self) -> str:
        """gjson's type name: Null, False, Number, String, True or JSON."""
        return json_type_name(self._v)

    def string(self) -> str:
        """gjson's ``Result.String()``."""
        v = self._v
        if type(v) is str:
            return v
        if v is MISSING or v is None:
            return ""
        if v is True:
            return "true"
        if v is False:
            return "false"
        if isinstance(v, (int, float)):
            return format_number(v)
        if isinstance(v, str):
            return str(v)
        return self.raw

    def __str__(self) -> str:
        return self.string()

    def __repr__(self) -> str:
        if self._v is MISSING:
            return "Result(<missing>)"
        return f"Result({self.raw})"


class _PrettyResult(Result):
    """A result whose path ended in ``@pretty``: ``raw`` is indented JSON."""

    __slots__ = ("_opts",)

    def __init__(self, value: Any, opts: dict[str, Any]) -> None:
        super().__init__(value)
        self._opts = opts

    @property
    def raw(self) -> str:
        v = self._v
        if v is MISSING:
            return ""
        opts = self._opts
        indent = opts.get("indent", "  ")
        prefix = opts.get("prefix", "")
        width = opts.get("width", 80)
        return pretty(
            v,
            indent=indent if isinstance(indent, str) else "  ",
            prefix=prefix if isinstance(prefix, str) else "",
            width=width if type(width) is int else 80,
        )


_MISSING_RESULT: Final = Result(MISSING)
_new = object.__new__

# compile_path() is the LRU cache of compiled paths.  _HOT is a plain-dict
# front for it (a dict lookup is cheaper than an lru_cache call); it is
# emptied when full and refilled from the LRU, so it never holds objects the
# LRU did not hand out.
_HOT: dict[str, CompiledPath] = {}
_HOT_MAX: Final = 2048


def _hot_compile(path: str) -> CompiledPath:
    cp = compile_path(path)
    if len(_HOT) >= _HOT_MAX:
        _HOT.clear()
    _HOT[path] = cp
    return cp


def get(document: Any, path: str, tick: Callable[[], None] | None = None) -> Result:
    """Evaluate a gjson path over JSON text or a parsed value.

    Raises :class:`PathError` when the path is malformed or its evaluation
    exceeds the engine's bounds; a path that simply does not match returns a
    result whose ``exists`` is false. ``tick``, when given, is called every few
    thousand work units of a long evaluation; whatever it raises abandons the
    evaluation (the caller's CPU budget).
    """
    cp = _HOT.get(path)
    if cp is None:
        cp = _hot_compile(path)
    keys = cp.keys
    if keys is not None:
        # Fast path: a plain key chain over parsed dicts.  Anything unusual
        # (text documents, arrays, scalars) falls back to full evaluation,
        # which also settles duplicate-key fall-through for DupDicts.
        v = document
        try:
            for k in keys:
                v = v[k]
        except KeyError:
            if type(v) is dict:
                return _MISSING_RESULT
        except (TypeError, IndexError):
            pass
        else:
            r = _new(Result)
            r._v = v
            return r
    return _evaluate(cp, document, tick)


def _evaluate(cp: CompiledPath, document: Any, tick: Callable[[], None] | None) -> Result:
    if type(document) in _TEXT_TYPES:
        document = parse_lines(document) if cp.lines else parse(document)
    elif cp.lines and not isinstance(document, list):
        document = [document]
    v = cp.evaluate(document, tick)
    if v is MISSING:
        return _MISSING_RESULT
    if cp.pretty is not None:
        return _PrettyResult(v, cp.pretty)
    r = _new(Result)
    r._v = v
    return r


def validate(path: str) -> None:
    """Raise :class:`PathError` unless ``path`` is well-formed, supported syntax.

    The message names the offending character position, e.g.
    ``unsupported modifier '@foo' at position 3``.
    """
    if not isinstance(path, str):
        raise PathError(f"path must be a string, not {type(path).__name__}", 0)
    cp = compile_path(path)
    if cp.strict_error is not None:
        raise cp.strict_error
