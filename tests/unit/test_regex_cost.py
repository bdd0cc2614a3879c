"""Tests of the ``$regex`` cost scanner (shared.triggers.regex_cost).

The scanner replaced an analysis of the standard library's private parse tree
(``re._parser``).  That analysis is kept below as an oracle, for the tests only: on every
pattern that ``re.compile`` accepts, the scanner is never more permissive than the oracle, and
it computes the same verdict (the same ``(degree, branching)``, or the same refusal) wherever
it does not refuse the syntax as unsupported.  The scanner reproduces the parser's rewrites
that change a cost (``(?:...)`` unpacked, a common leading atom moved out of an alternation,
an alternation of single characters turned into a class), so equality is asserted on those
patterns as well, not only on patterns without them.
"""

from __future__ import annotations

import itertools
import re
import re._constants as _sre  # oracle only: the product must not use private names
import re._parser as _sre_parse
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.triggers.filters import (
    _NARROW_RANGE,
    MAX_REGEX_BRANCHING,
    MAX_REGEX_DEGREE,
    FilterError,
    regex_input_limit,
    validate_filter,
)
from shared.triggers.regex_cost import RegexTooCostly, RegexUnsupported, regex_cost

# ---------------------------------------------------------------------------
# the oracle: the analysis of the parse tree as it was in shared/triggers/filters.py


class _OracleTooCostly(Exception):
    pass


_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT)


def _oracle_cost(items: Any) -> tuple[int, int]:
    degree, branching = 0, 1
    for op, av in items:
        if op in _REPEATS:
            lo, hi, sub = av
            d, b = _oracle_cost(sub)
            if lo == hi:
                degree += d * lo
                branching *= b**lo if b > 1 else 1
            else:
                if d or b > 1:
                    raise _OracleTooCostly(
                        "has a quantifier or alternation inside a variable-length quantifier "
                        "(e.g. (a+)+ or (a|ab)*), which can take exponential time"
                    )
                if hi == _sre.MAXREPEAT or hi - lo > _NARROW_RANGE:
                    degree += 1
                else:
                    branching *= hi - lo + 1
        elif op is _sre.BRANCH:
            costs = [_oracle_cost(alt) for alt in av[1]]
            degree += max(d for d, _ in costs)
            branching *= sum(b for _, b in costs)
        elif op is _sre.SUBPATTERN:
            d, b = _oracle_cost(av[3])
            degree, branching = degree + d, branching * b
        elif op is _sre.ATOMIC_GROUP:
            d, b = _oracle_cost(av)
            degree, branching = degree + d, branching * b
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            d, b = _oracle_cost(av[1])
            degree, branching = degree + d, branching * b
        elif op in (_sre.GROUPREF, _sre.GROUPREF_EXISTS):
            raise _OracleTooCostly("uses a backreference, which is not supported")
        if degree > MAX_REGEX_DEGREE:
            raise _OracleTooCostly(
                f"has more than {MAX_REGEX_DEGREE} unbounded quantifiers (*, +, {{n,}})"
            )
        if branching > MAX_REGEX_BRANCHING:
            raise _OracleTooCostly("has too many alternatives and ranges to match in bounded time")
    return degree, branching


Verdict = tuple[str, Any]


def _oracle(pattern: str) -> Verdict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = _sre_parse.parse(pattern)
    try:
        return "ok", _oracle_cost(tree.data)
    except _OracleTooCostly as exc:
        return "refused", str(exc)


def _cost(pattern: str) -> tuple[int, int]:
    return regex_cost(
        pattern,
        max_degree=MAX_REGEX_DEGREE,
        max_branching=MAX_REGEX_BRANCHING,
        narrow_range=_NARROW_RANGE,
    )


def _scan(pattern: str) -> Verdict:
    try:
        return "ok", _cost(pattern)
    except RegexUnsupported as exc:
        return "unsupported", str(exc)
    except RegexTooCostly as exc:
        return "refused", str(exc)


def _compiles(pattern: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            re.compile(pattern)
        except (re.error, OverflowError, ValueError, RecursionError):
            return False
    return True


def _limit(degree: int, branching: int) -> float:
    return (100_000_000 / branching) ** (1 / (degree + 1)) if degree else float("inf")


def check_against_oracle(pattern: str, *, unsupported_ok: bool = False) -> None:
    """Never more permissive than the oracle; the same verdict unless refused as unsupported
    (allowed only where ``unsupported_ok``: verbose mode, the template flag)."""
    if not _compiles(pattern) or re.search(r"\{,?\d{5}", pattern):
        return  # (the oracle would compute b ** n for an n up to 4294967294)
    ours, theirs = _scan(pattern), _oracle(pattern)
    if ours[0] == "ok":
        assert theirs[0] == "ok", (pattern, ours, theirs)
        (d, b), (od, ob) = ours[1], theirs[1]
        assert d >= od and b >= ob and _limit(d, b) <= _limit(od, ob), (pattern, ours, theirs)
    if ours[0] == "unsupported":
        assert unsupported_ok and re.search(r"verbose|flags", ours[1]), (pattern, ours)
    else:
        assert ours == theirs, pattern


# ---------------------------------------------------------------------------
# syntax elements, one by one

ACCEPTED: list[tuple[str, tuple[int, int]]] = [
    # literals and escapes
    ("abc", (0, 1)),
    (r"\d\D\w\W\s\S", (0, 1)),
    (r"\bfoo\B\Aa\Z^$", (0, 1)),
    (r"\x41\u0042\U00000043", (0, 1)),
    (r"\N{EM DASH}\N{LATIN SMALL LETTER A}", (0, 1)),
    (r"\0\07\101\1011", (0, 1)),  # octal; \1011 is \101 then "1"
    (r"\a\f\n\r\t\v\\", (0, 1)),
    (r"\.\*\+\?\(\)\[\]\{\}\|\^\$\-\#\ \é", (0, 1)),
    # classes
    ("[abc][^abc][a-z0-9_]", (0, 1)),
    ("[]a][^]a][[a][a-][-a]", (0, 1)),
    (r"[\]\\\-][\d\s-][\b][\x41-\x5a][\N{EM DASH}][\101][\0]", (0, 1)),
    ("[a][^a][aa]", (0, 1)),
    ("[ab]+", (1, 1)),
    (".", (0, 1)),
    (".*", (1, 1)),
    # groups
    ("(a)(?:b)(?P<name>c)", (0, 1)),
    ("(?P<name>a+)", (1, 1)),
    ("(?=a+)b", (1, 1)),
    ("(?!a*)b", (1, 1)),
    ("(?<=ab)c(?<!a)d", (0, 1)),
    ("(?>a+)b", (1, 1)),
    ("(?#a comment)a", (0, 1)),
    (r"a(?#x\)y)*", (1, 1)),  # an escaped ")" does not end a comment; * repeats "a"
    ("(?i)abc", (0, 1)),
    ("(?ims)a+", (1, 1)),
    ("(?a)\\w+", (1, 1)),
    ("(?i-s:a+)b", (1, 1)),
    ("(?-x:a b)", (0, 1)),  # turning verbose mode off is harmless
    ("(?u:a)", (0, 1)),
    ("((((a))))+", (1, 1)),
    ("(?:)*", (1, 1)),
    ("(?:^)?", (0, 2)),
    # alternation
    ("ab|cd", (0, 2)),
    ("ab|cd|ef", (0, 3)),
    ("(ab|cd)(ef|gh)", (0, 4)),
    ("a+|b", (1, 2)),
    ("|a", (0, 2)),
    # ... single characters become a class
    ("a|b|c", (0, 1)),
    ("(a|b)*", (1, 1)),
    (r"(\d|x|[yz])+", (1, 1)),
    ("(?:a)|b", (0, 1)),
    ("(?:a|b)|c", (0, 1)),
    ("(a)|b", (0, 2)),
    ("[^a]|b", (0, 2)),
    ("[^ab]|c", (0, 2)),
    (".|a", (0, 2)),
    # ... a common leading atom moves out
    ("a|a", (0, 2)),
    ("a|[a]|\\x61", (0, 3)),
    (r"\d|[\d]", (0, 2)),
    ("[ab]|[ba]", (0, 1)),
    ("ab|ac", (0, 1)),
    ("(ab|ac)*", (1, 1)),
    ("(?:a)b|ac", (0, 1)),
    ("a|ab", (0, 2)),
    ("(a)b|(a)c", (0, 2)),
    # quantifiers
    ("a*", (1, 1)),
    ("a+", (1, 1)),
    ("a?", (0, 2)),
    ("a{3}", (0, 1)),
    ("a{2,}", (1, 1)),
    ("a{,4}", (0, 5)),
    ("a{1,3}", (0, 3)),
    ("a{0,16}", (0, 17)),
    ("a{0,17}", (1, 1)),
    ("a{,}", (1, 1)),
    ("a{0003}", (0, 1)),
    ("a*?b+?c??", (2, 2)),
    ("a*+b++c?+", (2, 2)),
    ("a{1,3}?b{1,3}+", (0, 9)),
    ("(?:a{1,3}){2}", (0, 9)),
    ("(?:ab|cd){3}", (0, 8)),
    ("(?:a*){0}", (0, 1)),
    ("(?:a*){2}", (2, 1)),
    ("(?=a)*", (1, 1)),
    # "{" that is not a quantifier is a literal
    ("a{", (0, 1)),
    ("a{1,2", (0, 1)),
    ("a{1,2}{", (0, 2)),
    ("{}", (0, 1)),
    ("{", (0, 1)),
    ("a{}", (0, 1)),
    ("a{x}", (0, 1)),
    ("a{1x}", (0, 1)),
    ("a{,x}", (0, 1)),
    ("x{1,2}}", (0, 2)),
    # the examples of the filters' tests
    ("^opened$", (0, 1)),
    (r"\w+@", (1, 1)),
    (".*foo.*bar", (2, 1)),
    ("a*b*c*d", (3, 1)),
    ("^Fix .*evict", (1, 1)),
    (r"(?i)release-v\d+\.\d+", (2, 1)),
    (r"(\d{1,3}\.){3}\d{1,3}", (0, 81)),
    ("(?i)" + "(" * 200 + "a" + ")" * 200, (0, 1)),
]


@pytest.mark.parametrize(("pattern", "expected"), ACCEPTED)
def test_accepted_patterns(pattern: str, expected: tuple[int, int]) -> None:
    assert _compiles(pattern)
    assert _cost(pattern) == expected
    check_against_oracle(pattern)


REFUSED: list[Any] = [
    ("(a+)+$", "inside a variable-length quantifier"),
    ("(a|ab)*", "inside a variable-length quantifier"),
    ("(?:a{1,3})*", "inside a variable-length quantifier"),
    ("(?:a|b?)+", "inside a variable-length quantifier"),
    ("(?=(a+))+", "inside a variable-length quantifier"),
    ("(a)\\1", "backreference"),
    ("(a)\\1*", "backreference"),
    ("(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)\\10", "backreference"),
    ("(?P<x>a)(?P=x)", "backreference"),
    ("(a)?(?(1)b|c)", "backreference"),
    ("(a)(?(1)b)", "backreference"),
    ("(?P<n>a)(?(n)b|c)", "backreference"),
    ("a*b*c*d*", "more than 3 unbounded quantifiers"),
    ("(?:a*){4}", "more than 3 unbounded quantifiers"),
    ("(?:a{1,16}){64}", "too many alternatives"),
    ("(?:a|bc){11}", "too many alternatives"),
    ("(?:ab|cd){4294967294}", "too many alternatives"),  # bounded work, not 2**4294967294
    ("(?x) a b", "verbose mode (?x), which is not supported"),
    ("(?x:a)", "verbose mode"),
    ("(?ix)a", "verbose mode"),
    pytest.param(
        "(?t)a",
        "inline flags (?t)",
        marks=pytest.mark.skipif(sys.version_info >= (3, 13), reason="no (?t) flag"),
    ),
]


@pytest.mark.parametrize(("pattern", "reason"), REFUSED)
def test_refused_patterns(pattern: str, reason: str) -> None:
    assert _compiles(pattern)
    with pytest.raises(RegexTooCostly, match=re.escape(reason)):
        _cost(pattern)
    check_against_oracle(pattern, unsupported_ok=True)
    with pytest.raises(FilterError, match=r"^\$regex pattern .*" + re.escape(reason)):
        regex_input_limit(pattern)


@pytest.mark.parametrize(
    ("pattern", "what"),
    [
        ("a\\", "trailing backslash"),
        (r"\q", r"escape \q"),
        (r"\z", r"escape \z"),  # \z means something from Python 3.14 on
        (r"[\A]", r"escape \A in a character class"),
        (r"[\8]", r"escape \8"),
        (r"\x4", "incomplete escape"),
        (r"\N{NO SUCH CHARACTER NAME}", "unknown character name"),
        (r"\N", "\\N without"),
        (r"\400", "octal escape"),
        ("[a", "unterminated character class"),
        ("[a-", "unterminated character class"),
        ("[z-a]", "bad character range"),
        (r"[\d-z]", "bad character range"),
        ("(a", "unterminated group"),
        ("a)", "unbalanced parenthesis"),
        ("(?<n>a)", "(?< extension"),
        ("(?Px)", "(?P extension"),
        ("(?Q)", "inline flags"),
        ("(?", "unknown group"),
        ("(?#", "unterminated comment"),
        ("(?i", "unterminated inline flags"),
        ("*a", "nothing to repeat"),
        ("^*", "nothing to repeat"),
        ("a**", "nothing to repeat"),
        ("a{2,1}", "minimum exceeds"),
    ],
)
def test_malformed_or_unknown_syntax_is_unsupported(pattern: str, what: str) -> None:
    """What does not compile never reaches the scanner; it still refuses it, never guesses."""
    with pytest.raises(RegexUnsupported, match=re.escape(what)):
        _cost(pattern)


def test_filters_keep_their_messages_and_limits() -> None:
    assert regex_input_limit("^opened$") == 65_536
    assert 5_000 <= regex_input_limit("\\w+@") <= 20_000
    assert 200 <= regex_input_limit(".*foo.*bar") <= 1_000
    assert regex_input_limit("a*b*c*d") <= 200
    with pytest.raises(FilterError, match=r"\$regex does not compile: missing \)"):
        regex_input_limit("(")
    with pytest.raises(FilterError, match="cannot be analysed: OverflowError"):
        regex_input_limit("a{99999999999999999999}")
    with pytest.raises(FilterError, match="operator \\$regex pattern uses verbose mode"):
        validate_filter({"s": {"$regex": "(?x)a"}})


def test_deep_nesting_that_compiles_is_analysed() -> None:
    for depth in (50, 150, 250):
        for opener in ("(", "(?:", "(?=", "(?>"):
            pattern = opener * depth + "a+" + ")" * depth
            if _compiles(pattern):
                assert _cost(pattern) == (1, 1)
                check_against_oracle(pattern)


def test_the_product_uses_no_private_regex_modules() -> None:
    root = Path(__file__).resolve().parents[2]
    for name in ("shared/triggers/filters.py", "shared/triggers/regex_cost.py"):
        text = (root / name).read_text()
        for private in ("re._parser", "re._constants", "sre_parse", "sre_constants"):
            assert private not in text, (name, private)


# ---------------------------------------------------------------------------
# differential: the scanner against the oracle on random patterns

_SETTINGS = settings(
    max_examples=700,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
)

_ATOMS = st.sampled_from(
    [
        *["a", "b", "c", "ab", "ba", ".", "^", "$", r"\d", r"\w", r"\s", r"\D", r"\b", r"\B"],
        *[r"\A", r"\Z", r"\.", r"\*", r"\{", r"\x61", r"\u0062", r"\U00000063", r"\141", r"\0"],
        *[r"\N{LATIN SMALL LETTER A}", r"\n", r"\\", "-", "]", "}", ",", "{", "{}", "{x}"],
        *["{1,", r"\1", "(?P=g1)", "(?(1)a|b)", "(?(g1)a)", "(?#c)", r"(?#\))", "(?i)", "()"],
        "(?:)",
    ]
)
_CLASS_ITEMS = st.sampled_from(
    [
        *["a", "b", "c", "a-c", "b-c", "-", r"\d", r"\w", r"\S", r"\]", r"\\", "^", "[", r"\b"],
        *[r"\x61", r"\141", "0-9", r"\n", r"\-", r"\x61-c", "]"],
    ]
)
_CLASSES = st.builds(
    lambda neg, items: "[" + neg + "".join(items) + "]",
    st.sampled_from(["", "^"]),
    st.lists(_CLASS_ITEMS, min_size=1, max_size=4),
)
_OPENERS = st.sampled_from(
    ["(", "(?:", "(?:", "(?P<g>", "(?=", "(?!", "(?<=", "(?<!", "(?>", "(?i:", "(?s-i:", "(?a:"]
)
_QUANTIFIERS = st.sampled_from(
    [
        *["*", "+", "?", "{2}", "{1,3}", "{2,}", "{,4}", "{0}", "{3}", "{0,16}", "{0,17}"],
        *["{,}", "{", "{1,2", "{}", "{x}", "{1}", "{2,2}"],
    ]
)


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(inner, min_size=2, max_size=4).map("".join),
        st.lists(inner, min_size=2, max_size=4).map("|".join),
        st.builds(lambda o, p: o + p + ")", _OPENERS, inner),
        st.builds(
            lambda p, q, s: p + q + s, inner, _QUANTIFIERS, st.sampled_from(["", "", "?", "+"])
        ),
    )


def _name_groups(pattern: str) -> str:
    """Each ``(?P<g>`` becomes ``(?P<g1>``, ``(?P<g2>``... (group names must be unique)."""
    counter = itertools.count(1)
    return re.sub(r"\(\?P<g>", lambda _: f"(?P<g{next(counter)}>", pattern)


_PATTERNS = st.recursive(_ATOMS | _CLASSES, _extend, max_leaves=12).map(_name_groups)


@_SETTINGS
@given(pattern=_PATTERNS)
def test_scanner_matches_the_parse_tree_analysis(pattern: str) -> None:
    check_against_oracle(pattern)


@_SETTINGS
@given(pattern=st.text(alphabet="a()[]{}*+?|\\.^$0123,:=!<>PidwsSx#-", max_size=30))
def test_scanner_matches_the_parse_tree_analysis_on_any_text(pattern: str) -> None:
    check_against_oracle(pattern, unsupported_ok=True)


@_SETTINGS
@given(pattern=st.text(max_size=20))
def test_scanner_never_crashes(pattern: str) -> None:
    """Any text, compiling or not: a cost or a refusal, never another exception."""
    try:
        _cost(pattern)
    except (RegexTooCostly, RecursionError):
        pass
    check_against_oracle(pattern, unsupported_ok=True)
