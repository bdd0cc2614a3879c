"""``/chats``: the chats automations created or continued, with their messages; posting a
message and retrying a chat in ``error`` (SPEC 9); changing (title, pin, pause, archive),
deleting a chat and listing the events that fed it (SPEC 11)."""

from __future__ import annotations

import uuid

from shared.chats import lifecycle
from shared.chats import messages as chat_messages
from shared.chats import queries as chat_queries
from shared.models import Chat as ChatRow
from shared.models import ChatMessage as ChatMessageRow
from webhook_gateway.api import schemas as s
from webhook_gateway.api.events import event_out
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
    `automation_id`, `archived` (absent: both), `status` (repeatable; any matches), `pinned`,
    `q` (the title contains it, case-insensitively)."""
    q: s.ChatListQuery = ctx.query
    page = chat_queries.list_chats(
        ctx.session,
        ctx.principal,
        automation_id=q.automation_id,
        labels=chat_queries.parse_label_filters(q.label or []),
        archived=q.archived,
        statuses=q.status,
        pinned=q.pinned,
        q=q.q,
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
    errors=(*s.WRITE_ERRORS, 409),
)
def post_chat_message(ctx: Ctx, chat_id: uuid.UUID) -> s.ChatMessage:
    """Appends a user message. The chat becomes `pending` and a turn answers it, unless a
    turn is running (a follow-up turn answers it once that turn ends) or the chat is
    `paused`. A chat in `error` starts again with a fresh attempt count. 409
    `chat_archived` for an archived chat."""
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
    409 `not_in_error` for a chat in any other status, `chat_archived` for an archived one."""
    return chat_out(chat_messages.retry_chat(ctx.uow, ctx.clock, ctx.principal, chat_id))


@operation(
    "PATCH",
    "/chats/{chat_id}",
    summary="Rename, pin, pause or resume, archive or unarchive a chat",
    tag="chats",
    response=s.Chat,
    body=s.ChatUpdate,
    errors=(*s.WRITE_ERRORS, 409),
)
def update_chat(ctx: Ctx, chat_id: uuid.UUID) -> s.Chat:
    """Only the fields given change. `archived` cascades to the chat's descendants (and is
    audited as `chat.archive` / `chat.unarchive`); a sub-chat of an archived chat cannot be
    unarchived alone (409 `parent_archived`). `paused: true` makes the chat `paused` (a turn
    in flight is abandoned and writes nothing); `paused: false` resumes it: `pending` when a
    user message is unanswered, else `waiting`. Changing `paused` on an archived chat is 409
    `chat_archived` (unarchive it in the same request). `pin_order` > 0 pins, 0 unpins."""
    body: s.ChatUpdate = ctx.body
    changes = chat_messages.ChatChanges(**{name: getattr(body, name) for name in ctx.body_fields})
    row = chat_messages.update_chat(ctx.uow, ctx.clock, ctx.principal, chat_id, changes)
    return chat_out(row)


@operation(
    "DELETE",
    "/chats/{chat_id}",
    summary="Delete a chat with its sub-chats and messages",
    tag="chats",
    response=None,
    status=204,
    errors=s.WRITE_ERRORS,
)
def delete_chat(ctx: Ctx, chat_id: uuid.UUID) -> None:
    """Deletes the chat, its descendants and their messages (audited as `chat.delete`).
    Events that created or continued them keep their status; their chat reference becomes
    null."""
    lifecycle.delete_chat(ctx.session, ctx.clock.now(), ctx.principal, chat_id)


@operation(
    "GET",
    "/chats/{chat_id}/events",
    summary="The events that created or continued a chat, newest first",
    tag="chats",
    response=s.EventPage,
    query=s.PageQuery,
    errors=s.READ_ERRORS,
)
def list_chat_events(ctx: Ctx, chat_id: uuid.UUID) -> s.EventPage:
    """The chat's own events (not its sub-chats'), by received time."""
    q: s.PageQuery = ctx.query
    page = chat_queries.chat_events(
        ctx.session, ctx.principal, chat_id, limit=q.limit, cursor=q.cursor
    )
    return s.EventPage(items=[event_out(e) for e in page.items], next_cursor=page.next_cursor)
