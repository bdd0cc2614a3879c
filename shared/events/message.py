"""SPEC 5 step 7: the text of the user message an event adds to a chat, and a new chat's title.

The message is the automation's instructions, then the event: trigger type, the sender's event
type when known, received time, resolved labels, and then either the trigger's rendered
``message_template`` (:mod:`shared.events.templates`) or the payload as pretty JSON.

A payload above ``max_payload_bytes`` is *reduced*, never cut, so the block stays valid JSON
for the agent to read. Round by round (:data:`LEVELS`), each tighter than the last, until it
fits: ``*_url`` fields at any depth go first (mostly links back to the API), then long strings
are shortened (``"…[+1234 chars]"`` appended), long arrays keep their first items and a last
item ``"… 37 more items"``, and objects and arrays nested deeper than a limit become a count
(``"{… 18 fields}"``, ``"[… 3 items]"``). A note line after the block says what was left out.
If even the last round does not fit (a very wide object), only the top-level scalar fields
that fit are kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from shared.events.templates import render_template

__all__ = ["LEVELS", "ReducedPayload", "chat_title", "event_message", "reduce_payload", "rfc3339"]

#: (longest string, most array items, deepest nesting) kept by each round, which all drop
#: ``*_url`` fields; ``None``: no limit. The top level is depth 0.
LEVELS: Final[tuple[tuple[int | None, int | None, int | None], ...]] = (
    (None, None, None),
    (1024, None, None),
    (1024, 20, None),
    (256, 10, None),
    (256, 10, 4),
    (256, 10, 3),
    (128, 5, 2),
    (64, 3, 1),
)
#: a string is shortened only when this much longer than the limit (the marker's size)
_STRING_SLACK: Final = 16


def rfc3339(when: datetime) -> str:
    """``2026-01-15T12:00:00Z`` (microseconds kept when present)."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def chat_title(automation_name: str, when: datetime) -> str:
    """``[<automation name>] <UTC YYYY-MM-DD HH:MM>``."""
    return f"[{automation_name}] {when.astimezone(UTC):%Y-%m-%d %H:%M}"


@dataclass(frozen=True)
class ReducedPayload:
    """The payload's JSON text (always valid JSON) and, when something was left out, the
    note saying what (``None`` when the payload is whole)."""

    text: str
    note: str | None = None


@dataclass
class _Cuts:
    urls: int = 0
    strings: int = 0
    arrays: int = 0
    nested: int = 0

    def __bool__(self) -> bool:
        return bool(self.urls or self.strings or self.arrays or self.nested)


def _dumps(value: Any) -> bytes:
    """Indented JSON; orjson (~20x faster than ``json.dumps(indent=...)``), which refuses
    integers beyond 64 bits and nesting beyond 254 levels: those go through :mod:`json`."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except TypeError:
        return json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8")


def _shorten(value: str, limit: int) -> str:
    return f"{value[:limit]}…[+{len(value) - limit} chars]"


def _reduce(value: Any, level: tuple[int | None, int | None, int | None], cuts: _Cuts) -> Any:
    """A copy of ``value`` reduced to the limits of one of :data:`LEVELS`; ``cuts`` counts
    what was left out."""
    max_string, max_items, max_depth = level

    def walk(value: Any, depth: int) -> Any:
        if isinstance(value, dict):
            if max_depth is not None and depth >= max_depth and value:
                cuts.nested += 1
                return f"{{… {_plural(len(value), 'field')}}}"
            out = {}
            for key, item in value.items():
                if isinstance(key, str) and key.endswith("_url"):
                    cuts.urls += 1
                else:
                    out[key] = walk(item, depth + 1)
            return out
        if isinstance(value, list):
            if max_depth is not None and depth >= max_depth and value:
                cuts.nested += 1
                return f"[… {_plural(len(value), 'item')}]"
            if max_items is not None and len(value) > max_items + 1:
                cuts.arrays += 1
                kept = [walk(item, depth + 1) for item in value[:max_items]]
                return [*kept, f"… {len(value) - max_items} more items"]
            return [walk(item, depth + 1) for item in value]
        if (
            isinstance(value, str)
            and max_string is not None
            and len(value) > max_string + _STRING_SLACK
        ):
            cuts.strings += 1
            return _shorten(value, max_string)
        return value

    return walk(value, 0)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _note(total: int, shown: int, cuts: _Cuts) -> str:
    parts = []
    if cuts.urls:
        parts.append(f"{_plural(cuts.urls, '*_url field')} dropped")
    if cuts.strings:
        parts.append(f"{_plural(cuts.strings, 'string')} shortened")
    if cuts.arrays:
        parts.append(f"{_plural(cuts.arrays, 'array')} cut")
    if cuts.nested:
        nested = "object or array" if cuts.nested == 1 else "objects or arrays"
        parts.append(f"{cuts.nested} nested {nested} summarized")
    return f"[payload reduced from {total:,} to {shown:,} bytes: {', '.join(parts)}]"


def _top_level_scalars(payload: Any, max_bytes: int) -> tuple[Any, int]:
    """The last resort: the top-level scalar fields (strings shortened) that fit, in order;
    returns them and how many top-level fields (or items) were left out."""
    max_string = 32
    if isinstance(payload, list):
        return [f"… {len(payload)} items left out"], len(payload)
    if not isinstance(payload, dict):
        if isinstance(payload, str) and len(payload) > max_string + _STRING_SLACK:
            return _shorten(payload, max_string), 0
        return payload, 0
    kept: dict[str, Any] = {}
    size = 4  # "{\n" and "\n}"; each entry adds its own bytes and ",\n"
    for key, value in payload.items():
        if isinstance(value, (dict, list)):
            continue
        if isinstance(value, str) and len(value) > max_string + _STRING_SLACK:
            value = _shorten(value, max_string)
        entry = len(_dumps({key: value})) - 4
        if size + entry + 2 <= max_bytes:
            kept[key] = value
            size += entry + 2
    return kept, len(payload) - len(kept)


def reduce_payload(payload: Any, max_bytes: int) -> ReducedPayload:
    """The payload as indented JSON of at most ``max_bytes`` UTF-8 bytes, reduced as the
    module docstring says (the result is valid JSON even when ``max_bytes`` is tiny)."""
    data = _dumps(payload)
    total = len(data)
    if total <= max_bytes:
        return ReducedPayload(data.decode("utf-8"))
    for level in LEVELS:
        cuts = _Cuts()
        reduced = _reduce(payload, level, cuts)
        if not cuts:
            continue  # nothing to leave out at this level: the same size as the payload
        data = _dumps(reduced)
        if len(data) <= max_bytes:
            return ReducedPayload(data.decode("utf-8"), _note(total, len(data), cuts))
    kept, left_out = _top_level_scalars(payload, max_bytes)
    data = _dumps(kept)
    what = "only top-level scalar fields kept" if isinstance(payload, dict) else "cut"
    note = f"[payload reduced from {total:,} to {len(data):,} bytes: {what}"
    note += f", {left_out:,} left out]" if left_out else "]"
    return ReducedPayload(data.decode("utf-8"), note)


def event_message(
    *,
    instructions: str,
    trigger_type: str,
    received_at: datetime,
    labels: Mapping[str, str],
    payload: Any,
    max_payload_bytes: int,
    event_type: str | None = None,
    headers: Mapping[str, str] | None = None,
    template: str | None = None,
) -> str:
    """The instructions, then the event: trigger type, event type, received time, labels,
    and the rendered ``template`` or else the (reduced) payload.

    Raises :class:`shared.events.templates.TemplateRenderError` when the template fails.
    """
    lines = [instructions.rstrip(), "", "---", "Automation event", f"Trigger: {trigger_type}"]
    if event_type:
        lines.append(f"Event type: {event_type}")
    lines.append(f"Received: {rfc3339(received_at)}")
    if labels:
        lines.append("Labels:")
        lines.extend(f"  {key}: {value}" for key, value in labels.items())
    else:
        lines.append("Labels: (none)")
    if template:
        rendered = render_template(
            template,
            payload=payload,
            headers=headers or {},
            event_type=event_type,
            labels=labels,
        ).strip("\n")
        if rendered.strip():
            lines += ["", rendered.rstrip()]
    else:
        reduced = reduce_payload(payload, max_payload_bytes)
        lines += ["Payload:", "```json", reduced.text, "```"]
        if reduced.note:
            lines.append(reduced.note)
    if not instructions.strip():
        lines = lines[2:]  # no instructions: start with the event itself
    return "\n".join(lines)
