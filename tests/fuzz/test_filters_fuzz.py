"""Bad-input sweep of filters and labels (issue 7 item 2).

* ``validate_filter`` / ``validate_label_paths`` raise only :class:`FilterError`;
* ``filter_matches`` / ``resolve_labels`` return a bool / a dict of strings, or raise only
  :class:`FilterEvaluationError` (a stored ``$regex`` RE2 refuses, or the CPU budget ran out),
  whatever the filter (validated or not, e.g. one stored before the rules tightened) and the
  document;
* every call is bounded in time, including catastrophic ``$regex`` patterns, which RE2 runs
  in linear time (see ``shared.triggers.filters``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.lib.gjson.tests.test_gjson_fuzz import PATHOLOGICAL_DOCS, PATHOLOGICAL_PATHS
from shared.triggers.filters import (
    MAX_REGEX_INPUT,
    FilterError,
    FilterEvaluationError,
    filter_matches,
    regex_input_limit,
    resolve_labels,
    validate_filter,
    validate_label_paths,
)
from tests.fuzz import timed

_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


def check_filter(flt: Any, labels: Any, document: Any) -> None:
    try:
        timed(lambda: validate_filter(flt), "validate_filter")
    except FilterError:
        pass
    try:
        timed(lambda: validate_label_paths(labels), "validate_label_paths")
    except FilterError:
        pass
    if isinstance(flt, dict) and all(isinstance(k, str) for k in flt):
        matched = timed(lambda: _evaluated(filter_matches, flt, document), "filter_matches")
        assert isinstance(matched, (bool, FilterEvaluationError))
    if isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values()):
        resolved = timed(lambda: _evaluated(resolve_labels, labels, document), "resolve_labels")
        if not isinstance(resolved, FilterEvaluationError):
            assert isinstance(resolved, dict)
            assert all(isinstance(v, str) for v in resolved.values())


def _evaluated(fn: Any, *args: Any) -> Any:
    """``fn(*args)``, or the :class:`FilterEvaluationError` it raised (the only one allowed)."""
    try:
        return fn(*args)
    except FilterEvaluationError as exc:
        return exc


def _deep_value(depth: int) -> Any:
    v: Any = 1
    for i in range(depth):
        v = {"a": v} if i % 2 else [v]
    return v


CATASTROPHIC_REGEXES = [
    "(a+)+$",
    "(a*)*$",
    "(a|aa)+$",
    "(a|a?)+$",
    "(.*a){20}",
    "^(\\w+\\s?)*$",
    "(x+x+)+y",
    "a*a*a*a*a*b",
    ".*.*.*.*=.*",
    "(\\d+)\\1+$",
    "((a{0,16}){0,16}){0,16}",
    "(?:a{1,16}){64}",
    "(?=(a+))+",
    "(",
    "[",
    "a{99999999999999999999}",
    "(?P<x>a)(?P=x)",
    "\\",
    "(?i)" + "(" * 200 + "a" + ")" * 200,
    "(" * 500 + ")" * 500,
]
_LONG_INPUTS = [
    "a" * MAX_REGEX_INPUT,
    "a" * (MAX_REGEX_INPUT - 1) + "b",
    "a" * 10_000 + "!",
    ("ab" * 5000) + "\x00",
    "\ud800" * 100,  # a lone surrogate, as JSON may carry
]


@pytest.mark.parametrize("pattern", CATASTROPHIC_REGEXES)
def test_catastrophic_regexes_are_refused_or_bounded(pattern: str) -> None:
    flt = {"s": {"$regex": pattern}}
    try:
        validate_filter(flt)
    except FilterError:
        refused = True
    else:
        refused = False
        assert regex_input_limit(pattern) >= 1
    for text in _LONG_INPUTS:
        # evaluation stays bounded, also for a pattern that was stored before validation
        # refused it: RE2 runs it in linear time or it raises FilterEvaluationError
        outcome = timed(
            lambda t=text: _evaluated(filter_matches, flt, {"s": t}), f"$regex {pattern[:40]!r}"
        )
        assert isinstance(outcome, bool) or (refused and isinstance(outcome, FilterEvaluationError))


def test_refused_patterns_name_the_reason() -> None:
    with pytest.raises(FilterError, match=r"backreference.*RE2.*does not support"):
        validate_filter({"s": {"$regex": "(a)\\1"}})
    with pytest.raises(FilterError, match=r"lookaround.*RE2.*does not support"):
        validate_filter({"s": {"$regex": "(?=(a+))+"}})
    # ordinary patterns stay accepted, and so do the ones backtracking made catastrophic
    for ok in [
        "^opened$",
        "^Fix .*evict",
        "(?i)release-v\\d+\\.\\d+",
        "(\\d{1,3}\\.){3}\\d{1,3}",
        "(a+)+$",
        "a*b*c*d*",
    ]:
        validate_filter({"s": {"$regex": ok}})


def test_values_longer_than_the_input_limit_never_match() -> None:
    assert regex_input_limit("^opened$") == MAX_REGEX_INPUT == 16 * 1024
    long = "x" * (MAX_REGEX_INPUT + 1)
    assert not filter_matches({"s": {"$regex": "^x"}}, {"s": long})
    assert filter_matches({"s": {"$regex": "^x+$"}}, {"s": long[1:]})
    # the limit counts UTF-8 bytes: 6,000 three-byte characters are 18,000 bytes
    assert not filter_matches({"s": {"$regex": "^€"}}, {"s": "€" * 6000})
    assert filter_matches({"s": {"$regex": "^€+$"}}, {"s": "€" * 5000})


_DEEP_EXPECTED = [_deep_value(n) for n in (10, 300, 2000, 20_000)]


@pytest.mark.parametrize("depth_index", range(len(_DEEP_EXPECTED)))
def test_deeply_nested_expected_values(depth_index: int) -> None:
    expected = _DEEP_EXPECTED[depth_index]
    flt = {"a": expected, "b": {"$in": [expected]}, "c": {"$ne": expected}}
    for document in [
        {"a": expected, "b": expected},
        {"a": _deep_value(20_000)},
        *PATHOLOGICAL_DOCS,
    ]:
        check_filter(flt, {"x": "a", "y": "@dig:a"}, document)


# ---------------------------------------------------------------------------
# property-based

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: filters may come from anywhere
    | st.text(max_size=12)
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=20,
)
_operators = st.sampled_from(
    ["$in", "$ne", "$exists", "$regex", "$gt", "$gte", "$lt", "$lte", "$nope", "$"]
)
_operator_values = st.one_of(
    st.builds(lambda op, arg: {op: arg}, _operators, _json_values),
    st.builds(lambda op, p: {op: p}, st.just("$regex"), st.sampled_from(CATASTROPHIC_REGEXES)),
    st.builds(lambda op, p: {op: p}, st.just("$regex"), st.text(max_size=30)),
    st.dictionaries(_operators, _json_values, min_size=2, max_size=3),
)
_paths = st.one_of(
    st.sampled_from(["a", "b", "a.b", "0", "#", "*", "@dig:a", "a|@reverse", "#(a==1)#"]),
    st.text(max_size=30),
    st.sampled_from(PATHOLOGICAL_PATHS),
)
_filters = st.one_of(
    st.dictionaries(_paths, st.one_of(_json_values, _operator_values), max_size=5),
    _json_values,  # not an object at all
    st.just(None),
)
_labels = st.one_of(
    st.dictionaries(st.text(max_size=10), _paths, max_size=5),
    st.dictionaries(st.text(max_size=5), _json_values, max_size=3),
    _json_values,
)
_documents = st.one_of(
    _json_values,
    _json_values.map(lambda v: json.dumps(v)),
    st.sampled_from(PATHOLOGICAL_DOCS),
    st.integers(min_value=0, max_value=5000).map(_deep_value),
)


@_SETTINGS
@given(flt=_filters, labels=_labels, document=_documents)
def test_random_filters_and_labels(flt: Any, labels: Any, document: Any) -> None:
    check_filter(flt, labels, document)


@_SETTINGS
@given(
    pattern=st.text(alphabet="a()[]{}*+?|\\.^$0123,:=!<>PidwsS-", max_size=40),
    text=st.text(max_size=200),
)
def test_random_regexes(pattern: str, text: str) -> None:
    flt = {"s": {"$regex": pattern}}
    try:
        validate_filter(flt)
    except FilterError:
        pass
    for value in (text, text * 300):
        matched = timed(
            lambda v=value: _evaluated(filter_matches, flt, {"s": v}), f"$regex {pattern!r}"
        )
        assert isinstance(matched, (bool, FilterEvaluationError))
