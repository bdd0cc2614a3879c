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
* ``{"$regex": "..."}`` - a search (not anchored) on string values only, on RE2
  (:mod:`shared.triggers.regex_cost`): linear time, no backreferences or lookarounds; a
  string longer than :data:`MAX_REGEX_INPUT` UTF-8 bytes never matches;
* ``{"$gt"|"$gte"|"$lt"|"$lte": x}`` - numbers against numbers, strings
  against strings; anything else does not match.

An empty or absent filter matches everything.

*Labels* map names to paths; a missing path omits the label, otherwise the
label is ``get(...).string()`` (strings as-is, numbers in shortest form,
``true``/``false``, objects/arrays as compact JSON, ``null`` as ``""``).

**CPU budget.** One worker evaluates every tenant's filters, so the filter and
labels of one event share a :class:`CpuBudget` (:data:`FILTER_BUDGET_MS` of
thread CPU time). It is checked between conditions and labels, inside long
path evaluations (gjson's ``tick``) and long ``$in`` lists; one RE2 search
cannot be interrupted, so it runs only when its estimated worst case
(:func:`~shared.triggers.regex_cost.search_cost_ms`) fits in the budget. Past
the budget, evaluation raises :class:`FilterBudgetExceeded`. At save,
:func:`validate_filter` refuses a filter whose ``$regex`` conditions could
together exceed the budget on the longest searched values (:func:`filter_cost_ms`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Final

from shared.lib import gjson
from shared.lib.gjson import PathError
from shared.triggers.regex_cost import (
    MAX_REGEX_INPUT,
    MAX_REGEX_PATTERN,
    RegexPlan,
    regex_plan,
    search_cost_ms,
)

__all__ = [
    "FILTER_BUDGET_MS",
    "MAX_REGEX_INPUT",
    "MAX_REGEX_PATTERN",
    "CpuBudget",
    "FilterBudgetExceeded",
    "FilterError",
    "FilterEvaluationError",
    "filter_cost_ms",
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
#: CPU milliseconds the filter and labels of one event may take (thread time).
FILTER_BUDGET_MS: Final = 50.0
#: ``$in`` lists and the like check the budget every this many items.
_TICK_ITEMS = 1024
#: Nesting beyond this is not compared (treated as unequal) to stay bounded.
MAX_COMPARE_DEPTH: Final = 256

OPERATORS: Final = frozenset({"$in", "$ne", "$exists", "$regex", "$gt", "$gte", "$lt", "$lte"})


class FilterError(ValueError):
    """A filter or label map is malformed; the message names the path/operator."""


class FilterEvaluationError(Exception):
    """A stored filter could not be evaluated (a ``$regex`` RE2 refuses, or the CPU budget
    ran out): the event becomes ``error`` with this message."""


class FilterBudgetExceeded(FilterEvaluationError):
    """The filter and labels of one event took more than their CPU budget."""


class CpuBudget:
    """Thread CPU time allowed for the filter and labels of one event, from its creation.

    Thread time, not wall time: waiting for the GIL or the database does not count, only the
    work this evaluation did."""

    __slots__ = ("_deadline", "ms")

    def __init__(self, ms: float = FILTER_BUDGET_MS) -> None:
        self.ms = ms
        self._deadline = time.thread_time() + ms / 1000

    def _exceeded(self, where: str) -> FilterBudgetExceeded:
        return FilterBudgetExceeded(
            f"filter evaluation exceeded its {self.ms:g} ms CPU budget (at {where})"
        )

    def check(self, where: str = "filter") -> None:
        """Raise :class:`FilterBudgetExceeded` when the budget is spent."""
        if time.thread_time() > self._deadline:
            raise self._exceeded(where)

    def ticker(self, where: str) -> Callable[[], None]:
        """A ``tick`` for :func:`gjson.get`."""
        return lambda: self.check(where)

    def afford(self, estimate_ms: float, where: str) -> None:
        """Refuse work that cannot be interrupted and whose worst case exceeds the budget."""
        if estimate_ms > self.ms:
            raise FilterBudgetExceeded(
                f"filter evaluation would exceed its {self.ms:g} ms CPU budget (at {where}: "
                f"up to {estimate_ms:.0f} ms estimated)"
            )


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


def _plan_or_refusal(pattern: str) -> RegexPlan | str:
    try:
        return regex_plan(pattern)
    except RecursionError:  # pragma: no cover - RE2 parses without recursion; belt and braces
        return "cannot be compiled: nested too deeply"


def regex_input_limit(pattern: str) -> int:
    """Longest string (in UTF-8 bytes) a ``$regex`` pattern is searched in (longer values
    never match). Raises :class:`FilterError` when the pattern is refused."""
    plan = _plan_or_refusal(pattern)
    if isinstance(plan, str):
        raise FilterError(f"$regex {plan}")
    return MAX_REGEX_INPUT


def _regex_program_size(filter: dict[str, Any]) -> int:
    total = 0
    for expected in filter.values():
        if _is_operator(expected) and "$regex" in expected:
            plan = (
                _plan_or_refusal(expected["$regex"]) if isinstance(expected["$regex"], str) else ""
            )
            total += plan.program_size if isinstance(plan, RegexPlan) else 0
    return total


def filter_cost_ms(filter: dict[str, Any] | None) -> float:
    """Estimated worst-case CPU milliseconds of the filter's ``$regex`` searches: every pattern
    searching a value of :data:`MAX_REGEX_INPUT` bytes. Paths and comparisons are not in the
    estimate (their cost depends on the payload); the budget bounds them at run time."""
    if not isinstance(filter, dict):
        return 0.0
    return search_cost_ms(_regex_program_size(filter), MAX_REGEX_INPUT)


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
        plan = _plan_or_refusal(arg)
        if isinstance(plan, str):
            raise FilterError(f"{where} {plan}")
    elif op in ("$gt", "$gte", "$lt", "$lte"):
        if not (_is_number(arg) or isinstance(arg, str)):
            raise FilterError(f"{where} takes a number or a string, got {type(arg).__name__}")
        if isinstance(arg, float) and not math.isfinite(arg):
            raise FilterError(f"{where} takes a finite number")
    # $ne accepts anything


def validate_filter(filter: dict[str, Any] | None, *, budget_ms: float = FILTER_BUDGET_MS) -> None:
    """Raise :class:`FilterError` unless ``filter`` is a well-formed filter whose estimated
    worst case (:func:`filter_cost_ms`) fits in ``budget_ms``."""
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
    cost = filter_cost_ms(filter)
    if cost > budget_ms:
        size = _regex_program_size(filter)
        fits = int(size * budget_ms / cost)
        raise FilterError(
            f"filter's $regex conditions could take up to {cost:.0f} ms of CPU per event on "
            f"{MAX_REGEX_INPUT // 1024} KiB values (an estimate), above the {budget_ms:g} ms "
            f"budget: use fewer or simpler $regex patterns (their RE2 programs total {size} "
            f"instructions; at most {fits} fit)"
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


def _regex_holds(path: str, pattern: Any, value: Any, budget: CpuBudget) -> bool:
    if not isinstance(value, str) or not isinstance(pattern, str):
        return False
    plan = _plan_or_refusal(pattern)
    if isinstance(plan, str):  # stored before $regex ran on RE2
        raise FilterEvaluationError(f"filter path {path[:200]!r}: $regex {plan}")
    if len(value) > MAX_REGEX_INPUT:  # characters: at least as many bytes
        return False
    data = value.encode("utf-8", "surrogatepass")  # JSON may carry lone surrogates
    if len(data) > MAX_REGEX_INPUT:
        return False
    budget.afford(search_cost_ms(plan.program_size, len(data)), f"filter path {path[:200]!r}")
    return plan.regex.search(data) is not None


def _in_holds(value: Any, items: Any, budget: CpuBudget, where: str) -> bool:
    if not isinstance(items, list):
        return False
    for i, item in enumerate(items):
        if typed_equal(value, item):
            return True
        if i % _TICK_ITEMS == _TICK_ITEMS - 1:
            budget.check(where)
    return False


def _entry_holds(path: str, expected: Any, document: Any, budget: CpuBudget) -> bool:
    where = f"filter path {path[:200]!r}"
    try:
        res = gjson.get(document, path, budget.ticker(where))
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
            return _in_holds(value, arg, budget, where)
        if op == "$regex":
            return _regex_holds(path, arg, value, budget)
        return _compare(op, value, arg)
    return res.exists and typed_equal(res.value, expected)


def filter_matches(
    filter: dict[str, Any] | None, document: Any, budget: CpuBudget | None = None
) -> bool:
    """True when every entry of ``filter`` holds for the parsed ``document``.

    Raises :class:`FilterEvaluationError` when a stored ``$regex`` is one RE2 refuses, and
    :class:`FilterBudgetExceeded` when ``budget`` (default: a fresh one) runs out."""
    if not filter:
        return True
    budget = budget or CpuBudget()
    for path, expected in filter.items():
        if not _entry_holds(path, expected, document, budget):
            return False
        budget.check(f"filter path {path[:200]!r}")
    return True


def event_type_accepted(event_types: list[Any] | None, event_type: str | None) -> bool:
    """SPEC 4.2.1: whether a webhook trigger listing ``event_types`` accepts an event of
    ``event_type`` (exact, case-sensitive). An empty list accepts every event, including
    one whose sender named no type; a non-empty list refuses an event without a type."""
    if not event_types:
        return True
    return event_type is not None and event_type in event_types


def resolve_labels(
    label_paths: dict[str, Any] | None, document: Any, budget: CpuBudget | None = None
) -> dict[str, str]:
    """``{label: get(document, path).string()}`` for every path that exists.

    Raises :class:`FilterBudgetExceeded` when ``budget`` (default: a fresh one) runs out."""
    out: dict[str, str] = {}
    if not label_paths:
        return out
    budget = budget or CpuBudget()
    for name, path in label_paths.items():
        where = f"label {str(name)[:200]!r}"
        try:
            res = gjson.get(document, path, budget.ticker(where))
            if res.exists:
                out[name] = res.string()
        except PathError:
            continue
        budget.check(where)
    return out
