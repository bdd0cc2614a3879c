"""The bounds of one message-template render (see :mod:`shared.events.templates`).

One worker renders every tenant's templates, so a render is bounded: its steps (loop
iterations, calls, filters), its wall-clock time, all the text it produces, and every
operation that can multiply sizes (``*``, ``**``, ``+``, ``%``, ``format``, ``replace``,
``join``, ``center``, ``indent``, ...), checked *before* it allocates. A bound that stops a
render raises :class:`Refused`; the budget of the render under way is :data:`BUDGET`.
"""

from __future__ import annotations

import functools
import inspect
import re
import string
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

from jinja2.runtime import Context, Undefined

#: loop iterations, calls and filters of one render
MAX_STEPS: Final = 250_000
MAX_RENDER_SECONDS: Final = 1.0
#: all text one render produces, also into ``{% set %}`` blocks and macro results
MAX_EMITTED_CHARS: Final = 1024 * 1024
#: the longest string and the longest list one operation may produce
MAX_VALUE_CHARS: Final = 256 * 1024
MAX_ITEMS: Final = 100_000
#: the widest field of a format spec (``{:>40}``, ``%-40s``)
MAX_WIDTH: Final = 10_000
MAX_INT_BITS: Final = 65_536


class Refused(Exception):
    """A bound of this module stopped the render; the message is the reason."""


# --- the budget of the render under way -----------------------------------------------


@dataclass
class Budget:
    deadline: float
    steps: int = 0
    emitted: int = 0


BUDGET: ContextVar[Budget | None] = ContextVar("message_template_budget", default=None)


def tick() -> None:
    budget = BUDGET.get()
    if budget is None:  # constant folding while compiling: no render under way
        return
    budget.steps += 1
    if budget.steps > MAX_STEPS:
        raise Refused(f"more than {MAX_STEPS:,} loop iterations and calls")
    if time.monotonic() > budget.deadline:
        raise Refused(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")


def text_size(value: Any, limit: int = MAX_VALUE_CHARS) -> int:
    """About how many characters ``value`` prints as, counting no further than past ``limit``
    (a shared reference counts every time it prints: ``[s, s, s]`` is three times ``s``)."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        v = stack.pop()
        if isinstance(v, str):
            total += len(v) + 2
        elif isinstance(v, (Context, range)):
            total += 16
        elif isinstance(v, Mapping):
            total += 2 + 2 * len(v)
            if total <= limit:
                stack.extend(v.keys())
                stack.extend(v.values())
        elif isinstance(v, Collection):  # lists, tuples, sets, dict views
            total += 2 + len(v)
            if total <= limit:
                stack.extend(v)
        elif isinstance(v, int):
            total += v.bit_length() // 3 + 1
        else:
            total += 8
    return total


def check_size(value: Any) -> None:
    """Refuses a list or object that would print longer than :data:`MAX_VALUE_CHARS` (a
    string has printed already: its size is its own)."""
    big = isinstance(value, Collection) and not isinstance(value, str)
    if big and text_size(value) > MAX_VALUE_CHARS:
        raise Refused(f"a value would print longer than {MAX_VALUE_CHARS:,} characters")


def check_result(value: Any, inputs: tuple[Any, ...] = ()) -> Any:
    """Stops growth: refuses a string or list over the limits that is longer than each of
    the ``inputs`` of the same kind (so a long payload string may still pass ``|trim``)."""
    kinds: type | tuple[type, ...]
    if isinstance(value, str):
        limit, kinds, what = MAX_VALUE_CHARS, str, "a string"
    elif isinstance(value, (list, tuple, dict)):
        limit, kinds, what = MAX_ITEMS, (list, tuple, dict), "a list or object"
    else:
        return value
    if len(value) > limit and all(not isinstance(x, kinds) or len(x) < len(value) for x in inputs):
        raise Refused(f"{what} longer than {limit:,}")
    return value


def refuse_over(estimate: int, what: str) -> None:
    if estimate > MAX_VALUE_CHARS:
        raise Refused(f"{what} would be longer than {MAX_VALUE_CHARS:,} characters")


# --- size checks of the operations that can multiply sizes -----------------------------

_PRINTF_SPEC: Final = re.compile(
    r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([diouxXeEfFgGcrsa%])"
)


def _largest(args: Any) -> int:
    if isinstance(args, Mapping):
        args = list(args.values())
    elif not isinstance(args, (list, tuple)):
        args = [args]
    return max((text_size(arg) for arg in args), default=0)


def check_format(fmt: str, widths: Iterator[int], args: Any) -> None:
    """``fmt % args``, ``|format`` and ``fmt.format(...)``: field widths up to
    :data:`MAX_WIDTH`, and the result's size (each field as wide as the largest argument)."""
    largest = _largest(args)
    estimate = len(fmt)
    for wide in widths:
        if wide > MAX_WIDTH:
            raise Refused(f"a format width above {MAX_WIDTH:,}")
        estimate += max(wide, largest)
    refuse_over(estimate, "a formatted string")


def printf_widths(fmt: str) -> Iterator[int]:
    for width, precision, kind in _PRINTF_SPEC.findall(fmt):
        if "*" in (width, precision):
            raise Refused("'*' widths are not supported in % formatting")
        if kind != "%":
            yield max(int(width or 0), int(precision or 0))


def format_widths(fmt: str) -> Iterator[int]:
    for _text, field_name, spec, _conversion in string.Formatter().parse(fmt):
        if field_name is not None:
            if spec and "{" in spec:
                raise Refused("nested fields in a format spec are not supported")
            yield max(map(int, re.findall(r"\d+", spec or "")), default=0)


def check_replace(s: Any, old: Any, new: Any, count: Any = -1) -> None:
    if not (isinstance(s, str) and isinstance(old, str) and isinstance(new, str)):
        return
    found = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    refuse_over(len(s) + found * (len(new) - len(old)), "the replaced string")


def materialized_join(items: Any, separator: Any) -> list[Any]:
    """``separator.join(items)``: the items as a list, once their joined size is known."""
    items = list(items)
    check_result(items)
    sep = len(separator) if isinstance(separator, str) else 0
    refuse_over(text_size(items) + sep * max(len(items) - 1, 0), "the joined string")
    return items


def check_str_method(s: str, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Checks a call of one of the sizing methods of :data:`_STR_METHODS`; returns the
    arguments to call it with (``join``'s items are made a list to be measured)."""
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        refuse_over(args[0], f"str.{name}()")
    elif name == "expandtabs":
        tab = args[0] if args and isinstance(args[0], int) else 8
        refuse_over(len(s) + s.count("\t") * tab, "str.expandtabs()")
    elif name == "replace":
        check_replace(s, *args[:3])
    elif name == "join" and args:
        return (materialized_join(args[0], s), *args[1:])
    return args


def check_binop(operator: str, left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if operator == "**" and right > 0 and abs(left) > 1:
            bits = right * abs(left).bit_length()
        else:
            bits = left.bit_length() + right.bit_length() if operator == "*" else 0
        if bits > MAX_INT_BITS:
            raise Refused(f"a number larger than {MAX_INT_BITS:,} bits")
    elif operator == "%" and isinstance(left, str):
        check_format(left, printf_widths(left), right)
    elif operator in ("*", "+"):
        seq, other = (left, right) if isinstance(left, (str, list, tuple)) else (right, left)
        if not isinstance(seq, (str, list, tuple)):
            return
        if operator == "*":
            size = len(seq) * other if isinstance(other, int) else 0
        else:
            size = len(seq) + (len(other) if isinstance(other, (str, list, tuple)) else 0)
        limit = MAX_VALUE_CHARS if isinstance(seq, str) else MAX_ITEMS
        if size > limit:
            raise Refused(f"a {type(seq).__name__} longer than {limit:,}")


# --- filters --------------------------------------------------------------------------


def names(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: filters whose arguments are checked by :func:`check_filter` (by Jinja's parameter names)
_CHECKED_FILTERS: Final = names("batch center format indent join replace slice sum tojson wordwrap")
#: filters that turn their arguments into text: their size is checked first
_STRINGIFYING: Final = names(
    "capitalize center e escape forceescape format indent join lower pprint replace safe "
    "string striptags title tojson trim truncate upper urlencode wordcount wordwrap"
)


def check_filter(name: str, a: dict[str, Any]) -> None:
    """Checks the bound arguments of a filter of :data:`_CHECKED_FILTERS` before it runs
    (``join``'s items are made a list to be measured)."""
    limits = {"batch": ("linecount", MAX_ITEMS), "slice": ("slices", MAX_ITEMS)}
    limits |= {"center": ("width", MAX_VALUE_CHARS), "tojson": ("indent", 8)}
    if name in limits:
        param, limit = limits[name]
        if isinstance(a[param], int) and a[param] > limit:
            raise Refused(f"{name}(): {param} above {limit:,}")
    elif name == "format":
        fmt = str(a["value"])
        check_format(fmt, printf_widths(fmt), a["args"] or a["kwargs"])
    elif name == "replace":
        check_replace(a["s"], a["old"], a["new"], a["count"] or -1)
    elif name == "join" and not isinstance(a["value"], (str, Undefined)):
        a["value"] = materialized_join(a["value"], a["d"])
    elif name == "sum" and not isinstance(a["start"], (int, float)):
        raise Refused("sum() adds numbers only")
    elif name == "indent" and isinstance(s := a["s"], str):
        width = a["width"]
        prefix = width if isinstance(width, int) else len(str(width))
        refuse_over(len(s) + (s.count("\n") + 1) * prefix, "the indented string")
    elif name == "wordwrap" and isinstance(s := a["s"], str) and isinstance(a["wrapstring"], str):
        refuse_over(len(s) + (len(s) + 1) * len(a["wrapstring"]), "the wrapped string")


def guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(func) if name in _CHECKED_FILTERS else None
    stringifies = name in _STRINGIFYING

    @functools.wraps(func)  # keeps Jinja's pass_context/pass_environment marker
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        if stringifies:
            for arg in (*args, *kwargs.values()):
                check_size(arg)
        if signature is not None:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            check_filter(name, bound.arguments)
            args, kwargs = bound.args, bound.kwargs
        return check_result(func(*args, **kwargs), (*args, *kwargs.values()))

    return guarded
