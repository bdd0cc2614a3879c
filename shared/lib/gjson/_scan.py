"""Lexical helpers of the path compiler: balanced brackets, strings, pipes, names."""

from __future__ import annotations

import re
from typing import Final

#: The ``@name`` words that are modifiers (any other ``@word`` is a plain key).
MODIFIER_NAMES: Final = frozenset(
    {
        "reverse",
        "this",
        "flatten",
        "join",
        "keys",
        "values",
        "valid",
        "ugly",
        "pretty",
        "tostr",
        "fromstr",
        "group",
        "dig",
    }
)

#: A number literal after ``!`` (JSON number syntax).
NUMBER_LITERAL: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
#: What query parts are trimmed of (Go's ``<= ' '``).
WS: Final = "".join(chr(c) for c in range(33))


def is_modifier_at(s: str, i: int) -> bool:
    """Does ``s[i:]`` start with ``@name`` for a known modifier?"""
    if i >= len(s) or s[i] != "@":
        return False
    j = i + 1
    while j < len(s) and s[j] not in ".|:":
        j += 1
    return s[i + 1 : j] in MODIFIER_NAMES


def is_dot_piper(s: str, i: int) -> bool:
    """gjson's isDotPiperChar: after a '.', these start a new segment."""
    if i >= len(s):
        return False
    c = s[i]
    if c == "@":
        return is_modifier_at(s, i)
    return c == "[" or c == "{"


def skip_string(s: str, i: int) -> int:
    """``s[i]`` is a quote: index of the closing quote (or len(s))."""
    i += 1
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i
        i += 1
    return n


def squash(s: str, i: int) -> int:
    """End index (exclusive) of the balanced value starting at ``s[i]``
    (one of ``{ [ ( "``); -1 when unbalanced."""
    if s[i] == '"':
        j = skip_string(s, i)
        return j + 1 if j < len(s) else -1
    depth = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == '"':
            i = skip_string(s, i)
            if i >= n:
                return -1
        elif c == "\\":
            i += 1
        elif c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def split_pipe(s: str) -> int:
    """Index of the first ``|`` outside brackets, queries and strings; -1 if none."""
    depth = 0
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == '"' and depth > 0:
            i = skip_string(s, i) + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "|" and depth <= 0:
            return i
        i += 1
    return -1


def component_end(s: str, i: int) -> int:
    while i < len(s) and s[i] not in ".|":
        i += 1
    return i


def name_of_last(path: str) -> str:
    for i in range(len(path) - 1, -1, -1):
        if path[i] in "|.":
            if i > 0 and path[i - 1] == "\\":
                continue
            return path[i + 1 :]
    return path


def is_simple_name(component: str) -> bool:
    return all(c >= " " and c not in "[]{}()#|!" for c in component)
