"""Bad-input sweep of the gjson path engine (issue 7 item 2).

Properties, for random and pathological paths over random and pathological documents:

* ``validate(path)`` returns None or raises :class:`PathError`, nothing else;
* ``get(doc, path)`` returns a :class:`Result` or raises :class:`PathError`, and so do the
  Result's ``raw``/``string()`` (serialisation refuses values nested deeper than 512);
* every call finishes within :data:`shared.lib.gjson.tests.BOUND_S` (a correctness bound
  against hangs and exponential blow-ups, not a performance target: the engine's step budget
  is 1,000,000).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.lib import gjson
from shared.lib.gjson import PathError, Result
from shared.lib.gjson.tests import timed

_SETTINGS = settings(
    max_examples=300,
    deadline=None,  # wall time is asserted per call instead (first calls compile and warm up)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


def check_path(document: Any, path: str) -> None:
    """The engine's contract for one (document, path) pair."""
    try:
        timed(lambda: gjson.validate(path), f"validate({path[:80]!r})")
    except PathError as exc:
        assert isinstance(exc.message, str) and isinstance(exc.position, int)

    def evaluate() -> None:
        r = gjson.get(document, path)
        assert isinstance(r, Result)
        _ = r.exists, r.type, r.value
        s = r.string()
        assert isinstance(s, str)
        assert isinstance(r.raw, str)

    try:
        timed(evaluate, f"get(..., {path[:80]!r})")
    except PathError:
        pass


# ---------------------------------------------------------------------------
# documents


def _nested_list_text(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def _nested_object_text(depth: int) -> str:
    return '{"a":' * depth + '"x"' + "}" * depth


def _nested_value(depth: int, key: str = "a") -> Any:
    v: Any = {"x": 1}
    for i in range(depth):
        v = {key: v} if i % 2 else [v, i]
    return v


_WIDE_OBJECT = {f"k{i}" + "a" * (i % 50): {"n": i, "s": "v" * (i % 7)} for i in range(5000)}
_WIDE_LIST = [{"a": i, "b": [i, {"c": str(i)}]} for i in range(5000)]
_LONG_KEY = {"a" * 20_000: 1, "b?*": {"c.d": [1, 2, 3]}}

PATHOLOGICAL_DOCS: list[Any] = [
    _nested_list_text(100_000),  # far beyond every parser's recursion
    "[" * 100_000,  # unterminated
    _nested_object_text(10_000),
    _nested_object_text(900),
    _nested_list_text(1024),
    _nested_value(5000),  # already parsed, deeper than serialisation allows
    _nested_value(600),
    _WIDE_OBJECT,
    _WIDE_LIST,
    json.dumps(_WIDE_LIST),
    _LONG_KEY,
    '{"a":1,"a":2,"a":{"b":3}}',
    '{"a":"\\ud800","\\u0000":"\\u0000"}',
    "\xff\ufffe\x00",
    b"\xff\xfe{}",
    "1e400",
    "",
    "null",
    '{"a":' + "1" * 5000 + "}",
    "\n".join(f'{{"a":{i}}}' for i in range(5000)),  # JSON Lines
]

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(["a", "b", "c", "0", "1", "#", "*", "a.b", ""]), inner)
    ),
    max_leaves=30,
)
_documents = st.one_of(
    _json_values,
    _json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
    st.sampled_from(PATHOLOGICAL_DOCS),
    st.integers(min_value=1, max_value=3000).map(_nested_list_text),
    st.integers(min_value=1, max_value=3000).map(_nested_object_text),
)

# ---------------------------------------------------------------------------
# paths

_keys = st.one_of(
    st.sampled_from(["a", "b", "c", "0", "1", "-1", "99999999999999999999", "#", "x"]),
    st.text(max_size=8),  # unicode, control characters, lone surrogates excluded by default
    st.text(alphabet="ab*?\\.|#@!,:[]{}()\"'=<>%~ ", max_size=10),
)
_modifiers = st.sampled_from(
    [
        "@reverse",
        "@this",
        "@flatten",
        '@flatten:{"deep":true}',
        "@join",
        "@keys",
        "@values",
        "@valid",
        "@ugly",
        "@pretty",
        '@pretty:{"indent":"' + " " * 200 + '","width":-1}',
        "@tostr",
        "@fromstr",
        "@group",
        "@dig:a",
        "@dig:*",
        "@nope",
        "@",
        "@join:{",
    ]
)
_queries = st.builds(
    lambda key, op, val, all_: f"#({key}{op}{val}){'#' if all_ else ''}",
    st.sampled_from(["a", "b.c", "", "@this", "#", "*"]),
    st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "%", "!%", "=~", " == ", ""]),
    st.sampled_from(["1", '"x"', '"*?*?*"', "true", "~true", "~false", "null", '"', "", "a"]),
    st.booleans(),
)
_atoms = st.one_of(_keys, _modifiers, _queries, st.sampled_from(["*", "?", "#", "!true", "!{}"]))


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(children, min_size=1, max_size=5).map(".".join),
        st.lists(children, min_size=1, max_size=4).map("|".join),
        st.lists(children, min_size=1, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(children, min_size=1, max_size=4).map(lambda xs: "{" + ",".join(xs) + "}"),
        children.map(lambda p: f"#({p}==1)"),
        children.map(lambda p: f"#({p})#"),
        children.map(lambda p: ".." + p),
    )


_paths = st.one_of(
    st.recursive(_atoms, _combine, max_leaves=12),
    st.text(max_size=60),
    st.text(alphabet='#()[]{}.|*?@!\\"=,:', max_size=200),
)

PATHOLOGICAL_PATHS: list[str] = [
    "#(" * 1000 + "a==1" + ")" * 1000,  # nesting far beyond the 32 allowed
    "#(" * 31 + "a==1" + ")" * 31,
    "#(" * 5000,  # unbalanced
    ")" * 5000,
    "*?" * 30_000,  # long wildcard run (matched without backtracking)
    "*?" * 30_000 + "b",
    "?" * 20_001,
    "*" * 60_000,
    "a" * 70_000,  # longer than the path limit
    "[" + ",".join(["a"] * 20_000) + "]",  # huge multipath
    "{" + ",".join(f'"k{i}":#.a' for i in range(5000)) + "}",
    "[" * 2000 + "a" + "]" * 2000,
    "{" * 2000 + "a" + "}" * 2000,
    "@dig:" + "a" * 1000,
    "@dig:*",
    "@dig:" + "*?" * 1000,
    "|".join(["@reverse"] * 5000),
    "|".join(["@flatten"] * 2000),
    ".".join(["#"] * 5000),
    ".".join(["*"] * 5000),
    ".".join(["0"] * 10_000),
    "\\" * 10_001,
    "a\\" * 10_000,
    "." * 10_000,
    "|" * 10_000,
    "..",
    "..#",
    "!" + "[" * 5000 + "]" * 5000,  # a deep literal
    '@pretty:{"indent":"' + "x" * 60_000 + '"}',
    '#(a%"' + "*?" * 5000 + '")#',
    "#(#(#(@this>1)#)#)#|#(#(#(@this>1)#)#)#",
    "\u202e\U0001f600.\ufeff.\x00.\udfff",  # bidi, emoji, BOM, NUL, lone surrogate
    "#(" + "a==1||" * 5000 + ")",
]


@pytest.mark.parametrize("path", PATHOLOGICAL_PATHS, ids=lambda p: f"{p[:24]!r}x{len(p)}")
def test_pathological_paths_over_pathological_documents(path: str) -> None:
    for document in PATHOLOGICAL_DOCS:
        check_path(document, path)


@pytest.mark.parametrize("index", range(len(PATHOLOGICAL_DOCS)))
def test_ordinary_paths_over_pathological_documents(index: int) -> None:
    document = PATHOLOGICAL_DOCS[index]
    for path in ["a", "0", "#", "*", "a.a.a", "#.a", "@dig:a", "@flatten", "@this", "..#"]:
        check_path(document, path)


def test_the_path_nesting_limit_is_an_error_not_a_crash() -> None:
    with pytest.raises(PathError):
        gjson.validate("#(" * 1000 + "a==1" + ")" * 1000)
    with pytest.raises(PathError):
        gjson.get("[]", "#(" * 1000 + "a==1" + ")" * 1000)


def test_non_string_paths_are_path_errors() -> None:
    for bad in (None, 1, b"a", ["a"]):
        with pytest.raises(PathError):
            gjson.validate(bad)  # type: ignore[arg-type]


@_SETTINGS
@given(document=_documents, path=_paths)
def test_random_paths_over_random_documents(document: Any, path: str) -> None:
    check_path(document, path)


@_SETTINGS
@given(path=st.sampled_from(PATHOLOGICAL_PATHS), document=_documents)
def test_pathological_paths_over_random_documents(path: str, document: Any) -> None:
    check_path(document, path)
