"""SPEC 5 step 7: the text of the user message an event adds to a chat, and a new chat's title."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

TRUNCATION_NOTE = "[payload cut at {shown} of {total} bytes]"


def rfc3339(when: datetime) -> str:
    """``2026-01-15T12:00:00Z`` (microseconds kept when present)."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def chat_title(automation_name: str, when: datetime) -> str:
    """``[<automation name>] <UTC YYYY-MM-DD HH:MM>``."""
    return f"[{automation_name}] {when.astimezone(UTC):%Y-%m-%d %H:%M}"


def pretty_payload(payload: Any, max_bytes: int) -> str:
    """The payload as indented JSON, cut at ``max_bytes`` UTF-8 bytes (never mid-character)
    with a note saying how much was shown."""
    try:  # orjson: ~20x faster than json.dumps with indent (which loses the C encoder)
        data = orjson.dumps(payload, option=orjson.OPT_INDENT_2)
    except TypeError:  # e.g. an integer beyond 64 bits
        data = json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8")
    if len(data) <= max_bytes:
        return data.decode("utf-8")
    shown = data[:max_bytes].decode("utf-8", errors="ignore")
    note = TRUNCATION_NOTE.format(shown=len(shown.encode("utf-8")), total=len(data))
    return f"{shown}\n… {note}"


def event_message(
    *,
    instructions: str,
    trigger_type: str,
    received_at: datetime,
    labels: Mapping[str, str],
    payload: Any,
    max_payload_bytes: int,
) -> str:
    """The instructions, then the event: trigger type, received time, labels, payload."""
    lines = [instructions.rstrip(), "", "---", "Automation event", f"Trigger: {trigger_type}"]
    lines.append(f"Received: {rfc3339(received_at)}")
    if labels:
        lines.append("Labels:")
        lines.extend(f"  {key}: {value}" for key, value in labels.items())
    else:
        lines.append("Labels: (none)")
    lines += ["Payload:", "```json", pretty_payload(payload, max_payload_bytes), "```"]
    if not instructions.strip():
        lines = lines[2:]  # no instructions: start with the event itself
    return "\n".join(lines)
