"""Automation filters and labels over webhook payloads (paths are gjson paths).

A *filter* is a JSON object ``{path: expected}``; every entry must hold for
the filter to match.  An entry holds when the path exists and its value
equals ``expected`` by JSON type:

* numbers compare numerically (``1 == 1.0``), but ``"1" != 1``;
* booleans are not numbers (``true != 1``);
* ``null`` matches only an existing ``null`` (a missing path is not null);
* objects and arrays compare deeply with the same typed equality.

An ``expected`` object with exactly one key among ``$in $ne $exists $regex
$gt $gte $lt $lte`` is an operator instead of a literal object:

* ``{"$in": [...]}`` - value typed-equals one of the list items;
* ``{"$ne": x}`` - path missing, or value not typed-equal to ``x``;
* ``{"$exists": true|false}`` - presence of the path;
* ``{"$regex": "..."}`` - ``re.search`` on string values only.  Python's
  backtracking engine has no time limit, so patterns are bounded by static
  analysis (see :func:`regex_input_limit` and :mod:`shared.triggers.regex_cost`):
  backreferences and quantifiers or alternations inside a variable-length
  quantifier (``(a+)+``, ``(a|aa)*``) are rejected, at most
  :data:`MAX_REGEX_DEGREE` unbounded quantifiers are allowed, syntax the
  analysis does not know (e.g. verbose mode) is rejected, and string values
  longer than the pattern's input limit (64 KiB for patterns without unbounded
  quantifiers, about 10,000 characters with one, 460 with two, 100 with three)
  never match;
* ``{"$gt"|"$gte"|"$lt"|"$lte": x}`` - numbers against numbers, strings
  against strings; anything else does not match.

An empty or absent filter matches everything.

*Labels* map names to paths; a missing path omits the label, otherwise the
label is ``get(...).string()`` (strings as-is, numbers in shortest form,
``true``/``false``, objects/arrays as compact JSON, ``null`` as ``""``).
"""

from __future__ import annotations

import math
import re
import warnings
from functools import lru_cache
from typing import Any, Final

from shared.lib import gjson
from shared.lib.gjson import PathError
from shared.triggers.regex_cost import RegexTooCostly, regex_cost

__all__ = [
    "FilterError",
    "filter_matches",
    "regex_input_limit",
    "resolve_labels",
    "typed_equal",
    "validate_filter",
    "validate_label_paths",
]

MAX_FILTER_ENTRIES: Final = 64
MAX_PATH_LENGTH: Final = 1024
MAX_LABELS: Final = 64
MAX_LABEL_NAME_LENGTH: Final = 128
MAX_REGEX_INPUT: Final = 64 * 1024
MAX_REGEX_PATTERN: Final = 1024
#: At most this many unbounded (or wide) quantifiers in one ``$regex`` pattern.
MAX_REGEX_DEGREE: Final = 3
#: Rough number of backtracking steps one ``$regex`` search may take (about 0.1-0.5 s).
REGEX_STEP_BUDGET: Final = 100_000_000
#: Product of the widths of narrow ranges (``{1,3}``) and alternations allowed in a pattern.
MAX_REGEX_BRANCHING: Final = 1024
_NARROW_RANGE = 16
#: Nesting beyond this is not compared (treated as unequal) to stay bounded.
MAX_COMPARE_DEPTH: Final = 256

OPERATORS: Final = frozenset({"$in", "$ne", "$exists", "$regex", "$gt", "$gte", "$lt", "$lte"})


class FilterError(ValueError):
    """A filter or label map is malformed; the message names the path/operator."""


# ---------------------------------------------------------------------------
# typed equality


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def typed_equal(a: Any, b: Any, _depth: int = 0) -> bool:
    """JSON equality that keeps types apart (``1 == 1.0``, ``"1" != 1``,
    ``true != 1``)."""
    if _depth > MAX_COMPARE_DEPTH:
        return False
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a):
        if not _is_number(b):
            return False
        if isinstance(a, float) and math.isnan(a):
            return False
        return bool(a == b)
    if isinstance(a, str):
        return isinstance(b, str) and a == b
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        return all(k in b and typed_equal(v, b[k], _depth + 1) for k, v in a.items())
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return False
        return all(typed_equal(x, y, _depth + 1) for x, y in zip(a, b, strict=True))
    return False


# ---------------------------------------------------------------------------
# validation


def _is_operator(expected: Any) -> bool:
    return isinstance(expected, dict) and len(expected) == 1 and next(iter(expected)) in OPERATORS


def _check_path(path: Any, what: str) -> None:
    if not isinstance(path, str):
        raise FilterError(f"{what} path must be a string, got {type(path).__name__}")
    if path == "":
        raise FilterError(f"{what} path must not be empty")
    if len(path) > MAX_PATH_LENGTH:
        raise FilterError(
            f"{what} path {path[:64]!r}... is longer than {MAX_PATH_LENGTH} characters"
        )
    try:
        gjson.validate(path)
    except PathError as exc:
        raise FilterError(f"invalid {what} path {path!r}: {exc.message}") from None


@lru_cache(maxsize=512)
def _compile_regex(pattern: str) -> re.Pattern[str]:
    # Users' patterns: re's FutureWarnings about syntax that may change meaning later
    # ("possible set union") would otherwise land in the worker's log for every compile.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return re.compile(pattern)


@lru_cache(maxsize=512)
def _regex_plan(pattern: str) -> tuple[re.Pattern[str], int] | str:
    """The compiled pattern and its input limit, or why the pattern is refused."""
    try:
        compiled = _compile_regex(pattern)
        degree, branching = regex_cost(
            pattern,
            max_degree=MAX_REGEX_DEGREE,
            max_branching=MAX_REGEX_BRANCHING,
            narrow_range=_NARROW_RANGE,
        )
    except re.error as exc:
        return f"does not compile: {exc}"
    except RegexTooCostly as exc:
        return f"pattern {exc}"
    except (RecursionError, OverflowError, ValueError) as exc:
        return f"pattern cannot be analysed: {type(exc).__name__}"
    budget = REGEX_STEP_BUDGET / branching
    limit = MAX_REGEX_INPUT if degree == 0 else int(budget ** (1 / (degree + 1)))
    return compiled, min(limit, MAX_REGEX_INPUT)


def regex_input_limit(pattern: str) -> int:
    """Longest string a ``$regex`` pattern is searched in (longer values never match).

    Raises :class:`FilterError` when the pattern is refused."""
    plan = _regex_plan(pattern)
    if isinstance(plan, str):
        raise FilterError(f"$regex {plan}")
    return plan[1]


def _check_operator(path: str, op: str, arg: Any) -> None:
    where = f"filter path {path!r}: operator {op}"
    if op == "$in":
        if not isinstance(arg, list):
            raise FilterError(f"{where} takes a list, got {type(arg).__name__}")
    elif op == "$exists":
        if not isinstance(arg, bool):
            raise FilterError(f"{where} takes true or false, got {arg!r}")
    elif op == "$regex":
        if not isinstance(arg, str):
            raise FilterError(f"{where} takes a string pattern, got {type(arg).__name__}")
        if len(arg) > MAX_REGEX_PATTERN:
            raise FilterError(f"{where} pattern is longer than {MAX_REGEX_PATTERN} characters")
        plan = _regex_plan(arg)
        if isinstance(plan, str):
            raise FilterError(f"{where} {plan}")
    elif op in ("$gt", "$gte", "$lt", "$lte"):
        if not (_is_number(arg) or isinstance(arg, str)):
            raise FilterError(f"{where} takes a number or a string, got {type(arg).__name__}")
        if isinstance(arg, float) and not math.isfinite(arg):
            raise FilterError(f"{where} takes a finite number")
    # $ne accepts anything


def validate_filter(filter: dict[str, Any] | None) -> None:
    """Raise :class:`FilterError` unless ``filter`` is a well-formed filter."""
    if filter is None:
        return
    if not isinstance(filter, dict):
        raise FilterError(
            f"filter must be a JSON object of {{path: expected}}, got {type(filter).__name__}"
        )
    if len(filter) > MAX_FILTER_ENTRIES:
        raise FilterError(
            f"filter has {len(filter)} entries; at most {MAX_FILTER_ENTRIES} are allowed"
        )
    for path, expected in filter.items():
        _check_path(path, "filter")
        if _is_operator(expected):
            op, arg = next(iter(expected.items()))
            _check_operator(path, op, arg)
        elif isinstance(expected, dict):
            bad = [k for k in expected if isinstance(k, str) and k.startswith("$")]
            if bad:
                raise FilterError(
                    f"filter path {path!r}: unknown operator {bad[0]!r} (operators: "
                    f"{', '.join(sorted(OPERATORS))}; an operator must be the only key)"
                )


def validate_label_paths(label_paths: dict[str, Any] | None) -> None:
    """Raise :class:`FilterError` unless ``label_paths`` is ``{name: path}``."""
    if label_paths is None:
        return
    if not isinstance(label_paths, dict):
        raise FilterError(
            f"label paths must be a JSON object of {{label: path}}, got "
            f"{type(label_paths).__name__}"
        )
    if len(label_paths) > MAX_LABELS:
        raise FilterError(f"{len(label_paths)} labels; at most {MAX_LABELS} are allowed")
    for name, path in label_paths.items():
        if not isinstance(name, str) or not name.strip():
            raise FilterError(f"label name {name!r} must be a non-empty string")
        if len(name) > MAX_LABEL_NAME_LENGTH:
            raise FilterError(
                f"label name {name[:32]!r}... is longer than {MAX_LABEL_NAME_LENGTH} characters"
            )
        _check_path(path, f"label {name!r}")


# ---------------------------------------------------------------------------
# evaluation


def _compare(op: str, value: Any, arg: Any) -> bool:
    if _is_number(value) and _is_number(arg):
        if isinstance(value, float) and math.isnan(value):
            return False
    elif not (isinstance(value, str) and isinstance(arg, str)):
        return False
    if op == "$gt":
        return bool(value > arg)
    if op == "$gte":
        return bool(value >= arg)
    if op == "$lt":
        return bool(value < arg)
    return bool(value <= arg)


def _entry_holds(path: str, expected: Any, document: Any) -> bool:
    try:
        res = gjson.get(document, path)
    except PathError:
        return False
    if _is_operator(expected):
        op, arg = next(iter(expected.items()))
        if op == "$exists":
            return res.exists is bool(arg)
        if op == "$ne":
            return not res.exists or not typed_equal(res.value, arg)
        if not res.exists:
            return False
        value = res.value
        if op == "$in":
            return isinstance(arg, list) and any(typed_equal(value, x) for x in arg)
        if op == "$regex":
            if not isinstance(value, str) or not isinstance(arg, str):
                return False
            plan = _regex_plan(arg)
            if isinstance(plan, str):  # stored before the pattern rules tightened
                return False
            compiled, limit = plan
            if len(value) > limit:
                return False
            return compiled.search(value) is not None
        return _compare(op, value, arg)
    return res.exists and typed_equal(res.value, expected)


def filter_matches(filter: dict[str, Any] | None, document: Any) -> bool:
    """True when every entry of ``filter`` holds for the parsed ``document``."""
    if not filter:
        return True
    return all(_entry_holds(path, expected, document) for path, expected in filter.items())


def event_type_accepted(event_types: list[Any] | None, event_type: str | None) -> bool:
    """SPEC 4.2.1: whether a webhook trigger listing ``event_types`` accepts an event of
    ``event_type`` (exact, case-sensitive). An empty list accepts every event, including
    one whose sender named no type; a non-empty list refuses an event without a type."""
    if not event_types:
        return True
    return event_type is not None and event_type in event_types


def resolve_labels(label_paths: dict[str, Any] | None, document: Any) -> dict[str, str]:
    """``{label: get(document, path).string()}`` for every path that exists."""
    out: dict[str, str] = {}
    if not label_paths:
        return out
    for name, path in label_paths.items():
        try:
            res = gjson.get(document, path)
            if res.exists:
                out[name] = res.string()
        except PathError:
            continue
    return out
