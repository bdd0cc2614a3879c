"""Compilation of gjson path text into :class:`CompiledPath` objects.

The compiler is lenient where gjson is (it builds steps for anything gjson
evaluates) and records the first problem :func:`validate` must reject in
``CompiledPath.strict_error``; malformed syntax gjson cannot evaluate either
raises :class:`PathError` at once.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Final

from ._eval import CompiledPath
from ._json import MISSING, parse, parse_value_text
from ._limits import MAX_PATH_LENGTH, MAX_PATH_NESTING
from ._match import Glob
from ._modifiers import MODIFIERS
from ._scan import (
    NUMBER_LITERAL,
    WS,
    component_end,
    is_dot_piper,
    is_modifier_at,
    is_simple_name,
    name_of_last,
    skip_string,
    split_pipe,
    squash,
)
from ._steps import (
    COUNT,
    MAP,
    KeyStep,
    LitStep,
    ModStep,
    MultiStep,
    QueryStep,
    Segments,
    Step,
    SubStep,
    WildStep,
)
from .errors import PathError

QUERY_OPS: Final = frozenset({"=", "!=", "<", "<=", ">", ">=", "%", "!%"})


class _Strict:
    """Collects the first "strict" problem: syntax gjson tolerates (and
    evaluates leniently) but :func:`validate` rejects."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: PathError | None = None

    def add(self, message: str, position: int) -> None:
        if self.error is None:
            self.error = PathError(f"{message} at position {position}", position)


def _hard(message: str, position: int) -> PathError:
    return PathError(f"{message} at position {position}", position)


@lru_cache(maxsize=4096)
def compile_path(path: str) -> CompiledPath:
    """Compile (and cache) a path.  Raises :class:`PathError` when malformed."""
    if not isinstance(path, str):
        raise PathError(f"path must be a string, not {type(path).__name__}", 0)
    if len(path) > MAX_PATH_LENGTH:
        raise PathError(f"path longer than {MAX_PATH_LENGTH} characters at position 0", 0)
    strict = _Strict()
    if path == "":
        strict.add("empty path", 0)
    lines = path.startswith("..")
    segments = _compile(path[2:], 2, 0, strict) if lines else _compile(path, 0, 0, strict)
    return CompiledPath(path, segments, lines, strict.error)


def _compile(s: str, base: int, depth: int, strict: _Strict) -> Segments:
    if depth > MAX_PATH_NESTING:
        raise _hard(f"path nesting deeper than {MAX_PATH_NESTING} levels", base)
    segments: Segments = []
    cur: list[Step] = []
    n = len(s)
    i = 0
    seg_start = True
    while True:
        if seg_start:
            seg_start = False
            special: Step | None = None
            end = i
            if n - i > 1:
                c = s[i]
                if c == "@" and is_modifier_at(s, i):
                    special, end = _compile_modifier(s, i, base, depth, strict)
                elif c == "!":
                    lit = _compile_literal(s, i, base)
                    if lit is not None:
                        special, end = lit
                    else:
                        strict.add(f"invalid literal '{s[i : component_end(s, i)]}'", base + i)
                elif c == "[" or c == "{":
                    special, end = _compile_multipath(s, i, base, depth, strict)
            if special is not None:
                cur.append(special)
                if end >= n:
                    break
                if s[end] in "|.":
                    segments.append(cur)
                    cur = []
                    i = end + 1
                    seg_start = True
                    continue
                raise _hard(f"unexpected character {s[end]!r}", base + end)
        # ---- one component
        if i >= n:
            strict.add("empty path component", base + i)
            cur.append(KeyStep("", base + i))
            break
        if s[i] == "#":
            j = i + 1
            if j >= n or s[j] in ".|":
                if j < n and s[j] == ".":
                    rest = s[j + 1 :]
                    p = split_pipe(rest)
                    left = rest if p < 0 else rest[:p]
                    if left == "":
                        strict.add("empty path after '#.'", base + j + 1)
                    sub = _compile(left, base + j + 1, depth + 1, strict)
                    cur.append(SubStep(MAP, sub, base + i))
                    if p < 0:
                        break
                    segments.append(cur)
                    cur = []
                    i = j + 1 + p + 1
                    seg_start = True
                    continue
                cur.append(Step(COUNT, base + i))
                if j >= n:
                    break
                segments.append(cur)
                cur = []
                i = j + 1
                seg_start = True
                continue
            if s[j] in "([":
                qstep, k = _compile_query(s, i, base, depth, strict)
                if k >= n:
                    cur.append(qstep)
                    break
                if s[k] == "|":
                    cur.append(qstep)
                    segments.append(cur)
                    cur = []
                    i = k + 1
                    seg_start = True
                    continue
                if s[k] == ".":
                    rest = s[k + 1 :]
                    p = split_pipe(rest)
                    left = rest if p < 0 else rest[:p]
                    if left == "":
                        strict.add("empty path after query", base + k + 1)
                    qstep.sub = _compile(left, base + k + 1, depth + 1, strict)
                    cur.append(qstep)
                    if p < 0:
                        break
                    segments.append(cur)
                    cur = []
                    i = k + 1 + p + 1
                    seg_start = True
                    continue
                raise _hard(f"unexpected character {s[k]!r} after query", base + k)
        # ---- plain key (may hold wildcards / escapes)
        start = i
        tokens: list[tuple[str, str]] = []
        wild = False
        while i < n:
            c = s[i]
            if c == "\\":
                if i + 1 < n:
                    tokens.append(("lit", s[i + 1]))
                    i += 2
                else:
                    strict.add("dangling escape character", base + i)
                    i += 1
                continue
            if c == "." or c == "|":
                break
            if c == "*":
                wild = True
                tokens.append(("any", "*"))
            elif c == "?":
                wild = True
                tokens.append(("one", "?"))
            else:
                tokens.append(("lit", c))
            i += 1
        if not tokens and start == i:
            strict.add("empty path component", base + start)
        if s.startswith("@", start):
            j = start + 1
            while j < n and s[j] not in ".|:":
                j += 1
            strict.add(f"unsupported modifier '{s[start:j]}'", base + start)
        elif s.startswith("!", start):
            strict.add(f"invalid literal '{s[start:i]}'", base + start)
        if wild:
            cur.append(WildStep(Glob(tokens), base + start))
        else:
            cur.append(KeyStep("".join(t[1] for t in tokens), base + start))
        if i >= n:
            break
        if s[i] == "|":
            segments.append(cur)
            cur = []
            i += 1
            seg_start = True
            continue
        # a dot
        i += 1
        if is_dot_piper(s, i):
            segments.append(cur)
            cur = []
            seg_start = True
    segments.append(cur)
    return segments


def _compile_literal(s: str, i: int, base: int) -> tuple[Step, int] | None:
    """``s[i] == '!'``: a static value; None when it is not a literal."""
    j = i + 1
    c = s[j]
    if c in '{["':
        end = squash(s, j)
        if end < 0:
            raise _hard(f"unterminated literal {c!r}", base + j)
        value = parse_value_text(s[j:end])
        if value is MISSING:
            raise _hard("invalid JSON literal", base + j)
        return LitStep(value, base + i), end
    if c in "-0123456789":
        m = NUMBER_LITERAL.match(s, j)
        if m is None:
            raise _hard("invalid number literal", base + j)
        value = parse(m.group(0))
        return LitStep(value, base + i), m.end()
    end = component_end(s, j)
    word = s[j:end].lower()
    if word == "true":
        return LitStep(True, base + i), end
    if word == "false":
        return LitStep(False, base + i), end
    if word == "null":
        return LitStep(None, base + i), end
    if word == "nan":
        return LitStep(float("nan"), base + i), end
    if word == "inf":
        return LitStep(float("inf"), base + i), end
    return None


def _compile_modifier(s: str, i: int, base: int, depth: int, strict: _Strict) -> tuple[Step, int]:
    n = len(s)
    j = i + 1
    while j < n and s[j] not in ".|:":
        j += 1
    name = s[i + 1 : j]
    arg: Any = None
    arg_text = ""
    end = j
    if j < n and s[j] == ":":
        a = j + 1
        end = a
        if a < n:
            if s[a] in '{["':
                e = squash(s, a)
                if e < 0:
                    raise _hard(f"unterminated argument of modifier '@{name}'", base + a)
                arg_text = s[a:e]
                arg = parse_value_text(arg_text)
                if arg is MISSING:
                    raise _hard(f"invalid JSON argument of modifier '@{name}'", base + a)
                end = e
            else:
                k = a
                while k < n and s[k] != "|":
                    if s[k] in '{["(':
                        e = squash(s, k)
                        if e < 0:
                            raise _hard(f"unbalanced {s[k]!r} in modifier argument", base + k)
                        k = e
                        continue
                    if s[k] == "\\":
                        k += 2
                        continue
                    k += 1
                arg_text = s[a:k]
                arg = arg_text
                end = min(k, n)
    sub: Segments | None = None
    if name == "dig":
        if not arg_text:
            strict.add("modifier '@dig' needs a path argument", base + i)
        sub = _compile(arg_text, base + (j + 1 if arg_text else j), depth + 1, strict)
    elif arg is not None and not isinstance(arg, dict):
        strict.add(f"modifier '@{name}' takes a JSON object argument", base + j + 1)
    return ModStep(name, arg, sub, base + i, MODIFIERS[name]), end


def _compile_query(s: str, i: int, base: int, depth: int, strict: _Strict) -> tuple[QueryStep, int]:
    """``s[i:i+2]`` is ``#(`` or ``#[``; returns the step and the index after
    the closing bracket (and the optional ``#``)."""
    n = len(s)
    k = i + 2
    j = 0
    level = 1
    while k < n:
        c = s[k]
        if level == 1 and j == 0 and c in "!=<>%":
            j = k
            k += 1
            continue
        if c == "\\":
            k += 2
            continue
        if c in "[(":
            level += 1
        elif c in "])":
            level -= 1
            if level == 0:
                break
        elif c == '"':
            k = skip_string(s, k)
        k += 1
    if level > 0 or k >= n:
        raise _hard(f"unclosed query {s[i : i + 2]!r}", base + i)
    close = k
    qop = ""
    value = ""
    if j:
        raw_path = s[i + 2 : j]
        v = s[j:close].strip(WS)
        if len(v) == 1:
            trail = 1
        elif v[:2] in ("!=", "!%", "<=", ">="):
            trail = 2
        elif v[:2] == "==":
            v = v[1:]
            trail = 1
        elif v[0] in "<>=%":
            trail = 1
        else:
            trail = 0
        qop = v[:trail]
        value = v[trail:].strip(WS)
        if qop not in QUERY_OPS:
            strict.add(f"unsupported query operator '{v[:2] if trail == 0 else qop}'", base + j)
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            inner = value[1:-1]
            if "\\" in inner:
                try:
                    inner = json.loads(value)
                except ValueError:
                    strict.add("invalid escape in query value", base + j)
            value = inner
    else:
        raw_path = s[i + 2 : close]
    qpath_text = raw_path.strip(WS)
    qpath = None
    if qpath_text:
        offset = i + 2 + (len(raw_path) - len(raw_path.lstrip(WS)))
        qpath = _compile(qpath_text, base + offset, depth + 1, strict)
    k = close + 1
    all_ = k < n and s[k] == "#"
    if all_:
        k += 1
    return QueryStep(qpath, qop, value, all_, None, base + i), k


def _compile_multipath(s: str, i: int, base: int, depth: int, strict: _Strict) -> tuple[Step, int]:
    """gjson parseSubSelectors: ``[a,b]`` or ``{a,"name":b}``."""
    n = len(s)
    is_object = s[i] == "{"
    raw: list[tuple[str | None, int, int]] = []  # (name, path start, path end)
    start = i + 1
    colon = -1
    modifier = False
    level = 1
    k = i + 1
    end = -1
    while k < n:
        c = s[k]
        if c == "\\":
            k += 2
            continue
        if c == "@":
            if not modifier and k > 0 and s[k - 1] in ".|":
                modifier = True
        elif c == ":":
            if not modifier and colon < 0 and level == 1:
                colon = k
        elif c == "," and level == 1:
            raw.append(
                (s[start:colon] if colon >= 0 else None, colon + 1 if colon >= 0 else start, k)
            )
            colon = -1
            modifier = False
            start = k + 1
        elif c == '"':
            k = skip_string(s, k)
        elif c in "[({":
            level += 1
        elif c in "])}":
            level -= 1
            if level == 0:
                raw.append(
                    (s[start:colon] if colon >= 0 else None, colon + 1 if colon >= 0 else start, k)
                )
                end = k + 1
                break
        k += 1
    if end < 0:
        raise _hard(f"unclosed multipath {s[i]!r}", base + i)
    if len(raw) == 1 and raw[0][0] is None and raw[0][1] == raw[0][2]:
        raw = []  # "[]" / "{}"
    selectors: list[tuple[str, Segments]] = []
    for name, ps, pe in raw:
        text = s[ps:pe]
        if text == "":
            strict.add("empty path in multipath", base + ps)
        sub = _compile(text, base + ps, depth + 1, strict)
        if name is None or name == "":
            last = name_of_last(text)
            key = last if is_simple_name(last) else "_"
        elif name[0] == '"':
            try:
                decoded = json.loads(name)
            except ValueError:
                decoded = None
            key = decoded if isinstance(decoded, str) else name
        else:
            key = name
        selectors.append((key, sub))
    return MultiStep(is_object, selectors, base + i), end
