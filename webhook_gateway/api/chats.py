"""``/chats``: the chats automations created or continued, with their messages; posting a
message and retrying a chat in ``error`` (SPEC 9)."""

from __future__ import annotations

import uuid

from shared.chats import messages as chat_messages
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


@operation(
    "POST",
    "/chats/{chat_id}/messages",
    summary="Post a user message to a chat",
    tag="chats",
    response=s.ChatMessage,
    status=201,
    body=s.ChatMessageCreate,
    errors=s.WRITE_ERRORS,
)
def post_chat_message(ctx: Ctx, chat_id: uuid.UUID) -> s.ChatMessage:
    """Appends a user message. The chat becomes `pending` and a turn answers it, unless a
    turn is running (a follow-up turn answers it once that turn ends) or the chat is
    `paused`. A chat in `error` starts again with a fresh attempt count."""
    body: s.ChatMessageCreate = ctx.body
    row = chat_messages.post_message(ctx.uow, ctx.clock, ctx.principal, chat_id, body.content)
    return message_out(row)


@operation(
    "POST",
    "/chats/{chat_id}/retry",
    summary="Retry a chat whose last turn failed for good",
    tag="chats",
    response=s.Chat,
    status=202,
    errors=(*s.WRITE_ERRORS, 409),
)
def retry_chat(ctx: Ctx, chat_id: uuid.UUID) -> s.Chat:
    """A chat in `error` becomes `pending` with a fresh attempt count and a turn is queued;
    409 `not_in_error` for a chat in any other status."""
    return chat_out(chat_messages.retry_chat(ctx.uow, ctx.clock, ctx.principal, chat_id))
