"""Turning a raw webhook body into what is stored (SPEC 4.3, 4.4).

* Valid JSON (any top-level value, also scalars and arrays) is stored as parsed.
* Anything else is wrapped: ``{"_raw_body": "<text>", "_content_note": "not valid JSON"}``,
  invalid UTF-8 decoded with replacement characters.
* The stored copy is capped: a body over ``stored_max_bytes`` is stored as
  ``{"_truncated": true, "_original_size": N}`` and the whole value goes to
  ``pending_payload`` so filters and labels still see all of it.
* NUL characters and lone UTF-16 surrogates (which PostgreSQL's jsonb cannot hold) become
  U+FFFD.
* JSON that cannot be stored as jsonb is wrapped like text that is not JSON: nesting deeper
  than :data:`MAX_STORED_DEPTH` (the database driver's encoder and the pipeline's serialisers
  recurse once per level) and numbers that overflow a double (``1e400``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_STORED_DEPTH", "NOT_JSON_NOTE", "PreparedPayload", "prepare_payload"]

NOT_JSON_NOTE = "not valid JSON"
#: JSON nested deeper than this is stored wrapped as text (see the module docstring).
MAX_STORED_DEPTH = 512
_NUL = "\x00"
_REPLACEMENT = "\ufffd"
_UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")


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


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:32]} overflows a double")
    return value


def _parse_json(body: bytes) -> tuple[bool, Any]:
    """``(is_json, value)``.

    The standard library parser, not orjson: orjson rounds integers beyond 64 bits to floats
    and refuses lone surrogate escapes (both valid JSON), and ruling those out up front costs
    more than orjson saves on a typical 5 KB body.
    """
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        return True, value
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False, None


def _may_hold_unstorable_chars(body: bytes) -> bool:
    """NUL and lone surrogates can only reach a parsed value through ``\\u`` escapes (raw
    control characters are not valid JSON, raw surrogates not valid UTF-8)."""
    return b"\\u0000" in body or b"\\ud" in body or b"\\uD" in body


def _too_deep(value: Any) -> bool:
    """True when ``value`` nests deeper than :data:`MAX_STORED_DEPTH` (iterative)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            v = v.values()
        elif not isinstance(v, list):
            continue
        if depth >= MAX_STORED_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in v if isinstance(child, (dict, list)))
    return False


def _clean_str(s: str) -> str:
    return _UNSTORABLE_CHARS.sub(_REPLACEMENT, s)


def _clean(value: Any) -> Any:
    """``value`` with NUL and lone surrogates replaced; nesting is at most MAX_STORED_DEPTH."""
    if isinstance(value, str):
        return _clean_str(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean_str(k): _clean(v) for k, v in value.items()}
    return value


def prepare_payload(body: bytes, stored_max_bytes: int) -> PreparedPayload:
    is_json, value = _parse_json(body)
    if is_json and body.count(b"[") + body.count(b"{") > MAX_STORED_DEPTH and _too_deep(value):
        is_json, value = False, None
    if is_json:
        if _may_hold_unstorable_chars(body):
            value = _clean(value)
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
