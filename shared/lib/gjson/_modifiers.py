"""gjson's modifiers (``@reverse``, ``@this``, ... ``@dig``).

Each takes the current value, its :class:`ModStep` (for the argument) and the
evaluation's :class:`Ctx` (for the work budget), and returns the new value.
"""

from __future__ import annotations

from typing import Any

from ._eval import run_path, truthy_string
from ._json import MAX_DEPTH, MISSING, dumps, iter_items, make_object, parse
from ._limits import Ctx
from ._steps import Modifier, ModStep
from .errors import PathError


def _arg_opt(st: ModStep, key: str) -> Any:
    arg = st.arg
    if isinstance(arg, dict):
        return arg.get(key, MISSING)
    return MISSING


def _go_bool(v: Any) -> bool:
    if v is True:
        return True
    if isinstance(v, str):
        return truthy_string(v) is True
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    return False


def _mod_reverse(v: Any, st: ModStep, ctx: Ctx) -> Any:
    if isinstance(v, list):
        return v[::-1]
    if isinstance(v, dict):
        return make_object(iter_items(v)[::-1])
    return v


def _mod_this(v: Any, st: ModStep, ctx: Ctx) -> Any:
    return v


def _sort_keys(v: Any, depth: int, ctx: Ctx) -> Any:
    if depth > MAX_DEPTH:
        raise PathError(f"value nesting exceeds {MAX_DEPTH} levels", 0)
    ctx.ops -= 1
    if ctx.ops < 0:
        ctx.refill()
    if isinstance(v, dict):
        items = sorted(iter_items(v), key=lambda kv: kv[0])
        return make_object([(k, _sort_keys(x, depth + 1, ctx)) for k, x in items])
    if isinstance(v, list):
        return [_sort_keys(x, depth + 1, ctx) for x in v]
    return v


def _mod_pretty(v: Any, st: ModStep, ctx: Ctx) -> Any:
    if v is not MISSING and _go_bool(_arg_opt(st, "sortKeys")):
        return _sort_keys(v, 0, ctx)
    return v


def _flatten(v: list[Any], deep: bool, depth: int, ctx: Ctx) -> list[Any]:
    if depth > MAX_DEPTH:
        raise PathError(f"value nesting exceeds {MAX_DEPTH} levels", 0)
    ctx.ops -= len(v)
    if ctx.ops < 0:
        ctx.refill()
    out: list[Any] = []
    for el in v:
        if isinstance(el, list):
            out.extend(_flatten(el, deep, depth + 1, ctx) if deep else el)
        else:
            out.append(el)
    return out


def _mod_flatten(v: Any, st: ModStep, ctx: Ctx) -> Any:
    if not isinstance(v, list):
        return v
    return _flatten(v, _go_bool(_arg_opt(st, "deep")), 0, ctx)


def _mod_join(v: Any, st: ModStep, ctx: Ctx) -> Any:
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


def _mod_valid(v: Any, st: ModStep, ctx: Ctx) -> Any:
    return v


def _mod_keys(v: Any, st: ModStep, ctx: Ctx) -> Any:
    if v is MISSING:
        return []
    if isinstance(v, dict):
        return [k for k, _ in iter_items(v)]
    if isinstance(v, list):
        return [None] * len(v)
    return [None]


def _mod_values(v: Any, st: ModStep, ctx: Ctx) -> Any:
    if v is MISSING:
        return []
    if isinstance(v, dict):
        return [x for _, x in iter_items(v)]
    if isinstance(v, list):
        return v
    return [v]


def _mod_tostr(v: Any, st: ModStep, ctx: Ctx) -> Any:
    if v is MISSING:
        return ""
    return dumps(v)


def _mod_fromstr(v: Any, st: ModStep, ctx: Ctx) -> Any:
    if isinstance(v, str):
        return parse(v)
    return v


def _mod_group(v: Any, st: ModStep, ctx: Ctx) -> Any:
    if not isinstance(v, dict):
        return MISSING
    groups: list[list[tuple[str, Any]]] = []
    for key, arr in iter_items(v):
        if not isinstance(arr, list):
            continue
        ctx.ops -= len(arr)
        if ctx.ops < 0:
            ctx.refill()
        for idx, el in enumerate(arr):
            if idx == len(groups):
                groups.append([])
            groups[idx].append((key, el))
    return [make_object(g) for g in groups]


def _mod_dig(v: Any, st: ModStep, ctx: Ctx) -> Any:
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
            ctx.refill()
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


MODIFIERS: dict[str, Modifier] = {
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
