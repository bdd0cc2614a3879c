"""``/chats``: the chats automations created or continued, with their messages."""

from __future__ import annotations

import uuid

from shared.chats import queries as chat_queries
from shared.models import Chat as ChatRow
from shared.models import ChatMessage as ChatMessageRow
from webhook_gateway.api import schemas as s
from webhook_gateway.api.framework import Ctx, operation


def chat_out(row: ChatRow) -> s.Chat:
    return s.Chat.model_validate(row, from_attributes=True)


def message_out(row: ChatMessageRow) -> s.ChatMessage:
    return s.ChatMessage.model_validate(row, from_attributes=True)


@operation(
    "GET",
    "/chats",
    summary="List chats",
    tag="chats",
    response=s.ChatPage,
    query=s.ChatListQuery,
    errors=s.READ_ERRORS,
)
def list_chats(ctx: Ctx) -> s.ChatPage:
    """Most recently updated first. `label=key:value` (repeatable; all must match),
    `automation_id`, `archived` (absent: both)."""
    q: s.ChatListQuery = ctx.query
    page = chat_queries.list_chats(
        ctx.session,
        ctx.principal,
        automation_id=q.automation_id,
        labels=chat_queries.parse_label_filters(q.label or []),
        archived=q.archived,
        limit=q.limit,
        cursor=q.cursor,
    )
    return s.ChatPage(items=[chat_out(c) for c in page.items], next_cursor=page.next_cursor)


@operation(
    "GET",
    "/chats/{chat_id}",
    summary="A chat with its messages",
    tag="chats",
    response=s.ChatDetail,
    errors=s.READ_ERRORS,
)
def get_chat(ctx: Ctx, chat_id: uuid.UUID) -> s.ChatDetail:
    chat, messages = chat_queries.get_chat(ctx.session, ctx.principal, chat_id)
    out = chat_out(chat).model_dump()
    out["messages"] = [message_out(m) for m in messages]
    return s.ChatDetail.model_validate(out)
