"""Tests of automation filters and labels (shared.triggers.filters)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.triggers.filters import (
    FilterError,
    filter_matches,
    resolve_labels,
    validate_filter,
    validate_label_paths,
)

DOC: dict[str, Any] = {
    "action": "labeled",
    "number": 1,
    "ratio": 1.0,
    "count_str": "1",
    "draft": True,
    "merged": False,
    "merged_at": None,
    "label": {"name": "bug", "color": "f29513"},
    "labels": [{"name": "bug"}, {"name": "area/cache"}],
    "topics": ["widgets", 2, True, None],
    "title": "Fix cache eviction",
    "score": 7.5,
}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (None, True),
        ({}, True),
        ({"action": "labeled"}, True),
        ({"action": "opened"}, False),
        # numbers compare numerically, strings are not numbers
        ({"number": 1}, True),
        ({"number": 1.0}, True),
        ({"ratio": 1}, True),
        ({"number": "1"}, False),
        ({"count_str": 1}, False),
        ({"count_str": "1"}, True),
        # booleans are not numbers
        ({"draft": True}, True),
        ({"draft": 1}, False),
        ({"number": True}, False),
        ({"merged": 0}, False),
        ({"merged": False}, True),
        # null vs missing
        ({"merged_at": None}, True),
        ({"missing_key": None}, False),
        ({"merged": None}, False),
        # nested objects and arrays, deep typed equality
        ({"label": {"name": "bug", "color": "f29513"}}, True),
        ({"label": {"name": "bug"}}, False),
        ({"label.name": "bug"}, True),
        ({"topics": ["widgets", 2.0, True, None]}, True),
        ({"topics": ["widgets", 2, 1, None]}, False),
        ({"topics": ["widgets", "2", True, None]}, False),
        ({"labels.#.name": ["bug", "area/cache"]}, True),
        ({'labels.#(name=="bug").name': "bug"}, True),
        # every entry must hold
        ({"action": "labeled", "number": 1}, True),
        ({"action": "labeled", "number": 2}, False),
    ],
)
def test_typed_matching(flt: dict[str, Any] | None, expected: bool) -> None:
    validate_filter(flt)
    assert filter_matches(flt, DOC) is expected


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"action": {"$in": ["opened", "labeled"]}}, True),
        ({"action": {"$in": ["opened"]}}, False),
        ({"number": {"$in": [1.0, 2]}}, True),
        ({"number": {"$in": ["1"]}}, False),
        ({"draft": {"$in": [1]}}, False),
        ({"missing": {"$in": [None]}}, False),
        ({"action": {"$ne": "opened"}}, True),
        ({"action": {"$ne": "labeled"}}, False),
        ({"missing": {"$ne": "x"}}, True),
        ({"number": {"$ne": 1.0}}, False),
        ({"number": {"$ne": "1"}}, True),
        ({"merged_at": {"$exists": True}}, True),
        ({"missing": {"$exists": True}}, False),
        ({"missing": {"$exists": False}}, True),
        ({"action": {"$exists": False}}, False),
        ({"title": {"$regex": "^Fix .*evict"}}, True),
        ({"title": {"$regex": "^fix"}}, False),
        ({"number": {"$regex": "1"}}, False),
        ({"missing": {"$regex": ".*"}}, False),
        ({"score": {"$gt": 7}}, True),
        ({"score": {"$gt": 7.5}}, False),
        ({"score": {"$gte": 7.5}}, True),
        ({"score": {"$lt": 8}}, True),
        ({"score": {"$lte": 7}}, False),
        ({"action": {"$gt": "a"}}, True),
        ({"action": {"$lt": "a"}}, False),
        ({"count_str": {"$gt": 0}}, False),
        ({"number": {"$gt": "0"}}, False),
        ({"draft": {"$gte": 0}}, False),
        ({"missing": {"$lt": 100}}, False),
    ],
)
def test_operators(flt: dict[str, Any], expected: bool) -> None:
    validate_filter(flt)
    assert filter_matches(flt, DOC) is expected


def test_regex_input_is_capped() -> None:
    doc = {"body": "x" * (64 * 1024 + 1)}
    assert not filter_matches({"body": {"$regex": "x"}}, doc)
    assert filter_matches({"body": {"$regex": "x"}}, {"body": "x" * 100})


def test_object_with_several_keys_is_a_literal_not_an_operator() -> None:
    doc = {"a": {"$in": [1], "b": 2}}
    assert filter_matches({"a": {"$in": [1], "b": 2}}, doc)


def test_labels() -> None:
    paths = {
        "action": "action",
        "number": "number",
        "ratio": "ratio",
        "score": "score",
        "draft": "draft",
        "merged": "merged",
        "label": "label",
        "topics": "topics",
        "merged_at": "merged_at",
        "missing": "nope.nothing",
        "first_label": "labels.0.name",
    }
    validate_label_paths(paths)
    assert resolve_labels(paths, DOC) == {
        "action": "labeled",
        "number": "1",
        "ratio": "1",
        "score": "7.5",
        "draft": "true",
        "merged": "false",
        "label": '{"name":"bug","color":"f29513"}',
        "topics": '["widgets",2,true,null]',
        "merged_at": "",
        "first_label": "bug",
    }
    assert resolve_labels(None, DOC) == {}
    assert resolve_labels({}, DOC) == {}


@pytest.mark.parametrize(
    ("flt", "fragment"),
    [
        ([("a", 1)], "must be a JSON object"),
        ("a", "must be a JSON object"),
        ({"a.@foo": 1}, "'a.@foo'"),
        ({"a.@foo": 1}, "unsupported modifier '@foo' at position 2"),
        ({"friends.#(x==": 1}, "unclosed query"),
        ({"": 1}, "must not be empty"),
        ({"a" * 1025: 1}, "longer than 1024"),
        ({f"k{i}": 1 for i in range(65)}, "at most 64"),
        ({"a": {"$in": "x"}}, "$in takes a list"),
        ({"a": {"$exists": 1}}, "$exists takes true or false"),
        ({"a": {"$regex": 5}}, "$regex takes a string"),
        ({"a": {"$regex": "("}}, "$regex does not compile"),
        ({"a": {"$gt": [1]}}, "$gt takes a number or a string"),
        ({"a": {"$lte": None}}, "$lte takes a number or a string"),
        ({"a": {"$gte": True}}, "$gte takes a number or a string"),
        ({"a": {"$foo": 1}}, "unknown operator '$foo'"),
        ({"a": {"$in": [1], "$ne": 2}}, "unknown operator"),
    ],
)
def test_validate_filter_errors(flt: Any, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        validate_filter(flt)
    assert fragment in str(info.value)


def test_validate_filter_accepts() -> None:
    validate_filter(None)
    validate_filter({})
    validate_filter({"a": {"$ne": {"any": ["thing"]}}, "b.#(c>1)#.d": [1, 2], "c": None})


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        (["a"], "must be a JSON object"),
        ({"": "a"}, "non-empty string"),
        ({"  ": "a"}, "non-empty string"),
        ({"x" * 129: "a"}, "longer than 128"),
        ({"lbl": "a.@nope"}, "label 'lbl'"),
        ({"lbl": "a.@nope"}, "unsupported modifier '@nope'"),
        ({"lbl": ""}, "must not be empty"),
        ({"lbl": 5}, "must be a string"),
    ],
)
def test_validate_label_paths_errors(labels: Any, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        validate_label_paths(labels)
    assert fragment in str(info.value)


def test_invalid_path_at_runtime_does_not_match() -> None:
    assert not filter_matches({"friends.#(x==": 1}, DOC)
    assert resolve_labels({"bad": "friends.#(x==", "ok": "action"}, DOC) == {"ok": "labeled"}
