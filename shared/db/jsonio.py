"""Fast JSON for JSON/JSONB columns (orjson), exact where orjson would not be.

orjson rounds integers beyond 64 bits to floats when parsing and refuses to serialise them,
and it refuses non-string keys; those rare values go through the standard library instead.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_MAYBE_BIG_INT = re.compile(r"\d{20,}")


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode()
    if _MAYBE_BIG_INT.search(text) is None:
        return orjson.loads(text)
    return json.loads(text)
