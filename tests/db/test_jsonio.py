"""JSON column reads: orjson where it is exact, the standard library where it is not."""

from __future__ import annotations

import json

import pytest

from shared.infra.db import jsonio


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "b": [true, null, 1.5, "x"], "c": {"d": "é\\u00e9"}}',
        "18446744073709551615",  # the largest integer orjson keeps exact
        "-9223372036854775808",
        '{"big": 123456789012345678901234567890}',
        '{"big": 18446744073709551616}',  # one more than 64 bits
        "[-9223372036854775809, 12345678901234567890123.5]",
        '{"id": "12345678901234567890", "n": 1}',  # a long digit run inside a string
        '{"x": NaN, "y": Infinity}',  # the standard library's extension, refused by orjson
        '"\\ud800"',  # a lone surrogate
        "1e400",
        "12345678901234567890123",  # at the start
        "[1,12345678901234567890123]",
        "[1,\n\t-12345678901234567890123]",
        '{"a":12345678901234567890123}',
        '{"a":\r\n 12345678901234567890123}',
        '{"sha": "0000000000000000000000000000000000000001", "n": 99999999999999999999}',
    ],
)
def test_loads_matches_the_standard_library_exactly(text: str) -> None:
    expected = json.loads(text)
    for given in (text, text.encode()):
        got = jsonio.loads(given)
        assert repr(got) == repr(expected)
        assert type(got) is type(expected)


def test_big_integers_survive_a_round_trip() -> None:
    value = {"big": 2**70, "neg": -(2**64) - 1, "list": [2**65, 1]}
    assert jsonio.loads(jsonio.dumps(value)) == value
    assert isinstance(jsonio.loads(jsonio.dumps(value))["big"], int)


def test_invalid_json_still_raises() -> None:
    with pytest.raises(ValueError):
        jsonio.loads("{not json")


def test_digit_runs_inside_strings_keep_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: object) -> None:
        raise AssertionError("took the standard library")

    monkeypatch.setattr(jsonio.json, "loads", refuse)
    text = (
        '{"sha": "0000000000000000000000000000000000000001",'
        ' "url": "https://x/commit/1234567890123456789012", "id_str": "1234567890123456789"}'
    )
    for given in (text, text.encode()):
        assert jsonio.loads(given) == json.JSONDecoder().decode(text)


def test_the_big_integer_check_agrees_with_its_definition() -> None:
    """The byte-class check against the plain regular expression of what it looks for (a
    run of 19+ digits at the start or after ``[ : ,``, JSON whitespace or a minus), on random
    texts built from the characters that matter."""
    import random
    import re

    definition = re.compile(r"(?:^|[\[:, \t\r\n-])[0-9]{19}")
    rng = random.Random(7)
    alphabet = ["1", "0", "9", "[", ":", ",", " ", "\t", "\n", "-", '"', "a", ".", "é", "\x0b"]
    found = 0
    for _ in range(3000):
        parts = [rng.choice(alphabet) * rng.choice((1, 1, 2, 10, 19, 25)) for _ in range(6)]
        text = "".join(parts)
        expected = definition.search(text) is not None
        found += expected
        assert jsonio.may_hold_a_big_integer(text) is expected, text
        assert jsonio.may_hold_a_big_integer(text.encode()) is expected, text
    assert 100 < found < 2900  # both answers were exercised
