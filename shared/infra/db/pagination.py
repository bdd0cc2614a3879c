"""Opaque keyset cursors: ``base64url(json({"k": kind, "v": [sort value, id]}))``.

Lists are ordered by a timestamp and the id as a tie-breaker, so a page boundary is exact even
when many rows share a timestamp (a frozen clock, a bulk import).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from shared.errors import Invalid

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Page", "decode_cursor", "encode_cursor", "paginate"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(kind: str, when: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps({"k": kind, "v": [when.isoformat(), str(row_id)]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor encodes; ``invalid_cursor`` (400) for anything this module did
    not write: a cursor is client input, however opaque (forged JSON, deep nesting, a time
    that overflows in UTC, a non-string id)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(data, dict) or data.get("k") != kind:
            raise ValueError("wrong kind")
        when_s, id_s = data["v"]
        if not isinstance(when_s, str) or not isinstance(id_s, str):
            raise TypeError("not strings")
        when = datetime.fromisoformat(when_s)
        if when.tzinfo is None:
            raise ValueError("naive")
        # converted here, where an extreme offset overflows, rather than when it is bound
        return when.astimezone(UTC), uuid.UUID(id_s)
    except (
        ValueError,
        KeyError,
        TypeError,
        OverflowError,
        RecursionError,
        binascii.Error,
        UnicodeError,
    ):
        raise Invalid(
            "cursor: not a cursor returned by this list; start again without it",
            code="invalid_cursor",
            field="cursor",
        ) from None


def check_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit: must be between 1 and {MAX_LIMIT}", field="limit")
    return limit


def paginate(
    session: Session,
    stmt: Select[Any],
    *,
    kind: str,
    sort_col: InstrumentedAttribute[Any],
    id_col: InstrumentedAttribute[Any],
    limit: int | None,
    cursor: str | None,
    descending: bool = True,
) -> Page[Any]:
    """Run ``stmt`` (selecting one entity) as a keyset page."""
    size = check_limit(limit)
    if cursor:
        when, row_id = decode_cursor(kind, cursor)
        after: ColumnElement[bool]
        if descending:
            after = or_(sort_col < when, and_(sort_col == when, id_col < row_id))
        else:
            after = or_(sort_col > when, and_(sort_col == when, id_col > row_id))
        stmt = stmt.where(after)
    order = (sort_col.desc(), id_col.desc()) if descending else (sort_col.asc(), id_col.asc())
    rows: Sequence[Any] = session.scalars(stmt.order_by(*order).limit(size + 1)).all()
    items = list(rows[:size])
    next_cursor = None
    if len(rows) > size:
        last = items[-1]
        next_cursor = encode_cursor(kind, getattr(last, sort_col.key), getattr(last, id_col.key))
    return Page(items=items, next_cursor=next_cursor)
