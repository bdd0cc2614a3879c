"""JSON parsing, serialisation and gjson-style number formatting.

The engine evaluates paths over parsed Python values.  This module turns JSON
text into those values (orjson when possible, the standard library when the
text needs special care) and turns values back into JSON text.

Two details keep results close to gjson, which works on raw text:

* duplicate object keys: gjson returns the *first* member whose key (and
  sub-path) matches.  Objects with duplicate keys parse into :class:`DupDict`,
  a ``dict`` holding the first value of each key plus every ``(key, value)``
  pair in document order, so paths can fall through to later duplicates and
  serialisation can reproduce all members.
* ``-0``: parsed as ``-0.0`` so that ``string()`` prints ``-0`` like gjson.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any, Final

try:  # pragma: no cover - orjson is a declared dependency
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None  # type: ignore[assignment]

from .errors import PathError

#: Values nested deeper than this are refused by serialisation and recursive
#: modifiers (the evaluation of plain paths is iterative and unaffected).
MAX_DEPTH: Final = 512
#: Upper bound on the number of values one serialisation may visit.
MAX_NODES: Final = 500_000
#: Upper bound on the indentation characters one ``@pretty`` result may hold.
MAX_PRETTY_INDENT_CHARS: Final = 16_000_000


class _Missing:
    """Sentinel for "no value" (gjson's non-existent result)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final[Any] = _Missing()


class DupDict(dict):  # type: ignore[type-arg]
    """An object with duplicate keys.

    The mapping holds the first value of every key (gjson's first-match rule);
    ``pairs`` keeps every member in document order and ``dups`` names the keys
    that occur more than once.
    """

    __slots__ = ("dups", "pairs")

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__()
        dups: set[str] = set()
        for k, v in pairs:
            if k in self:
                dups.add(k)
            else:
                dict.__setitem__(self, k, v)
        self.pairs: list[tuple[str, Any]] = pairs
        self.dups: frozenset[str] = frozenset(dups)

    def values_for(self, key: str) -> list[Any]:
        return [v for k, v in self.pairs if k == key]


def make_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a dict from pairs; a :class:`DupDict` when keys repeat."""
    d = dict(pairs)
    if len(d) != len(pairs):
        return DupDict(pairs)
    return d


def iter_items(d: dict[str, Any]) -> list[tuple[str, Any]]:
    if type(d) is DupDict:
        return d.pairs
    return list(d.items())


# ---------------------------------------------------------------------------
# parsing


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return make_object(pairs)


def _parse_int(s: str) -> int | float:
    if s == "-0":
        return -0.0
    return int(s)


def _reject_constant(s: str) -> Any:
    raise ValueError(f"invalid JSON constant {s}")


_STDLIB_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs_hook, parse_int=_parse_int, parse_constant=_reject_constant
)
# Text that orjson would not reproduce faithfully: negative zero integers and
# integers too large for 64 bits (orjson turns those into floats).
_NEG_ZERO = re.compile(rb"-0(?![\d.eE])")
_DIGIT_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19


def _to_bytes(data: str | bytes | bytearray | memoryview) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    return bytes(data)


def _needs_stdlib(raw: bytes) -> bool:
    if b"-0" in raw and _NEG_ZERO.search(raw):
        return True
    return _LONG_DIGIT_RUN in raw.translate(_DIGIT_TO_ZERO)


def parse(data: str | bytes | bytearray | memoryview) -> Any:
    """Parse JSON text; returns :data:`MISSING` when the text is not valid JSON."""
    raw = _to_bytes(data)
    if _orjson is None or _needs_stdlib(raw):
        return _stdlib_parse(raw)
    try:
        value = _orjson.loads(raw)
    except _orjson.JSONDecodeError:
        return MISSING
    if type(value) not in (dict, list):
        return value
    # orjson silently keeps the last of duplicate keys.  When the text holds
    # more `"key":` sequences than the re-serialised value, a key was probably
    # duplicated: re-parse with the pair-preserving decoder.  (A miss only
    # means last-wins semantics for that document.)
    try:
        dumped = _orjson.dumps(value)
    except TypeError:
        return _stdlib_parse(raw)
    if raw.count(b'":') + raw.count(b'" :') > dumped.count(b'":'):
        return _stdlib_parse(raw)
    return value


def _stdlib_parse(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8", "surrogatepass")
        return _STDLIB_DECODER.decode(text)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return MISSING


def parse_lines(data: str | bytes | bytearray | memoryview) -> Any:
    """Parse JSON Lines (any whitespace-separated JSON values) into a list."""
    text = _to_bytes(data).decode("utf-8", "replace")
    out: list[Any] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            return out
        try:
            value, i = _STDLIB_DECODER.raw_decode(text, i)
        except (ValueError, RecursionError):
            return out
        out.append(value)


def parse_value_text(text: str) -> Any:
    """Parse a JSON literal written inside a path (``!{"a":1}``, modifier args)."""
    try:
        return _STDLIB_DECODER.decode(text)
    except (ValueError, RecursionError):
        return MISSING


# ---------------------------------------------------------------------------
# serialisation


def _dump_str(s: str) -> str:
    if _orjson is not None:
        try:
            return _orjson.dumps(s).decode("utf-8")
        except TypeError:
            pass
    return json.dumps(s, ensure_ascii=False)


def format_float_raw(f: float) -> str:
    if math.isfinite(f):
        return repr(f)
    if math.isnan(f):
        return "nan"
    return "inf" if f > 0 else "-inf"


def dumps(value: Any) -> str:
    """Compact JSON text for a value (``{"a":1,"b":[1,2]}``)."""
    t = type(value)
    if t is str:
        return _dump_str(value)
    parts: list[str] = []
    budget = [MAX_NODES]
    _dump_into(value, parts, 0, budget)
    return "".join(parts)


def _dump_into(value: Any, out: list[str], depth: int, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise PathError("value too large to serialise", 0)
    if depth > MAX_DEPTH:
        raise PathError(f"value nesting exceeds {MAX_DEPTH} levels", 0)
    t = type(value)
    if t is str:
        out.append(_dump_str(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif t is float:
        out.append(format_float_raw(value))
    elif t is int:
        out.append(str(value))
    elif isinstance(value, dict):
        out.append("{")
        first = True
        for k, v in iter_items(value):
            if not first:
                out.append(",")
            first = False
            out.append(_dump_str(str(k)))
            out.append(":")
            _dump_into(v, out, depth + 1, budget)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        first = True
        for v in value:
            if not first:
                out.append(",")
            first = False
            _dump_into(v, out, depth + 1, budget)
        out.append("]")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(format_float_raw(float(value)))
    elif isinstance(value, str):
        out.append(_dump_str(str(value)))
    else:
        raise TypeError(f"value of type {t.__name__} is not JSON serialisable")


def pretty(value: Any, indent: str = "  ", prefix: str = "", width: int = 80) -> str:
    """Indented JSON in the style of tidwall/pretty (short scalar arrays inline)."""
    # [values left, characters of indentation left]: a long indent or prefix multiplies the
    # output by the number of lines, so both are bounded
    budget = [MAX_NODES, MAX_PRETTY_INDENT_CHARS]
    out: list[str] = [prefix]
    _pretty_into(value, out, prefix, indent, width, 0, budget)
    out.append("\n")
    return "".join(out)


def _charge(budget: list[int], inner: str) -> None:
    budget[0] -= 1
    budget[1] -= len(inner)
    if budget[0] < 0 or budget[1] < 0:
        raise PathError("value too large to serialise", 0)


def _pretty_into(
    value: Any,
    out: list[str],
    lead: str,
    indent: str,
    width: int,
    depth: int,
    budget: list[int],
) -> None:
    if depth > MAX_DEPTH:
        raise PathError(f"value nesting exceeds {MAX_DEPTH} levels", 0)
    if isinstance(value, dict):
        items = iter_items(value)
        if not items:
            out.append("{}")
            return
        out.append("{\n")
        inner = lead + indent
        for n, (k, v) in enumerate(items):
            _charge(budget, inner)
            out.append(inner + _dump_str(str(k)) + ": ")
            _pretty_into(v, out, inner, indent, width, depth + 1, budget)
            out.append(",\n" if n < len(items) - 1 else "\n")
        out.append(lead + "}")
        return
    if isinstance(value, list):
        if not value:
            out.append("[]")
            return
        if all(not isinstance(v, (dict, list)) for v in value):
            line = "[" + ", ".join(dumps(v) for v in value) + "]"
            if len(lead) + len(line) <= width:
                out.append(line)
                return
        out.append("[\n")
        inner = lead + indent
        for n, v in enumerate(value):
            _charge(budget, inner)
            out.append(inner)
            _pretty_into(v, out, inner, indent, width, depth + 1, budget)
            out.append(",\n" if n < len(value) - 1 else "\n")
        out.append(lead + "]")
        return
    out.append(dumps(value))


# ---------------------------------------------------------------------------
# gjson Result.String() for numbers


def format_number(value: int | float) -> str:
    """Go's ``strconv.FormatFloat(f, 'f', -1, 64)`` (integers print as-is)."""
    if type(value) is int:
        return str(value)
    f = float(value)
    if not math.isfinite(f):
        if math.isnan(f):
            return "NaN"
        return "+Inf" if f > 0 else "-Inf"
    r = repr(f)
    s = format(Decimal(r), "f") if "e" in r or "E" in r else r
    if s.endswith(".0"):
        s = s[:-2]
    return s


def json_type_name(value: Any) -> str:
    """gjson's Result.Type name for a value."""
    if value is MISSING or value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, str):
        return "String"
    if isinstance(value, (int, float)):
        return "Number"
    return "JSON"
