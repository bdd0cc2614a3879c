"""Issue 16 item 2: bounded filter cost.

``$regex`` runs on RE2 (linear time), the filter and labels of one event share a CPU budget,
and a filter whose estimated worst case is above the budget is refused when it is saved.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from shared.lib import gjson
from shared.triggers.filters import (
    FILTER_BUDGET_MS,
    MAX_REGEX_INPUT,
    CpuBudget,
    FilterBudgetExceeded,
    FilterError,
    FilterEvaluationError,
    filter_cost_ms,
    filter_matches,
    resolve_labels,
    validate_filter,
)
from shared.triggers.regex_cost import regex_plan, search_cost_ms, to_re2

#: the issue's pathological condition: each pattern passed the old per-pattern limits
PATHOLOGICAL = "[a-z]*[a-z]*[a-z]*\\d|z$"
#: 84 characters on which every condition matches, but only through the second alternative
#: at the very end: a backtracking engine first tries the cubic first alternative everywhere
VALUE = "a" * 83 + "z"


def pathological_filter() -> dict[str, Any]:
    return {f"f{i}": {"$regex": PATHOLOGICAL} for i in range(64)}


def pathological_document() -> dict[str, Any]:
    return {f"f{i}": VALUE for i in range(64)}


def test_the_pathological_filter_takes_well_under_100_ms_of_cpu() -> None:
    """Python's re took about 3.3 s of CPU here (50 ms per condition); RE2 takes well under
    a millisecond. The bound is generous because the issue asks for a CPU bound."""
    flt, doc = pathological_filter(), pathological_document()
    filter_matches(flt, doc)  # compile and cache the pattern first
    started = time.thread_time()
    matched = filter_matches(flt, doc, CpuBudget(60_000))  # a budget that cannot interfere
    spent = time.thread_time() - started
    assert matched is True
    assert spent < 0.1, f"{spent * 1000:.0f} ms of CPU"
    # and under the real budget it completes too, without error
    assert filter_matches(flt, doc, CpuBudget()) is True


def test_the_pathological_filter_is_refused_when_saved() -> None:
    assert filter_cost_ms(pathological_filter()) > FILTER_BUDGET_MS
    with pytest.raises(FilterError) as info:
        validate_filter(pathological_filter())
    message = str(info.value)
    assert "above the 50 ms budget" in message
    assert "use fewer or simpler $regex patterns" in message
    # a handful of ordinary patterns fits
    validate_filter({f"f{i}": {"$regex": PATHOLOGICAL} for i in range(8)})
    # the budget is a parameter (the setting that configures it passes it on)
    validate_filter(pathological_filter(), budget_ms=1000)


def test_cost_estimate_is_program_size_times_input_bytes() -> None:
    plan = regex_plan(PATHOLOGICAL)
    assert not isinstance(plan, str)
    assert filter_cost_ms({"a": {"$regex": PATHOLOGICAL}}) == search_cost_ms(
        plan.program_size, MAX_REGEX_INPUT
    )
    assert filter_cost_ms({"a": "x", "b": {"$in": [1]}, "c": {"$regex": 5}}) == 0
    assert search_cost_ms(100, 1000) == 2 * search_cost_ms(50, 1000)


@pytest.mark.parametrize(
    ("pattern", "what"),
    [
        ("(a)\\1", "backreference"),
        ("(?P<x>a)(?P=x)", "backreference"),
        ("(?=a)", "lookaround"),
        ("(?!a)", "lookaround"),
        ("(?<=a)b", "lookaround"),
        ("(?<!a)b", "lookaround"),
    ],
)
def test_patterns_re2_does_not_support_are_refused_with_a_clear_message(
    pattern: str, what: str
) -> None:
    with pytest.raises(FilterError) as info:
        validate_filter({"title": {"$regex": pattern}})
    message = str(info.value)
    assert message.startswith("filter path 'title': operator $regex uses a " + what)
    assert "RE2" in message and "does not support" in message


def test_a_stored_pattern_re2_refuses_raises_at_evaluation() -> None:
    """Saved before $regex ran on RE2: the event becomes `error` with the reason."""
    with pytest.raises(FilterEvaluationError, match="lookaround") as info:
        filter_matches({"title": {"$regex": "fix(?=es)"}}, {"title": "fixes"})
    assert not isinstance(info.value, FilterError)  # not a 400: it is about stored data
    # a path that does not exist, or a non-string value, never reaches the pattern
    assert filter_matches({"title": {"$regex": "fix(?=es)"}}, {}) is False


def test_catastrophic_backtracking_patterns_are_linear() -> None:
    for pattern in ("(a+)+$", "(a|aa)+$", "^(\\w+\\s?)*$", "(x+x+)+y"):
        validate_filter({"s": {"$regex": pattern}})
        started = time.thread_time()
        filter_matches({"s": {"$regex": pattern}}, {"s": "a" * 10_000 + "!"})
        assert time.thread_time() - started < 0.1


def test_a_tiny_budget_stops_the_evaluation_with_a_clear_message() -> None:
    doc = {"a": "x" * 100}
    # one RE2 search cannot be interrupted: it is not started when its worst case does not fit
    with pytest.raises(FilterBudgetExceeded) as info:
        filter_matches({"a": {"$regex": "x$"}}, doc, CpuBudget(0.001))
    assert str(info.value).startswith(
        "filter evaluation would exceed its 0.001 ms CPU budget (at filter path 'a'"
    )
    # between conditions
    many = {f"k{i}": {"$exists": False} for i in range(64)}
    with pytest.raises(FilterBudgetExceeded, match=r"exceeded its 1e-06 ms CPU budget"):
        filter_matches(many, doc, CpuBudget(1e-6))


def test_the_budget_interrupts_a_long_path_evaluation() -> None:
    """gjson calls the budget's tick every few thousand steps: a path over a big payload
    stops at the budget instead of running to the engine's own limit of 10^6 steps."""
    big = {"items": [{"n": i, "tags": [str(i)] * 4} for i in range(60_000)]}
    with pytest.raises(FilterBudgetExceeded, match=r"\(at label 'deep'\)"):
        resolve_labels({"deep": "items.#(n>=0)#.tags.0"}, big, CpuBudget(1))
    with pytest.raises(FilterBudgetExceeded, match=r"\(at filter path 'items.#\(n<0\)'\)"):
        filter_matches({"items.#(n<0)": {"$exists": True}}, big, CpuBudget(1))
    # without a tick, gjson works as before
    assert gjson.get(big, "items.#(n==59999).n").value == 59_999


def test_labels_and_filter_share_one_budget() -> None:
    budget = CpuBudget(1e-6)
    assert filter_matches({}, {"a": 1}, budget) is True  # no work, no check
    with pytest.raises(FilterBudgetExceeded, match="at label 'a'"):
        resolve_labels({"a": "a"}, {"a": 1}, budget)


def test_long_in_lists_check_the_budget() -> None:
    items = list(range(100_000))
    with pytest.raises(FilterBudgetExceeded):
        filter_matches({"a": {"$in": items}}, {"a": -1}, CpuBudget(1e-6))
    assert filter_matches({"a": {"$in": items[:10_000]}}, {"a": 9_999}) is True


def test_python_spellings_re2_reads_differently_are_translated() -> None:
    assert to_re2(r"end\Z") == r"end\z"
    assert to_re2(r"a{,3}b{,}") == "a{0,3}b{0,}"
    assert to_re2(r"[\Z{,3}]\\Z") == r"[\Z{,3}]\\Z"  # in a class, or an escaped backslash
    assert to_re2("[]{,3}]{,3}") == "[]{,3}]{0,3}"
    assert to_re2("[^]{,1}]") == "[^]{,1}]"
