"""``$regex`` on RE2, and what one search may cost.

RE2 (the ``google-re2`` bindings, module ``re2``) matches in time linear in the input: it
never backtracks, so no pattern is "catastrophic". Its worst case is about *program size x
input bytes* steps (the NFA it falls back to when its DFA cache thrashes runs every
instruction of the compiled program on every byte). :func:`search_cost_ms` turns that into
CPU milliseconds with :data:`NS_PER_UNIT`, measured on adversarial patterns and inputs (a
program whose DFA blows up, e.g. ``(a|b)*a(a|b){20}c`` on random ``a``/``b`` text, took about
10-22 ns per instruction and byte; ordinary patterns take well under 1 ns because the DFA
runs a cached state per byte). The estimate is an upper bound on this kind of machine, not a
measurement of the pattern: :mod:`shared.triggers.filters` uses it to refuse filters whose
worst case exceeds the CPU budget, and also checks the budget on the clock while evaluating.

RE2 does not support backreferences, lookarounds, atomic groups, possessive quantifiers or
conditionals; :func:`regex_plan` says so in words. Two Python spellings RE2 reads differently
are translated (:func:`to_re2`): ``\\Z`` (end of text; RE2 writes ``\\z``) and ``{,n}``
(``{0,n}``; RE2 would read it as literal text).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Final, NamedTuple

import re2

__all__ = [
    "MAX_REGEX_INPUT",
    "MAX_REGEX_PATTERN",
    "NS_PER_UNIT",
    "RE2_UNSUPPORTED",
    "RegexPlan",
    "regex_plan",
    "search_cost_ms",
    "to_re2",
]

#: Longest pattern accepted, in characters.
MAX_REGEX_PATTERN: Final = 1024
#: Longest string value searched, in UTF-8 bytes; a longer value never matches.
MAX_REGEX_INPUT: Final = 16 * 1024
#: Worst-case CPU nanoseconds per RE2 program instruction per input byte (see the module doc).
NS_PER_UNIT: Final = 25
#: Memory RE2 may use per pattern (program and DFA cache); bounds compile time too.
REGEX_MAX_MEM: Final = 1 << 20
#: How refusals end: the engine, and that it cannot do what was asked.
RE2_UNSUPPORTED: Final = "which RE2 (the linear-time engine $regex runs on) does not support"


class RegexPlan(NamedTuple):
    """A compiled pattern and the size of its program (the cost model's factor)."""

    regex: Any  # what re2.compile returns: the bindings ship no type information
    program_size: int


def _options() -> Any:
    options = re2.Options()
    options.max_mem = REGEX_MAX_MEM
    options.never_capture = True  # only "is there a match": the DFA alone answers that
    options.log_errors = False  # refusals are reported to the user, not to stderr
    return options


_BRACES_FROM_ZERO = re.compile(r"\{,(\d*)\}")


def to_re2(pattern: str) -> str:
    """``pattern`` with the Python spellings that RE2 reads differently rewritten: ``\\Z``
    becomes ``\\z`` and ``{,n}`` becomes ``{0,n}`` (outside character classes)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    class_start = -1  # index just after the "[" (or "[^") of the class we are in
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            pair = pattern[i : i + 2]
            out.append("\\z" if pair == "\\Z" and class_start < 0 else pair)
            i += 2
            continue
        if class_start >= 0:
            if c == "]" and i > class_start:
                class_start = -1
        elif c == "[":
            class_start = i + 1
            if pattern.startswith("^", class_start):
                class_start += 1
                out.append("[^")
                i += 2
                continue
        elif c == "{" and (m := _BRACES_FROM_ZERO.match(pattern, i)):
            out.append("{0," + m.group(1) + "}")
            i = m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _explain(error: str, pattern: str) -> str:
    """Why RE2 refused ``pattern`` (its message ``error``), in the user's terms."""
    if re.match(r"invalid escape sequence: \\[1-9]", error) or (
        error.endswith("(?P") and "(?P=" in pattern
    ):
        return f"uses a backreference (\\1, (?P=name)), {RE2_UNSUPPORTED}"
    if re.search(r"\(\?<?[=!]", error):
        return f"uses a lookaround ((?=...), (?!...), (?<=...), (?<!...)), {RE2_UNSUPPORTED}"
    if "(?>" in error or re.search(r"repetition operator: .\+", error):
        return (
            f"uses an atomic group or a possessive quantifier, {RE2_UNSUPPORTED} "
            "(nor needs: it never backtracks)"
        )
    if "(?(" in error:
        return f"uses a conditional group (?(...)...), {RE2_UNSUPPORTED}"
    if "(?P" in error:  # RE2 reports any bad (?P... as "(?P"
        return f"uses a (?P...) construct other than (?P<name>...), {RE2_UNSUPPORTED}"
    if "too large" in error:
        return "is too large: its RE2 program exceeds the memory limit; simplify it"
    return f"does not compile with RE2: {error}"


@lru_cache(maxsize=128)
def regex_plan(pattern: str) -> RegexPlan | str:
    """The compiled pattern, or why it is refused (a phrase such as "uses a lookaround ...").

    Cached: each compiled pattern holds at most :data:`REGEX_MAX_MEM` bytes."""
    if len(pattern) > MAX_REGEX_PATTERN:
        return f"pattern is longer than {MAX_REGEX_PATTERN} characters"
    try:
        compiled = re2.compile(to_re2(pattern), _options())
    except re2.error as exc:
        raw = exc.args[0] if exc.args else ""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return _explain(text, pattern)
    except (UnicodeEncodeError, TypeError, ValueError) as exc:  # e.g. a lone surrogate
        return f"does not compile with RE2: {type(exc).__name__}"
    return RegexPlan(compiled, int(compiled.programsize))


def search_cost_ms(program_size: int, input_bytes: int) -> float:
    """Estimated worst-case CPU milliseconds of one search (see the module doc)."""
    return program_size * input_bytes * NS_PER_UNIT / 1_000_000
