"""SPEC 5 step 7: a trigger's ``message_template``, a Jinja2 template rendered in a sandbox.

Variables: ``payload`` (the parsed body), ``headers`` (the stored request headers; names are
lower-case, ``headers["X-GitHub-Event"]`` finds them too), ``event_type`` (``None`` when the
sender named none), ``labels`` (the resolved labels) and ``gjson(path)`` (the value at a gjson
path of the payload, ``None`` when missing; the path syntax of filters and labels).

* **Missing keys render empty** (:class:`jinja2.ChainableUndefined`): payloads differ between
  a sender's actions, so ``{{ payload.pull_request.user.login }}`` on an ``issues`` event is
  ``""``, not a failed event (``|default("n/a")`` gives a fallback). Syntax errors and unknown
  filters are refused when the template is saved (:func:`validate_template`).
* **Values print like labels** (gjson's ``string()``): ``null`` as ``""``, ``true``/``false``,
  objects and arrays as compact JSON; ``~`` and ``|string`` too; ``|tojson`` is plain JSON.
  Nothing is HTML-escaped (a chat message); ``trim_blocks``/``lstrip_blocks`` keep a block tag
  on its own line from leaving a blank line.
* **Sandbox** (``ImmutableSandboxedEnvironment``): no ``_``-attributes, no mutation of the
  payload, lists or dicts; an unsafe attribute *fails* the render (the stock sandbox renders
  it empty); methods of builtin values are allow-listed; no ``include``/``import``/``extends``,
  ``lipsum``, ``urlize`` or ``xmlattr``.
* **Bounds**, as one worker renders everyone's templates: the template text, the output, the
  steps (loop iterations, calls, filters) and wall-clock time of a render, all the text it
  produces (also into ``{% set %}`` blocks and macros), and every operation that multiplies
  sizes (``*``, ``**``, ``+``, ``%``, ``format``, ``replace``, ``join``, ``center``,
  ``indent``, ...), checked *before* it allocates. ``range()`` stops at the sandbox's
  ``MAX_RANGE`` (100,000 items).
"""

from __future__ import annotations

import functools
import json
import time
import traceback
import types
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any, Final, cast

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.runtime import Context, LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

from shared.errors import Invalid, describe_error
from shared.events.template_limits import (
    BUDGET,
    MAX_EMITTED_CHARS,
    MAX_RENDER_SECONDS,
    Budget,
    Refused,
    check_binop,
    check_format,
    check_result,
    check_size,
    check_str_method,
    format_widths,
    guard_filter,
    names,
    refuse_over,
    tick,
)
from shared.lib import gjson
from shared.lib.gjson import PathError

__all__ = [
    "MAX_OUTPUT_BYTES",
    "MAX_TEMPLATE_CHARS",
    "TemplateRenderError",
    "render_template",
    "validate_template",
]

FIELD: Final = "message_template"
MAX_TEMPLATE_CHARS: Final = 20_000
MAX_OUTPUT_BYTES: Final = 256 * 1024
MAX_REASON_CHARS: Final = 500


class TemplateRenderError(Exception):
    """A template failed to render; ``str(exc)`` is a short reason (with the template line
    when known), e.g. ``line 2: the output exceeds 262,144 bytes``."""


# --- text, and the functions the compiled template calls -------------------------------


def _to_text(value: Any) -> str:
    """How a value prints (module docstring): gjson's ``string()`` for JSON values."""
    if isinstance(value, str):
        return value
    if isinstance(value, Undefined):
        return ""
    if value is None or isinstance(value, (bool, int, float, dict, list, tuple)):
        check_size(value)
        try:
            return gjson.Result(value).string()
        except (TypeError, PathError):  # not JSON (e.g. a macro inside a list)
            return str(value)
    return str(value)


def _emit(value: Any) -> str:
    """Every ``{{ ... }}`` and piece of template text goes through here (see :class:`_Guard`),
    so all the text a render produces is counted, wherever it goes."""
    text = _to_text(value)
    budget = BUDGET.get()
    if budget is not None:
        budget.emitted += len(text)
        if budget.emitted > MAX_EMITTED_CHARS:
            raise Refused(f"the template produced more than {MAX_EMITTED_CHARS:,} characters")
    return text


def _concat(*parts: Any) -> str:
    """``a ~ b``."""
    texts = [_to_text(part) for part in parts]
    refuse_over(sum(map(len, texts)), "a string joined with '~'")
    return "".join(texts)


def _loop_items(iterable: Any) -> Iterator[Any]:
    """A ``{% for %}`` loop's items, each one a step of the budget."""
    for item in iterable:
        tick()
        yield item


_INTERNAL: Final = (_emit, _concat, _loop_items)


class _Guard(NodeTransformer):
    """Routes loops, ``~`` and all output of a parsed template through the functions above."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _call_internal("_loop_items", [node.iter], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _call_internal("_concat", list(node.nodes), node.lineno)

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_call_internal("_emit", [child], child.lineno) for child in node.nodes]
        return node


def _call_internal(name: str, args: list[Any], lineno: int) -> nodes.Call:
    target = nodes.ImportedName(f"{__name__}.{name}", lineno=lineno)
    return nodes.Call(target, args, [], None, None, lineno=lineno)


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=False, default=_to_text)


# --- the environment ------------------------------------------------------------------

_STR_METHODS: Final = names(
    "capitalize casefold center count endswith expandtabs find format format_map index "
    "isalnum isalpha isascii isdecimal isdigit isidentifier islower isnumeric isprintable "
    "isspace istitle isupper join ljust lower lstrip partition removeprefix removesuffix "
    "replace rfind rindex rjust rpartition rsplit rstrip split splitlines startswith strip "
    "swapcase title upper zfill"
)
#: the attributes templates may use on builtin values (others, e.g. ``int.to_bytes``, can
#: allocate without bound or are not needed)
_ALLOWED_ATTRIBUTES: Final[tuple[tuple[type | tuple[type, ...], frozenset[str]], ...]] = (
    (str, _STR_METHODS),
    (dict, names("get items keys values")),
    ((list, tuple), names("count index")),
    ((int, float), names("real imag is_integer")),
)


class _Namespace(Namespace):
    """``namespace()``, printing without its (possibly large) attributes."""

    def __repr__(self) -> str:
        return "<namespace>"


class _Headers(dict[str, str]):
    """Header names are stored lower-case; a lookup in another case finds them too."""

    def __missing__(self, key: object) -> str:
        if isinstance(key, str) and key.lower() != key:
            return self[key.lower()]
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[key]
        except KeyError:
            return default


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        for kind, allowed in _ALLOWED_ATTRIBUTES:
            if isinstance(obj, kind):
                return attr in allowed
        return True

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``payload.items`` is the payload's ``items`` key when it has one (JSON data
        first, then methods: the stock order is the other way round)."""
        if isinstance(obj, Mapping) and not isinstance(obj, Context):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__
        is_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            values = args[0] if is_map and args else (*args, *kwargs.values())
            check_format(fmt, format_widths(fmt), values)
            return check_result(wrapped(*args, **kwargs), (fmt, *args, *kwargs.values()))

        return checked

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if any(obj is f for f in _INTERNAL):  # no step; drops Jinja's _loop_vars
            return context.call(obj, *args, **kwargs)
        tick()
        if isinstance(obj, LoopContext) and args:  # a recursive loop's loop(children)
            args = (_loop_items(args[0]), *args[1:])
        elif isinstance(obj, types.BuiltinMethodType) and isinstance(obj.__self__, str):
            args = check_str_method(obj.__self__, obj.__name__, args)
        result = super().call(context, obj, *args, **kwargs)
        if isinstance(obj, _Gjson):  # payload data, as large as it came
            return result
        return check_result(result, (getattr(obj, "__self__", None), *args, *kwargs.values()))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        return check_result(super().call_binop(context, operator, left, right), (left, right))


def _environment() -> _Sandbox:
    env = _Sandbox(
        autoescape=False, undefined=ChainableUndefined, trim_blocks=True, lstrip_blocks=True
    )
    del env.globals["lipsum"]
    env.globals["namespace"] = _Namespace
    for name in ("urlize", "xmlattr"):
        del env.filters[name]
    env.filters["string"] = _to_text
    env.filters["tojson"] = _tojson
    for name, func in list(env.filters.items()):
        env.filters[name] = guard_filter(name, func)
    return env


_ENV: Final = _environment()
_UNSUPPORTED: Final = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "import",
}


def _check_tree(tree: nodes.Template) -> None:
    """Refuses what a message template cannot use, and gjson paths written as literals."""
    for node in tree.find_all(tuple(_UNSUPPORTED)):
        raise TemplateSyntaxError(f"'{_UNSUPPORTED[type(node)]}' is not supported", node.lineno)
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name == "gjson" and call.args:
            path = call.args[0]
            if isinstance(path, nodes.Const) and isinstance(path.value, str):
                try:
                    gjson.validate(path.value)
                except PathError as exc:
                    raise TemplateSyntaxError(
                        f"gjson path {path.value!r}: {exc}", call.lineno
                    ) from None


@functools.lru_cache(maxsize=256)
def _compile(text: str) -> Template:
    tree = _ENV.parse(text)
    _check_tree(tree)
    _Guard().visit(tree)
    tree.set_environment(_ENV)
    return _ENV.from_string(tree)


# --- the API --------------------------------------------------------------------------


def _invalid(message: str) -> Invalid:
    return Invalid(f"{FIELD}: {message}", code="invalid_template", field=FIELD)


def validate_template(text: str) -> None:
    """Raise :class:`shared.errors.Invalid` (``invalid_template``) unless ``text`` compiles:
    ``message_template: line 3: unexpected '}'``."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise _invalid(f"longer than {MAX_TEMPLATE_CHARS:,} characters ({len(text):,})")
    try:
        _compile(text)
    except Exception as exc:  # syntax, unknown filters, and anything else the compiler refuses
        raise _invalid(_reason(exc)) from None


def _template_line(exc: BaseException) -> int | None:
    """The template line the error happened on (Jinja rewrites tracebacks to name it)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == "<template>":
            return frame.lineno
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, Refused):
        what = str(exc)
    elif isinstance(exc, SecurityError):
        what = f"not allowed: {exc}"
    elif isinstance(exc, TemplateError):
        what = exc.message or type(exc).__name__
    elif isinstance(exc, SyntaxError):  # Python's compiler on the generated code
        what = f"cannot be compiled: {exc.msg}"
    elif isinstance(exc, RecursionError):
        what = "nested too deeply (recursion)"
    elif isinstance(exc, MemoryError):
        what = "out of memory"
    else:
        what = describe_error(exc)
    line = exc.lineno if isinstance(exc, TemplateSyntaxError) else _template_line(exc)
    return (f"line {line}: {what}" if line else what)[:MAX_REASON_CHARS]


class _Gjson:
    """``gjson(path)``: the value at ``path`` of the payload, ``None`` when missing."""

    __slots__ = ("_document",)

    def __init__(self, payload: Any) -> None:
        # gjson.get reads a str as JSON text: a payload that is a JSON string goes as its text
        self._document = json.dumps(payload) if isinstance(payload, str) else payload

    def __call__(self, path: str) -> Any:
        if not isinstance(path, str):
            raise Refused("gjson() takes a path string")
        try:
            return gjson.get(self._document, path).value
        except PathError as exc:
            raise Refused(f"gjson({path!r}): {exc}") from None


def render_template(
    text: str,
    *,
    payload: Any,
    headers: Mapping[str, str],
    event_type: str | None,
    labels: Mapping[str, str],
) -> str:
    """The rendered template; any failure raises :class:`TemplateRenderError`."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateRenderError(f"the template is longer than {MAX_TEMPLATE_CHARS:,} characters")
    try:
        template = _compile(text)
    except Exception as exc:
        raise TemplateRenderError(f"invalid template: {_reason(exc)}") from None
    variables = {
        "payload": payload,
        "headers": _Headers({str(k).lower(): v for k, v in headers.items()}),
        "event_type": event_type,
        "labels": dict(labels),
        "gjson": _Gjson(payload),
    }
    token = BUDGET.set(Budget(deadline=time.monotonic() + MAX_RENDER_SECONDS))
    stream = cast(Generator[str, None, None], template.generate(variables))
    chunks: list[str] = []
    size = 0
    try:
        for chunk in stream:
            size += len(chunk.encode("utf-8", "surrogatepass"))
            if size > MAX_OUTPUT_BYTES:
                raise TemplateRenderError(f"the output exceeds {MAX_OUTPUT_BYTES:,} bytes")
            chunks.append(chunk)
    except TemplateRenderError:
        raise
    except Exception as exc:
        raise TemplateRenderError(_reason(exc)) from exc
    finally:
        stream.close()
        BUDGET.reset(token)
    return "".join(chunks)
