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
from typing import Any

import orjson

__all__ = ["MAX_STORED_DEPTH", "NOT_JSON_NOTE", "PreparedPayload", "prepare_payload"]

NOT_JSON_NOTE = "not valid JSON"
#: JSON nested deeper than this is stored wrapped as text (see the module docstring).
MAX_STORED_DEPTH = 512
_NUL = "\x00"
_REPLACEMENT = "\ufffd"
_UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")


_UNPARSED: Any = object()


class PreparedPayload:
    """What goes into ``automation_events.payload`` (``stored``) and, when that was
    truncated, ``pending_payload`` (``pending``).

    A body that is already storable JSON is not parsed and re-serialised for the insert:
    ``column_value`` hands the body's own text to the JSON column (``orjson.Fragment``), and
    ``stored`` parses it only if someone asks.
    """

    __slots__ = ("_raw", "_stored", "is_json", "original_size", "pending")

    def __init__(
        self,
        stored: Any,
        pending: Any,
        original_size: int,
        is_json: bool,
        raw: bytes | None = None,
    ) -> None:
        self._stored = stored
        self._raw = raw
        self.pending = pending
        self.original_size = original_size
        self.is_json = is_json

    @property
    def stored(self) -> Any:
        if self._stored is _UNPARSED:
            assert self._raw is not None
            self._stored = _parse_json(self._raw)[1]
        return self._stored

    @property
    def column_value(self) -> Any:
        """``stored`` as the JSON column's serialiser takes it."""
        if self._stored is _UNPARSED and self._raw is not None:
            return orjson.Fragment(self._raw)
        return self.stored

    @property
    def truncated(self) -> bool:
        return self.pending is not None

    def __repr__(self) -> str:
        return (
            f"PreparedPayload(original_size={self.original_size}, is_json={self.is_json}, "
            f"truncated={self.truncated})"
        )


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
    if b"\\u" not in body:  # one scan settles the usual body, which has no escapes at all
        return False
    return b"\\u0000" in body or b"\\ud" in body or b"\\uD" in body


def _may_nest_too_deep(body: bytes) -> bool:
    """False when the body has too few brackets to nest deeper than MAX_STORED_DEPTH."""
    return body.count(b"[") + body.count(b"{") > MAX_STORED_DEPTH


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


def _storable_as_is(body: bytes) -> bool:
    """True when the body's own text can go into the jsonb column unchanged: strict JSON
    (orjson: valid UTF-8, no NaN or Infinity, no number that overflows a double, no lone
    surrogate), no ``\\u0000`` or surrogate escapes, and too few brackets to nest deeper
    than :data:`MAX_STORED_DEPTH`. orjson's value is only a check here; integers beyond 64
    bits stay exact because the database parses the text itself."""
    if _may_hold_unstorable_chars(body) or _may_nest_too_deep(body):
        return False
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return True


def prepare_payload(body: bytes, stored_max_bytes: int) -> PreparedPayload:
    size = len(body)
    if size <= stored_max_bytes and _storable_as_is(body):
        return PreparedPayload(_UNPARSED, None, size, True, raw=body)
    is_json, value = _parse_json(body)
    if is_json and _may_nest_too_deep(body) and _too_deep(value):
        is_json, value = False, None
    if is_json:
        if _may_hold_unstorable_chars(body):
            value = _clean(value)
    else:
        text = body.decode("utf-8", errors="replace").replace(_NUL, _REPLACEMENT)
        value = {"_raw_body": text, "_content_note": NOT_JSON_NOTE}
    if size > stored_max_bytes:
        return PreparedPayload(
            stored={"_truncated": True, "_original_size": size},
            pending=value,
            original_size=size,
            is_json=is_json,
        )
    return PreparedPayload(stored=value, pending=None, original_size=size, is_json=is_json)
