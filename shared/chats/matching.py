"""SPEC 5 step 4: find the chat an event continues.

A chat matches when its labels **equal** the event's resolved labels (same keys, same
values; a chat with more or fewer labels is not a match) and it lies within the
automation's chat scope: ``automation`` (only chats this automation created) or
``organization`` (any chat of the same owner and organization). Containment alone merged
unrelated conversations: an ``issues`` event labelled only ``repo`` continued a pull
request's chat labelled ``repo`` and ``pr``, and two automations sharing a ``repo`` label
fed each other's chats.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, String, func, literal, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shared.models.tables import chats

#: label keys that can be written inside a quoted SQLite JSON path without escaping.
_PLAIN_KEY = re.compile(r'^[^"\\]*$')
_SQLITE_SCAN_BATCH = 200


def _open_root_chats_of(
    c: Any, owner_id: Any, organization_id: Any, automation_id: Any
) -> tuple[Any, ...]:
    """The chats a match may return: non-archived root chats of this owner and organization,
    and of this automation unless ``automation_id`` is None (organization scope). ``c``: the
    columns of ``chats`` or of a subquery over it."""
    conditions = (
        c.owner_id == owner_id,
        c.organization_id == organization_id,
        c.archived.is_(False),
        c.parent_chat_id.is_(None),
    )
    if automation_id is None:
        return conditions
    return (*conditions, c.automation_id == automation_id)


def _base_query(owner_id: Any, organization_id: Any, automation_id: Any) -> Select[Any]:
    return (
        select(chats.c.id, chats.c.labels)
        .where(*_open_root_chats_of(chats.c, owner_id, organization_id, automation_id))
        # updated_at alone (no id tie-break): the (owner_id, organization_id, updated_at)
        # index then yields rows newest first and the scan stops at the first match.
        .order_by(chats.c.updated_at.desc())
    )


def matching_chat_query(
    owner_id: Any, organization_id: Any, labels: Any, automation_id: Any = None
) -> Select[Any]:
    """PostgreSQL: ``SELECT id`` of the chat :func:`find_matching_chat` returns, to embed as a
    subquery. Arguments are values or bind parameters; ``automation_id`` None means the
    organization scope.

    Shaped so that the GIN index on ``labels`` (``@>``) finds the candidates: they come from
    a subquery that only tests containment, fenced with ``OFFSET 0`` so PostgreSQL plans it
    on its own, and owner, organization, archived and ordering are applied to its few rows.
    Left to itself, with ``ORDER BY updated_at DESC LIMIT 1`` next to ``owner_id = …``,
    PostgreSQL walks the owner's chats newest first betting on an early match; automations
    usually share one owner, so a label set seen for the first time (every event that
    creates a chat) scanned all of that owner's chats.
    """
    wanted = dict(labels) if isinstance(labels, Mapping) else labels
    candidates = (
        select(
            chats.c.id,
            chats.c.updated_at,
            chats.c.owner_id,
            chats.c.organization_id,
            chats.c.automation_id,
            chats.c.archived,
            chats.c.parent_chat_id,
        )
        .where(
            type_coerce(chats.c.labels, JSONB).contains(wanted),
            type_coerce(chats.c.labels, JSONB) == type_coerce(wanted, JSONB),
        )
        .offset(0)
        .subquery("candidates")
    )
    return (
        select(candidates.c.id)
        .where(*_open_root_chats_of(candidates.c, owner_id, organization_id, automation_id))
        .order_by(candidates.c.updated_at.desc())
        .limit(1)
    )


def find_matching_chat(
    db: Session | Connection,
    owner_id: uuid.UUID,
    organization_id: uuid.UUID,
    labels: Mapping[str, str],
    automation_id: uuid.UUID | None = None,
) -> uuid.UUID | None:
    """The most recently updated non-archived root chat of this owner and organization (and
    of ``automation_id``, unless None: organization scope) whose labels equal ``labels``;
    ``None`` when ``labels`` is empty or nothing fits.

    On PostgreSQL the GIN-indexed ``labels @> :labels`` finds the candidates and
    ``labels = :labels`` keeps the equal ones; on SQLite candidates are narrowed with
    ``json_extract`` and confirmed in Python.
    """
    if not labels:
        return None
    conn = db.connection() if isinstance(db, Session) else db
    if conn.dialect.name == "postgresql":
        return conn.execute(  # type: ignore[no-any-return]
            matching_chat_query(owner_id, organization_id, labels, automation_id)
        ).scalar_one_or_none()

    conditions = [
        func.json_extract(chats.c.labels, literal(f'$."{key}"', String)) == value
        for key, value in labels.items()
        if _PLAIN_KEY.match(key)
    ]
    stmt = _base_query(owner_id, organization_id, automation_id).where(*conditions)
    result = conn.execute(stmt.execution_options(yield_per=_SQLITE_SCAN_BATCH))
    try:
        for row in result:
            if labels_equal(row.labels, labels):
                return row.id  # type: ignore[no-any-return]
    finally:
        result.close()
    return None


def labels_equal(chat_labels: Any, wanted: Mapping[str, str]) -> bool:
    """True when ``chat_labels`` (a JSON object) has exactly the ``wanted`` keys, each with
    that (string) value."""
    if not isinstance(chat_labels, dict) or len(chat_labels) != len(wanted):
        return False
    return all(
        key in chat_labels and chat_labels[key] == value and isinstance(chat_labels[key], str)
        for key, value in wanted.items()
    )
