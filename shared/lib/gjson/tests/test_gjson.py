"""Focused tests of the shared.lib.gjson API."""

from __future__ import annotations

import json
import time

import pytest

from shared.lib.gjson import PathError, Result, compile_path, get, validate

DOC = {
    "name": {"first": "Tom", "last": "Anderson"},
    "age": 37,
    "height": 1.5,
    "big": 1e21,
    "neg": -7,
    "ok": True,
    "no": False,
    "nothing": None,
    "children": ["Sara", "Alex", "Jack"],
    "fav.movie": "Deer Hunter",
    "friends": [
        {"first": "Dale", "last": "Murphy", "age": 44, "nets": ["ig", "fb", "tw"]},
        {"first": "Roger", "last": "Craig", "age": 68, "nets": ["fb", "tw"]},
        {"first": "Jane", "last": "Murphy", "age": 47, "nets": ["ig", "tw"]},
    ],
}
TEXT = json.dumps(DOC)


@pytest.mark.parametrize("doc", [DOC, TEXT, TEXT.encode()], ids=["parsed", "str", "bytes"])
@pytest.mark.parametrize(
    ("path", "value", "raw", "string"),
    [
        ("name.first", "Tom", '"Tom"', "Tom"),
        ("age", 37, "37", "37"),
        ("height", 1.5, "1.5", "1.5"),
        ("big", 1e21, "1e+21", "1000000000000000000000"),
        ("neg", -7, "-7", "-7"),
        ("ok", True, "true", "true"),
        ("no", False, "false", "false"),
        ("nothing", None, "null", ""),
        ("name", {"first": "Tom", "last": "Anderson"}, '{"first":"Tom","last":"Anderson"}', None),
        ("children", ["Sara", "Alex", "Jack"], '["Sara","Alex","Jack"]', None),
        ("children.1", "Alex", '"Alex"', "Alex"),
        ("children.#", 3, "3", "3"),
        ("fav\\.movie", "Deer Hunter", '"Deer Hunter"', "Deer Hunter"),
        ("friends.#.first", ["Dale", "Roger", "Jane"], '["Dale","Roger","Jane"]', None),
        ('friends.#(last=="Murphy")#.first', ["Dale", "Jane"], '["Dale","Jane"]', None),
        ("friends.#(age>45).first", "Roger", '"Roger"', "Roger"),
        ('friends.#(nets.#(=="fb"))#.first', ["Dale", "Roger"], '["Dale","Roger"]', None),
        ("children|@reverse|0", "Jack", '"Jack"', "Jack"),
        ("{name.first,age}", {"first": "Tom", "age": 37}, '{"first":"Tom","age":37}', None),
        ("c?ild*.2", "Jack", '"Jack"', "Jack"),
    ],
)
def test_value_raw_string(doc: object, path: str, value: object, raw: str, string: str | None):
    r = get(doc, path)
    assert isinstance(r, Result)
    assert r.exists
    assert r.value == value
    assert type(r.value) is type(value)
    assert r.raw == raw
    assert r.string() == (raw if string is None else string)


@pytest.mark.parametrize("path", ["name.middle", "children.3", "children.-1", "age.x", "nope"])
def test_missing(path: str) -> None:
    r = get(DOC, path)
    assert not r.exists
    assert r.value is None
    assert r.raw == ""
    assert r.string() == ""


def test_null_exists_but_string_is_empty() -> None:
    r = get(DOC, "nothing")
    assert r.exists and r.value is None and r.raw == "null" and r.string() == ""


def test_ints_stay_ints_and_floats_floats() -> None:
    r = get('{"a": 1, "b": 1.0, "c": 12345678901234567890123}', "[a,b,c]")
    assert r.value == [1, 1.0, 12345678901234567890123]
    assert [type(x) for x in r.value] == [int, float, int]
    assert get('{"f": 10.0}', "f").string() == "10"
    assert get('{"z": -0}', "z").string() == "-0"


def test_key_order_preserved() -> None:
    r = get('{"b": 1, "a": 2, "c": 3}', "@this")
    assert list(r.value) == ["b", "a", "c"]
    assert r.raw == '{"b":1,"a":2,"c":3}'
    assert get('{"b": 1, "a": 2}', "@keys").value == ["b", "a"]


def test_duplicate_keys_in_text_first_match_wins() -> None:
    assert get('{"name": "Alex", "name": "Peter"}', "name").value == "Alex"
    assert get('{"a": {"x": 1}, "a": {"y": 2}}', "a.y").value == 2


def test_invalid_json_text_has_no_values() -> None:
    assert not get("[{}", "0").exists
    assert not get("[{}", "@valid").exists
    assert get("[{}", "!true").value is True


def test_json_lines() -> None:
    text = '{"name": "Gilbert"}\n{"name": "Alexa"}\n'
    assert get(text, "..#").value == 2
    assert get(text, "..#.name").value == ["Gilbert", "Alexa"]


def test_modifiers() -> None:
    assert get("[1,[2],[3,[4]]]", "@flatten").value == [1, 2, 3, [4]]
    assert get("[1,[2],[3,[4]]]", '@flatten:{"deep":true}').value == [1, 2, 3, 4]
    assert get('[{"a":1},{"a":2,"b":3}]', "@join").value == {"a": 2, "b": 3}
    assert get('{"a":1,"b":2}', "@values").value == [1, 2]
    assert get('{"a":"{\\"b\\":1}"}', "a.@fromstr.b").value == 1
    assert get('{"a":{"b":1}}', "a.@tostr").value == '{"b":1}'
    assert get('{"id":["1","2"],"v":[3,4]}', "@group").value == [
        {"id": "1", "v": 3},
        {"id": "2", "v": 4},
    ]
    assert get('{"x":{"name":"a","y":{"name":"b"}}}', "@dig:name").value == ["a", "b"]
    pretty = get('{"b":{"c":1},"a":[1,2]}', '@pretty:{"sortKeys":true}')
    assert pretty.raw == '{\n  "a": [1, 2],\n  "b": {\n    "c": 1\n  }\n}\n'
    assert pretty.value == {"a": [1, 2], "b": {"c": 1}}


def test_literals() -> None:
    r = get(DOC, '{name.first,"company":!"Happysoft","employed":!true}')
    assert r.value == {"first": "Tom", "company": "Happysoft", "employed": True}


def test_compiled_paths_are_cached() -> None:
    a = compile_path("friends.#(age>45)#.first")
    b = compile_path("friends.#(age>45)#.first")
    assert a is b
    get(DOC, "some.new.path.for.cache")
    assert compile_path("some.new.path.for.cache") is compile_path("some.new.path.for.cache")
    assert compile_path.cache_info().maxsize is not None  # bounded LRU


@pytest.mark.parametrize(
    ("path", "message", "position"),
    [
        ("abc.@foo", "unsupported modifier '@foo' at position 4", 4),
        ("x|@foo.bar", "unsupported modifier '@foo' at position 2", 2),
        ("friends.#(last=", "unclosed query '#(' at position 8", 8),
        ("friends.#(a!b)", "unsupported query operator '!b' at position 11", 11),
        ("[a,b", "unclosed multipath '[' at position 0", 0),
        ("a..b", "empty path component at position 2", 2),
        ("", "empty path at position 0", 0),
        ("!hello", "invalid literal '!hello' at position 0", 0),
        ("a\\", "dangling escape character at position 1", 1),
        ('@flatten:{"deep":tru}', "invalid JSON argument of modifier '@flatten' at position 9", 9),
        ("#(a=1)x", "unexpected character 'x' after query at position 6", 6),
        ("a." + "#(" * 40 + "b" + ")" * 40, "path nesting deeper than 32 levels", None),
    ],
)
def test_validate_errors_name_position(path: str, message: str, position: int | None) -> None:
    with pytest.raises(PathError) as info:
        validate(path)
    assert message in str(info.value)
    assert "at position" in str(info.value)
    if position is not None:
        assert info.value.position == position


@pytest.mark.parametrize(
    "path",
    [
        "name.first",
        'friends.#(last=="Murphy")#.first|0',
        'friends.#( first !% "D*" ).last',
        '{name.first,age,"x":friends.#.age}',
        "@dig:name|0",
        'children|@reverse|@pretty:{"sortKeys":true}',
        "fav\\.movie",
        "..#",
        "vals.#(b==~true)#.a",
    ],
)
def test_validate_accepts(path: str) -> None:
    validate(path)


def test_get_is_lenient_like_gjson_where_validate_is_strict() -> None:
    # "@key" is not a modifier: gjson treats it as a plain key.
    assert get('{"@key": "value"}', "@key").value == "value"
    with pytest.raises(PathError):
        validate("@key")
    assert get('{"@key": "value"}', "\\@key").value == "value"
    validate("\\@key")


def test_get_raises_for_malformed_paths() -> None:
    with pytest.raises(PathError):
        get(DOC, "friends.#(last==")


def _deep(depth: int) -> dict[str, object]:
    root: dict[str, object] = {}
    cur = root
    for _ in range(depth):
        nxt: dict[str, object] = {}
        cur["a"] = nxt
        cur = nxt
    cur["leaf"] = 1
    return root


def test_bounded_on_10000_deep_document() -> None:
    deep = _deep(10_000)
    start = time.thread_time()
    assert get(deep, ".".join(["a"] * 10_000) + ".leaf").value == 1
    assert not get(deep, ".".join(["a"] * 10_001)).exists
    # recursive operations stop at the nesting limit instead of recursing
    assert get(deep, "@dig:leaf").value == []
    with pytest.raises(PathError):
        _ = get(deep, "@this").raw
    with pytest.raises(PathError):
        get(deep, ".".join(["*"] * 600))
    # the same document as text is refused by the parser: no values
    text = '{"a":' * 10_000 + "1" + "}" * 10_000
    assert not get(text, "a.a.a").exists
    assert time.thread_time() - start < 10  # CPU time: a hang, not a busy machine


def test_bounded_on_pathological_paths() -> None:
    start = time.thread_time()
    # each segment doubles the serialised size: evaluation is cheap (shared
    # references) but rendering it is refused instead of exhausting memory
    r = get({"x": 1}, "|".join(["{a:@this,b:@this}"] * 40))
    assert r.exists
    with pytest.raises(PathError):
        _ = r.raw
    # huge fan-out: bounded by the evaluation budget
    wide = [[list(range(100)) for _ in range(100)] for _ in range(200)]
    with pytest.raises(PathError):
        get(wide, "@dig:#")
    # wildcard patterns cannot backtrack catastrophically
    doc = {"a" * 5000: 1}
    assert not get(doc, "*a*a*a*a*a*a*a*a*a*a*b").exists
    assert time.thread_time() - start < 10  # CPU time: a hang, not a busy machine


def test_result_repr_and_type() -> None:
    assert repr(get(DOC, "age")) == "Result(37)"
    assert repr(get(DOC, "zzz")) == "Result(<missing>)"
    assert get(DOC, "age").type == "Number"
    assert get(DOC, "zzz").type == "Null"
