"""Turning a raw webhook body into what is stored (SPEC 4.3, 4.4).

* Valid JSON (any top-level value, also scalars and arrays) is stored as parsed.
* Anything else is wrapped: ``{"_raw_body": "<text>", "_content_note": "not valid JSON"}``,
  invalid UTF-8 decoded with replacement characters.
* The stored copy is capped: a body over ``stored_max_bytes`` is stored as
  ``{"_truncated": true, "_original_size": N}`` and the whole value goes to
  ``pending_payload`` so filters and labels still see all of it.
* NUL characters (which PostgreSQL's jsonb cannot hold) become U+FFFD.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["NOT_JSON_NOTE", "PreparedPayload", "prepare_payload"]

NOT_JSON_NOTE = "not valid JSON"
_NUL = "\x00"
_REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class PreparedPayload:
    #: what goes into ``automation_events.payload``
    stored: Any
    #: the whole value when ``stored`` was truncated, else None
    pending: Any
    original_size: int
    is_json: bool

    @property
    def truncated(self) -> bool:
        return self.pending is not None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(body: bytes) -> tuple[bool, Any]:
    try:
        return True, orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses integers beyond 64 bits, which are still valid JSON.
    try:
        text = body.decode("utf-8")
        return True, json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False, None


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(_NUL, _REPLACEMENT)
    if isinstance(value, list):
        return [_strip_nul(v) for v in value]
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    return value


def prepare_payload(body: bytes, stored_max_bytes: int) -> PreparedPayload:
    is_json, value = _parse_json(body)
    if is_json:
        if b"\\u0000" in body:
            value = _strip_nul(value)
    else:
        text = body.decode("utf-8", errors="replace").replace(_NUL, _REPLACEMENT)
        value = {"_raw_body": text, "_content_note": NOT_JSON_NOTE}
    size = len(body)
    if size > stored_max_bytes:
        return PreparedPayload(
            stored={"_truncated": True, "_original_size": size},
            pending=value,
            original_size=size,
            is_json=is_json,
        )
    return PreparedPayload(stored=value, pending=None, original_size=size, is_json=is_json)
