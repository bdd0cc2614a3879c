"""Evaluation of compiled paths over parsed Python values.

Evaluation feeds the value through every segment in turn.  Inside a segment,
a wildcard key (or a duplicated key of a :class:`DupDict`) tries each
candidate with the rest of the segment and keeps the first that exists,
exactly like gjson's scanner.  ``#.rest`` and ``#(query)#.rest`` map the rest
of the path (up to the next top-level ``|``) over the array elements.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ._json import MISSING, DupDict, iter_items, make_object
from ._limits import MAX_EVAL_DEPTH, Ctx
from ._match import Glob, tokens_from_plain
from ._steps import (
    COUNT,
    KEY,
    LIT,
    MAP,
    MOD,
    QUERY,
    WILD,
    ModStep,
    MultiStep,
    QueryStep,
    Segments,
    SoftList,
    Step,
)
from .errors import PathError


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

    def evaluate(self, value: Any, tick: Callable[[], None] | None = None) -> Any:
        """Evaluate over a parsed value; returns the value or ``MISSING``. ``tick`` is called
        every few thousand work units and may raise to abandon the evaluation."""
        return run_path(self.segments, value, Ctx(tick))

    def __repr__(self) -> str:
        return f"CompiledPath({self.path!r})"


def run_path(segments: Segments, value: Any, ctx: Ctx) -> Any:
    for seg in segments:
        value = _run_seg(seg, 0, value, ctx)
        if type(value) is SoftList:
            value = list(value)
    return value


def _fanout(seg: list[Step], i: int, candidates: list[Any], ctx: Ctx) -> Any:
    ctx.depth += 1
    if ctx.depth > MAX_EVAL_DEPTH:
        raise PathError(f"path evaluation deeper than {MAX_EVAL_DEPTH} levels", seg[i].pos)
    try:
        soft = MISSING
        for cand in candidates:
            ctx.ops -= 1
            if ctx.ops < 0:
                ctx.refill()
            r = _run_seg(seg, i + 1, cand, ctx)
            if r is MISSING:
                continue
            if type(r) is SoftList:
                if soft is MISSING:
                    soft = r
                continue
            return r
        return soft
    finally:
        ctx.depth -= 1


def _run_seg(seg: list[Step], i: int, v: Any, ctx: Ctx) -> Any:
    n = len(seg)
    while i < n:
        st = seg[i]
        op = st.op
        if op == KEY:
            t = type(v)
            if t is dict:
                v = v.get(st.name, MISSING)  # type: ignore[attr-defined]
            elif t is list or t is SoftList:
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
                ctx.refill()
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
                    ctx.refill()
                out = []
                for done, el in enumerate(v, 1):
                    ctx.poll(done)
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
                ctx.refill()
            v = st.fn(v, st, ctx)  # type: ignore[attr-defined]
        elif op == LIT:
            v = st.value  # type: ignore[attr-defined]
        else:  # MULTI
            v = _run_multi(st, v, ctx)  # type: ignore[arg-type]
        i += 1
    return v


def _run_multi(st: MultiStep, v: Any, ctx: Ctx) -> Any:
    ctx.ops -= len(st.selectors)
    if ctx.ops < 0:
        ctx.refill()
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


def _run_query(st: QueryStep, v: Any, ctx: Ctx) -> Any:
    if not isinstance(v, (list, tuple)):
        return MISSING
    ctx.ops -= len(v)
    if ctx.ops < 0:
        ctx.refill()
    sub = st.sub
    if st.all:
        out = SoftList()
        for done, el in enumerate(v, 1):
            ctx.poll(done)
            if _query_matches(st, el, ctx):
                r = el if sub is None else run_path(sub, el, ctx)
                if r is not MISSING:
                    out.append(r)
        return out
    for done, el in enumerate(v, 1):
        ctx.poll(done)
        if _query_matches(st, el, ctx):
            return el if sub is None else run_path(sub, el, ctx)
    return MISSING


def truthy_string(s: str) -> bool | None:
    """Go strconv.ParseBool on the lower-cased string (None when invalid)."""
    s = s.lower()
    if s in ("1", "t", "true"):
        return True
    if s in ("0", "f", "false"):
        return False
    return None


def _query_matches(st: QueryStep, el: Any, ctx: Ctx) -> bool:
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
                ish = truthy_string(res) is True
            elif isinstance(res, (int, float)) and not isinstance(res, bool):
                ish = res != 0
            else:
                ish = False
        elif tilde == "false":
            if res is None or res is MISSING or res is False:
                ish = True
            elif isinstance(res, str):
                ish = truthy_string(res) is False
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
    return Glob(tokens_from_plain(pattern))


def _glob_match(text: str, pattern: str) -> bool:
    return _glob_for(pattern).match(text)
