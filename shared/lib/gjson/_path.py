"""Compilation and evaluation of gjson paths over parsed Python values.

A path compiles into *segments* (separated by ``|`` or by a ``.`` that is
followed by a modifier, ``[`` or ``{``); a segment is a list of *steps*.
Evaluation feeds the value through every segment in turn.  Inside a segment,
a wildcard key (or a duplicated key of a :class:`DupDict`) tries each
candidate with the rest of the segment and keeps the first that exists,
exactly like gjson's scanner.  ``#.rest`` and ``#(query)#.rest`` map the rest
of the path (up to the next top-level ``|``) over the array elements.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

from ._json import (
    MAX_DEPTH,
    MISSING,
    DupDict,
    dumps,
    iter_items,
    make_object,
    parse,
    parse_value_text,
)
from ._match import Glob
from .errors import PathError

#: Deepest nesting of sub-paths (queries, multipaths, ``#.`` maps) in a path.
MAX_PATH_NESTING: Final = 32
#: Longest accepted path, in characters.
MAX_PATH_LENGTH: Final = 65_536
#: Work units (candidates, elements, selectors, visited nodes) one evaluation
#: may spend before it is abandoned with :class:`PathError`.
MAX_EVAL_OPS: Final = 1_000_000
#: Deepest recursion of fan-out (wildcards) during one evaluation.
MAX_EVAL_DEPTH: Final = 256

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

QUERY_OPS: Final = frozenset({"=", "!=", "<", "<=", ">", ">=", "%", "!%"})

# step opcodes
KEY: Final = 0
WILD: Final = 1
COUNT: Final = 2
MAP: Final = 3
QUERY: Final = 4
MOD: Final = 5
LIT: Final = 6
MULTI: Final = 7


class _SoftList(list):  # type: ignore[type-arg]
    """Result of ``#(...)#``: gjson records it without a "hit", so a later
    wildcard candidate with a real hit takes precedence."""

    __slots__ = ()


class Step:
    __slots__ = ("op", "pos")

    def __init__(self, op: int, pos: int) -> None:
        self.op = op
        self.pos = pos


class KeyStep(Step):
    __slots__ = ("index", "name")

    def __init__(self, name: str, pos: int) -> None:
        super().__init__(KEY, pos)
        self.name = name
        self.index: int | None = int(name) if name.isascii() and name.isdigit() else None


class WildStep(Step):
    __slots__ = ("glob",)

    def __init__(self, glob: Glob, pos: int) -> None:
        super().__init__(WILD, pos)
        self.glob = glob


class SubStep(Step):
    """``#.rest`` (MAP) - ``sub`` is the compiled rest."""

    __slots__ = ("sub",)

    def __init__(self, op: int, sub: Segments, pos: int) -> None:
        super().__init__(op, pos)
        self.sub = sub


class QueryStep(Step):
    __slots__ = ("all", "number", "path", "qop", "sub", "tilde", "value")

    def __init__(
        self,
        path: Segments | None,
        qop: str,
        value: str,
        all_: bool,
        sub: Segments | None,
        pos: int,
    ) -> None:
        super().__init__(QUERY, pos)
        self.path = path
        self.qop = qop
        self.value = value
        self.all = all_
        self.sub = sub
        self.tilde: str | None = value[1:] if value.startswith("~") else None
        self.number = _go_parse_float(value)


class ModStep(Step):
    __slots__ = ("arg", "fn", "name", "sub")

    def __init__(
        self,
        name: str,
        arg: Any,
        sub: Segments | None,
        pos: int,
    ) -> None:
        super().__init__(MOD, pos)
        self.name = name
        self.arg = arg
        self.sub = sub
        self.fn: Callable[[Any, ModStep, _Ctx], Any] = _MODIFIERS[name]


class LitStep(Step):
    __slots__ = ("value",)

    def __init__(self, value: Any, pos: int) -> None:
        super().__init__(LIT, pos)
        self.value = value


class MultiStep(Step):
    __slots__ = ("is_object", "selectors")

    def __init__(self, is_object: bool, selectors: list[tuple[str, Segments]], pos: int) -> None:
        super().__init__(MULTI, pos)
        self.is_object = is_object
        self.selectors = selectors


Segments = list[list[Step]]


class CompiledPath:
    """A compiled path: evaluate with :meth:`evaluate`."""

    __slots__ = ("keys", "lines", "path", "pretty", "segments", "strict_error")

    def __init__(
        self,
        path: str,
        segments: Segments,
        lines: bool,
        strict_error: PathError | None,
    ) -> None:
        self.path = path
        self.segments = segments
        self.lines = lines
        self.strict_error = strict_error
        keys: tuple[str, ...] | None = None
        if not lines and len(segments) == 1 and all(s.op == KEY for s in segments[0]):
            keys = tuple(s.name for s in segments[0])  # type: ignore[attr-defined]
        self.keys = keys
        pretty: Any = None
        if segments and segments[-1]:
            last = segments[-1][-1]
            if isinstance(last, ModStep) and last.name == "pretty":
                pretty = last.arg if isinstance(last.arg, dict) else {}
        self.pretty: dict[str, Any] | None = pretty

    def evaluate(self, value: Any) -> Any:
        """Evaluate over a parsed value; returns the value or ``MISSING``."""
        return run_path(self.segments, value, _Ctx())

    def __repr__(self) -> str:
        return f"CompiledPath({self.path!r})"


# ---------------------------------------------------------------------------
# compilation


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


def _is_modifier_at(s: str, i: int) -> bool:
    """Does ``s[i:]`` start with ``@name`` for a known modifier?"""
    if i >= len(s) or s[i] != "@":
        return False
    j = i + 1
    while j < len(s) and s[j] not in ".|:":
        j += 1
    return s[i + 1 : j] in MODIFIER_NAMES


def _is_dot_piper(s: str, i: int) -> bool:
    """gjson's isDotPiperChar: after a '.', these start a new segment."""
    if i >= len(s):
        return False
    c = s[i]
    if c == "@":
        return _is_modifier_at(s, i)
    return c == "[" or c == "{"


def _skip_string(s: str, i: int) -> int:
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


def _squash(s: str, i: int) -> int:
    """End index (exclusive) of the balanced value starting at ``s[i]``
    (one of ``{ [ ( "``); -1 when unbalanced."""
    if s[i] == '"':
        j = _skip_string(s, i)
        return j + 1 if j < len(s) else -1
    depth = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == '"':
            i = _skip_string(s, i)
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


def _split_pipe(s: str) -> int:
    """Index of the first ``|`` outside brackets, queries and strings; -1 if none."""
    depth = 0
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == '"' and depth > 0:
            i = _skip_string(s, i) + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "|" and depth <= 0:
            return i
        i += 1
    return -1


_NUMBER_LITERAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


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
                if c == "@" and _is_modifier_at(s, i):
                    special, end = _compile_modifier(s, i, base, depth, strict)
                elif c == "!":
                    lit = _compile_literal(s, i, base)
                    if lit is not None:
                        special, end = lit
                    else:
                        strict.add(f"invalid literal '{s[i : _component_end(s, i)]}'", base + i)
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
                    p = _split_pipe(rest)
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
                    p = _split_pipe(rest)
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
        if _is_dot_piper(s, i):
            segments.append(cur)
            cur = []
            seg_start = True
    segments.append(cur)
    return segments


def _component_end(s: str, i: int) -> int:
    while i < len(s) and s[i] not in ".|":
        i += 1
    return i


def _compile_literal(s: str, i: int, base: int) -> tuple[Step, int] | None:
    """``s[i] == '!'``: a static value; None when it is not a literal."""
    j = i + 1
    c = s[j]
    if c in '{["':
        end = _squash(s, j)
        if end < 0:
            raise _hard(f"unterminated literal {c!r}", base + j)
        value = parse_value_text(s[j:end])
        if value is MISSING:
            raise _hard("invalid JSON literal", base + j)
        return LitStep(value, base + i), end
    if c in "-0123456789":
        m = _NUMBER_LITERAL.match(s, j)
        if m is None:
            raise _hard("invalid number literal", base + j)
        value = parse(m.group(0))
        return LitStep(value, base + i), m.end()
    end = _component_end(s, j)
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
                e = _squash(s, a)
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
                        e = _squash(s, k)
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
    return ModStep(name, arg, sub, base + i), end


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
            k = _skip_string(s, k)
        k += 1
    if level > 0 or k >= n:
        raise _hard(f"unclosed query {s[i : i + 2]!r}", base + i)
    close = k
    qop = ""
    value = ""
    if j:
        raw_path = s[i + 2 : j]
        v = s[j:close].strip(_WS)
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
        value = v[trail:].strip(_WS)
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
    qpath_text = raw_path.strip(_WS)
    qpath = None
    if qpath_text:
        offset = i + 2 + (len(raw_path) - len(raw_path.lstrip(_WS)))
        qpath = _compile(qpath_text, base + offset, depth + 1, strict)
    k = close + 1
    all_ = k < n and s[k] == "#"
    if all_:
        k += 1
    return QueryStep(qpath, qop, value, all_, None, base + i), k


_WS = "".join(chr(c) for c in range(33))


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
            k = _skip_string(s, k)
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
            last = _name_of_last(text)
            key = last if _is_simple_name(last) else "_"
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


def _name_of_last(path: str) -> str:
    for i in range(len(path) - 1, -1, -1):
        if path[i] in "|.":
            if i > 0 and path[i - 1] == "\\":
                continue
            return path[i + 1 :]
    return path


def _is_simple_name(component: str) -> bool:
    return all(c >= " " and c not in "[]{}()#|!" for c in component)


def _go_parse_float(s: str) -> float:
    """strconv.ParseFloat(s, 64) with errors mapped to 0 (as gjson ignores them)."""
    if "_" in s:
        return 0.0
    try:
        return float(s)
    except ValueError:
        return 0.0


# ---------------------------------------------------------------------------
# evaluation


class _Ctx:
    __slots__ = ("depth", "ops")

    def __init__(self) -> None:
        self.ops = MAX_EVAL_OPS
        self.depth = 0


def _exhausted() -> PathError:
    return PathError(f"path evaluation exceeded {MAX_EVAL_OPS} steps", 0)


def run_path(segments: Segments, value: Any, ctx: _Ctx) -> Any:
    for seg in segments:
        value = _run_seg(seg, 0, value, ctx)
        if type(value) is _SoftList:
            value = list(value)
    return value


def _fanout(seg: list[Step], i: int, candidates: list[Any], ctx: _Ctx) -> Any:
    ctx.depth += 1
    if ctx.depth > MAX_EVAL_DEPTH:
        raise PathError(f"path evaluation deeper than {MAX_EVAL_DEPTH} levels", seg[i].pos)
    try:
        soft = MISSING
        for cand in candidates:
            ctx.ops -= 1
            if ctx.ops < 0:
                raise _exhausted()
            r = _run_seg(seg, i + 1, cand, ctx)
            if r is MISSING:
                continue
            if type(r) is _SoftList:
                if soft is MISSING:
                    soft = r
                continue
            return r
        return soft
    finally:
        ctx.depth -= 1


def _run_seg(seg: list[Step], i: int, v: Any, ctx: _Ctx) -> Any:
    n = len(seg)
    while i < n:
        st = seg[i]
        op = st.op
        if op == KEY:
            t = type(v)
            if t is dict:
                v = v.get(st.name, MISSING)  # type: ignore[attr-defined]
            elif t is list or t is _SoftList:
                idx = st.index  # type: ignore[attr-defined]
                v = v[idx] if idx is not None and idx < len(v) else MISSING
            elif t is DupDict:
                name = st.name  # type: ignore[attr-defined]
                if name in v.dups:
                    return _fanout(seg, i, v.values_for(name), ctx)
                v = dict.get(v, name, MISSING)
            elif isinstance(v, dict):
                v = v.get(st.name, MISSING)  # type: ignore[attr-defined]
            elif isinstance(v, (list, tuple)):
                idx = st.index  # type: ignore[attr-defined]
                v = v[idx] if idx is not None and idx < len(v) else MISSING
            else:
                return MISSING
            if v is MISSING:
                return MISSING
        elif op == WILD:
            if not isinstance(v, dict):
                return MISSING
            g = st.glob  # type: ignore[attr-defined]
            items = iter_items(v)
            ctx.ops -= len(items)
            if ctx.ops < 0:
                raise _exhausted()
            return _fanout(seg, i, [val for k, val in items if g.match(k)], ctx)
        elif op == COUNT:
            if isinstance(v, (list, tuple)):
                v = len(v)
            elif isinstance(v, dict):
                v = v.get("#", MISSING)
                if v is MISSING:
                    return MISSING
            else:
                return MISSING
        elif op == MAP:
            sub = st.sub  # type: ignore[attr-defined]
            if isinstance(v, (list, tuple)):
                ctx.ops -= len(v)
                if ctx.ops < 0:
                    raise _exhausted()
                out = []
                for el in v:
                    r = run_path(sub, el, ctx)
                    if r is not MISSING:
                        out.append(r)
                v = out
            elif isinstance(v, dict):
                v = run_path(sub, v.get("#", MISSING), ctx)
            else:
                return MISSING
        elif op == QUERY:
            v = _run_query(st, v, ctx)  # type: ignore[arg-type]
            if v is MISSING:
                return MISSING
        elif op == MOD:
            # modifiers copy, scan or (de)serialise their input: charge its size, so a chain
            # like '@reverse|@reverse|...' over a wide array stays within the step budget
            if isinstance(v, (list, dict)):
                ctx.ops -= 1 + len(v)
            elif isinstance(v, str):
                ctx.ops -= 1 + len(v) // 8
            else:
                ctx.ops -= 1
            if ctx.ops < 0:
                raise _exhausted()
            v = st.fn(v, st, ctx)  # type: ignore[attr-defined]
        elif op == LIT:
            v = st.value  # type: ignore[attr-defined]
        else:  # MULTI
            v = _run_multi(st, v, ctx)  # type: ignore[arg-type]
        i += 1
    return v


def _run_multi(st: MultiStep, v: Any, ctx: _Ctx) -> Any:
    ctx.ops -= len(st.selectors)
    if ctx.ops < 0:
        raise _exhausted()
    if st.is_object:
        pairs = []
        for name, sub in st.selectors:
            r = run_path(sub, v, ctx)
            if r is not MISSING:
                pairs.append((name, r))
        return make_object(pairs)
    out = []
    for _name, sub in st.selectors:
        r = run_path(sub, v, ctx)
        if r is not MISSING:
            out.append(r)
    return out


def _run_query(st: QueryStep, v: Any, ctx: _Ctx) -> Any:
    if not isinstance(v, (list, tuple)):
        return MISSING
    ctx.ops -= len(v)
    if ctx.ops < 0:
        raise _exhausted()
    sub = st.sub
    if st.all:
        out = _SoftList()
        for el in v:
            if _query_matches(st, el, ctx):
                r = el if sub is None else run_path(sub, el, ctx)
                if r is not MISSING:
                    out.append(r)
        return out
    for el in v:
        if _query_matches(st, el, ctx):
            return el if sub is None else run_path(sub, el, ctx)
    return MISSING


def _truthy_string(s: str) -> bool | None:
    """Go strconv.ParseBool on the lower-cased string (None when invalid)."""
    s = s.lower()
    if s in ("1", "t", "true"):
        return True
    if s in ("0", "f", "false"):
        return False
    return None


def _query_matches(st: QueryStep, el: Any, ctx: _Ctx) -> bool:
    if st.path is None:
        res = MISSING if isinstance(el, (dict, list)) else el
    elif isinstance(el, (dict, list)):
        res = run_path(st.path, el, ctx)
    else:
        return False
    rpv = st.value
    tilde = st.tilde
    if tilde is not None:
        if tilde == "*":
            ish = res is not MISSING
        elif tilde == "null":
            ish = res is None or res is MISSING
        elif tilde == "true":
            if res is True:
                ish = True
            elif isinstance(res, str):
                ish = _truthy_string(res) is True
            elif isinstance(res, (int, float)) and not isinstance(res, bool):
                ish = res != 0
            else:
                ish = False
        elif tilde == "false":
            if res is None or res is MISSING or res is False:
                ish = True
            elif isinstance(res, str):
                ish = _truthy_string(res) is False
            elif isinstance(res, (int, float)) and not isinstance(res, bool):
                ish = res == 0
            else:
                ish = False
        else:
            return False
        rpv = "true"
        res = ish
    if res is MISSING:
        return False
    qop = st.qop
    if qop == "":
        return True
    if isinstance(res, str):
        if qop == "=":
            return res == rpv
        if qop == "!=":
            return res != rpv
        if qop == "<":
            return res < rpv
        if qop == "<=":
            return res <= rpv
        if qop == ">":
            return res > rpv
        if qop == ">=":
            return res >= rpv
        if qop == "%":
            return _glob_match(res, rpv)
        if qop == "!%":
            return not _glob_match(res, rpv)
        return False
    if res is True:
        if qop == "=":
            return rpv == "true"
        if qop == "!=":
            return rpv != "true"
        if qop == ">":
            return rpv == "false"
        return qop == ">="
    if res is False:
        if qop == "=":
            return rpv == "false"
        if qop == "!=":
            return rpv != "false"
        if qop == "<":
            return rpv == "true"
        return qop == "<="
    if isinstance(res, (int, float)):
        try:
            num = float(res)
        except OverflowError:
            num = float("inf") if res > 0 else float("-inf")
        rn = st.number
        if qop == "=":
            return num == rn
        if qop == "!=":
            return num != rn
        if qop == "<":
            return num < rn
        if qop == "<=":
            return num <= rn
        if qop == ">":
            return num > rn
        if qop == ">=":
            return num >= rn
    return False


@lru_cache(maxsize=1024)
def _glob_for(pattern: str) -> Glob:
    from ._match import tokens_from_plain

    return Glob(tokens_from_plain(pattern))


def _glob_match(text: str, pattern: str) -> bool:
    return _glob_for(pattern).match(text)


# ---------------------------------------------------------------------------
# modifiers


def _arg_opt(st: ModStep, key: str) -> Any:
    arg = st.arg
    if isinstance(arg, dict):
        return arg.get(key, MISSING)
    return MISSING


def _go_bool(v: Any) -> bool:
    if v is True:
        return True
    if isinstance(v, str):
        return _truthy_string(v) is True
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    return False


def _mod_reverse(v: Any, st: ModStep, ctx: _Ctx) -> Any:
    if isinstance(v, list):
        return v[::-1]
    if isinstance(v, dict):
        return make_object(iter_items(v)[::-1])
    return v


def _mod_this(v: Any, st: ModStep, ctx: _Ctx) -> Any:
    return v


def _sort_keys(v: Any, depth: int, ctx: _Ctx) -> Any:
    if depth > MAX_DEPTH:
        raise PathError(f"value nesting exceeds {MAX_DEPTH} levels", 0)
    ctx.ops -= 1
    if ctx.ops < 0:
        raise _exhausted()
    if isinstance(v, dict):
        items = sorted(iter_items(v), key=lambda kv: kv[0])
        return make_object([(k, _sort_keys(x, depth + 1, ctx)) for k, x in items])
    if isinstance(v, list):
        return [_sort_keys(x, depth + 1, ctx) for x in v]
    return v


def _mod_pretty(v: Any, st: ModStep, ctx: _Ctx) -> Any:
    if v is not MISSING and _go_bool(_arg_opt(st, "sortKeys")):
        return _sort_keys(v, 0, ctx)
    return v


def _flatten(v: list[Any], deep: bool, depth: int, ctx: _Ctx) -> list[Any]:
    if depth > MAX_DEPTH:
        raise PathError(f"value nesting exceeds {MAX_DEPTH} levels", 0)
    ctx.ops -= len(v)
    if ctx.ops < 0:
        raise _exhausted()
    out: list[Any] = []
    for el in v:
        if isinstance(el, list):
            out.extend(_flatten(el, deep, depth + 1, ctx) if deep else el)
        else:
            out.append(el)
    return out


def _mod_flatten(v: Any, st: ModStep, ctx: _Ctx) -> Any:
    if not isinstance(v, list):
        return v
    return _flatten(v, _go_bool(_arg_opt(st, "deep")), 0, ctx)


def _mod_join(v: Any, st: ModStep, ctx: _Ctx) -> Any:
    if not isinstance(v, list):
        return v
    objs = [el for el in v if isinstance(el, dict)]
    if _go_bool(_arg_opt(st, "preserve")):
        pairs: list[tuple[str, Any]] = []
        for o in objs:
            pairs.extend(iter_items(o))
        return make_object(pairs)
    out: dict[str, Any] = {}
    for o in objs:
        for k, x in iter_items(o):
            out[k] = x
    return out


def _mod_valid(v: Any, st: ModStep, ctx: _Ctx) -> Any:
    return v


def _mod_keys(v: Any, st: ModStep, ctx: _Ctx) -> Any:
    if v is MISSING:
        return []
    if isinstance(v, dict):
        return [k for k, _ in iter_items(v)]
    if isinstance(v, list):
        return [None] * len(v)
    return [None]


def _mod_values(v: Any, st: ModStep, ctx: _Ctx) -> Any:
    if v is MISSING:
        return []
    if isinstance(v, dict):
        return [x for _, x in iter_items(v)]
    if isinstance(v, list):
        return v
    return [v]


def _mod_tostr(v: Any, st: ModStep, ctx: _Ctx) -> Any:
    if v is MISSING:
        return ""
    return dumps(v)


def _mod_fromstr(v: Any, st: ModStep, ctx: _Ctx) -> Any:
    if isinstance(v, str):
        return parse(v)
    return v


def _mod_group(v: Any, st: ModStep, ctx: _Ctx) -> Any:
    if not isinstance(v, dict):
        return MISSING
    groups: list[list[tuple[str, Any]]] = []
    for key, arr in iter_items(v):
        if not isinstance(arr, list):
            continue
        ctx.ops -= len(arr)
        if ctx.ops < 0:
            raise _exhausted()
        for idx, el in enumerate(arr):
            if idx == len(groups):
                groups.append([])
            groups[idx].append((key, el))
    return [make_object(g) for g in groups]


def _mod_dig(v: Any, st: ModStep, ctx: _Ctx) -> Any:
    out: list[Any] = []
    if v is MISSING:
        return out
    sub = st.sub
    assert sub is not None
    stack: list[tuple[Any, int]] = [(v, 0)]
    while stack:
        node, depth = stack.pop()
        ctx.ops -= 1
        if ctx.ops < 0:
            raise _exhausted()
        r = run_path(sub, node, ctx)
        if r is not MISSING:
            out.append(r)
        if depth >= MAX_DEPTH:
            continue
        if isinstance(node, dict):
            children = [x for _, x in iter_items(node)]
        elif isinstance(node, list):
            children = node
        else:
            continue
        for child in reversed(children):
            stack.append((child, depth + 1))
    return out


_MODIFIERS: dict[str, Callable[[Any, ModStep, _Ctx], Any]] = {
    "reverse": _mod_reverse,
    "this": _mod_this,
    "flatten": _mod_flatten,
    "join": _mod_join,
    "keys": _mod_keys,
    "values": _mod_values,
    "valid": _mod_valid,
    "ugly": _mod_this,
    "pretty": _mod_pretty,
    "tostr": _mod_tostr,
    "fromstr": _mod_fromstr,
    "group": _mod_group,
    "dig": _mod_dig,
}
