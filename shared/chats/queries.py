"""Chats as seen through the management API: list with filters, one chat with its messages,
the events that created or continued a chat."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import String, func, literal, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from shared.accounts import authz
from shared.accounts.authz import Principal
from shared.automations.service import require
from shared.errors import Invalid, NotFound
from shared.infra.db.pagination import Page, paginate
from shared.models import AutomationEvent, Chat, ChatMessage
from shared.models.enums import ChatStatus

__all__ = ["chat_events", "get_chat", "list_chats", "parse_label_filters", "title_pattern"]

MAX_MESSAGES = 1000


def parse_label_filters(raw: Sequence[str]) -> dict[str, str]:
    """``["env:prod", "repo:a/b"]`` → ``{"env": "prod", "repo": "a/b"}`` ; split at the 1st ':'."""
    out: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise Invalid(f"label: expected key:value, got {item!r}", field="label")
        out[key] = value
    return out


def list_chats(
    session: Session,
    principal: Principal,
    *,
    automation_id: uuid.UUID | None = None,
    labels: dict[str, str] | None = None,
    archived: bool | None = None,
    statuses: Sequence[ChatStatus] | None = None,
    pinned: bool | None = None,
    q: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[Chat]:
    """Visible chats, most recently updated first. ``pinned``: ``pin_order`` > 0 or = 0;
    ``q``: the title contains it, case-insensitively."""
    require(principal, authz.CHAT_READ)
    stmt = select(Chat).where(authz.chat_visibility(principal))
    if automation_id is not None:
        stmt = stmt.where(Chat.automation_id == automation_id)
    if archived is not None:
        stmt = stmt.where(Chat.archived.is_(archived))
    if statuses:
        stmt = stmt.where(Chat.status.in_(list(statuses)))
    if pinned is not None:
        stmt = stmt.where(Chat.pin_order > 0 if pinned else Chat.pin_order == 0)
    if q:
        stmt = stmt.where(Chat.title.ilike(title_pattern(q), escape="\\"))
    if labels:
        if session.get_bind().dialect.name == "postgresql":
            # JSONB @> (GIN index)
            stmt = stmt.where(type_coerce(Chat.labels, JSONB).contains(labels))
        else:
            for key, value in labels.items():
                path = '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
                stmt = stmt.where(func.json_extract(Chat.labels, literal(path, String)) == value)
    return paginate(
        session,
        stmt,
        kind="chats",
        sort_col=Chat.updated_at,
        id_col=Chat.id,
        limit=limit,
        cursor=cursor,
    )


def get_chat(
    session: Session, principal: Principal, chat_id: uuid.UUID
) -> tuple[Chat, list[ChatMessage]]:
    """The chat and its non-deleted messages, oldest first (at most the newest 1000)."""
    require(principal, authz.CHAT_READ)
    chat = session.get(Chat, chat_id)
    if chat is None or not authz.can_view_chat(principal, chat):
        raise NotFound(f"chat {chat_id} not found", field="chat_id")
    newest = (
        session.scalars(
            select(ChatMessage)
            .where(ChatMessage.chat_id == chat.id, ChatMessage.deleted.is_(False))
            .order_by(ChatMessage.created_at.desc(), ChatMessage.id.desc())
            .limit(MAX_MESSAGES)
        )
    ).all()
    return chat, list(reversed(newest))


def title_pattern(q: str) -> str:
    """A LIKE pattern matching titles that contain ``q`` literally (``%`` and ``_`` too)."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def chat_events(
    session: Session,
    principal: Principal,
    chat_id: uuid.UUID,
    *,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[AutomationEvent]:
    """The events that created or continued the chat, newest first; 404 for a chat the
    caller may not see (seeing the chat is enough: its messages hold what the events said)."""
    require(principal, authz.CHAT_READ)
    chat = session.get(Chat, chat_id)
    if chat is None or not authz.can_view_chat(principal, chat):
        raise NotFound(f"chat {chat_id} not found", field="chat_id")
    stmt = select(AutomationEvent).where(
        or_(AutomationEvent.created_chat_id == chat.id, AutomationEvent.matched_chat_id == chat.id)
    )
    return paginate(
        session,
        stmt,
        kind="chat_events",
        sort_col=AutomationEvent.received_at,
        id_col=AutomationEvent.id,
        limit=limit,
        cursor=cursor,
    )
