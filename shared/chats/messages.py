"""Writing to a chat from the API: post a user message, retry a chat in ``error``.

Both lock the chat row first (PostgreSQL ``FOR UPDATE``; SQLite's write lock is taken by
``BEGIN IMMEDIATE``), so they are ordered against a turn's fenced commit, which locks the same
row (:mod:`shared.chats.turns`): a message committed before the turn's commit is answered by a
follow-up turn; one that waited for the turn's commit finds the chat ``waiting`` and makes it
``pending`` itself. ``run_chat`` is published after commit.

The status rule of a new user message (SPEC 9 "Chat statuses"):

* ``running``: unchanged; the turn's commit sees the message and sets ``pending`` (follow-up);
* ``paused``: unchanged; no turn starts until it is resumed;
* anything else (``waiting``, ``pending``, ``error``): ``pending``. From ``error`` the retry
  state is cleared, so the attempt count starts again; a ``pending`` chat waiting out a
  provider's ``Retry-After`` keeps its ``retry_at`` (never earlier than the provider asked).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.accounts import authz
from shared.accounts.authz import Principal
from shared.automations.service import require
from shared.errors import Conflict, NotFound
from shared.infra.clock import Clock
from shared.infra.db.uow import UnitOfWork
from shared.infra.queues import QUEUE_CHATS, RUN_CHAT
from shared.models import Chat, ChatMessage
from shared.models.enums import ChatStatus, MessageRole

__all__ = ["enqueue_run_chat", "new_user_message_status", "post_message", "retry_chat"]


def enqueue_run_chat(uow: UnitOfWork, chat_id: uuid.UUID) -> None:
    """Publish ``run_chat(chat_id)`` on the chats queue once ``uow`` committed."""
    uow.enqueue(RUN_CHAT, [str(chat_id)], QUEUE_CHATS)


def new_user_message_status(status: ChatStatus) -> ChatStatus:
    """The chat's status after a user message was appended."""
    if status in (ChatStatus.RUNNING, ChatStatus.PAUSED):
        return status
    return ChatStatus.PENDING


def _writable_chat(session: Session, principal: Principal, chat_id: uuid.UUID) -> Chat:
    require(principal, authz.CHAT_WRITE)
    chat = session.scalars(
        select(Chat)
        .where(Chat.id == chat_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if chat is None or not authz.can_view_chat(principal, chat):
        raise NotFound(f"chat {chat_id} not found", field="chat_id")
    return chat


def _make_pending(chat: Chat, now: Any, *, clear_retry: bool) -> None:
    chat.status = ChatStatus.PENDING
    chat.queued_at = now
    if clear_retry:
        chat.retry = None
        chat.retry_at = None


def post_message(
    uow: UnitOfWork, clock: Clock, principal: Principal, chat_id: uuid.UUID, content: str
) -> ChatMessage:
    """Append a user message; the chat becomes ``pending`` (see the module's rule) and
    ``run_chat`` is published after commit."""
    session = uow.session
    chat = _writable_chat(session, principal, chat_id)
    now = clock.now()
    message = ChatMessage(
        id=uuid.uuid4(),
        chat_id=chat.id,
        role=MessageRole.USER,
        content=content,
        created_at=now,
        deleted=False,
    )
    session.add(message)
    previous = ChatStatus(chat.status)
    status = new_user_message_status(previous)
    if status == ChatStatus.PENDING:
        _make_pending(chat, now, clear_retry=previous == ChatStatus.ERROR)
    chat.updated_at = now
    session.flush()
    if status == ChatStatus.PENDING:
        enqueue_run_chat(uow, chat.id)
    return message


def retry_chat(uow: UnitOfWork, clock: Clock, principal: Principal, chat_id: uuid.UUID) -> Chat:
    """``POST /chats/<id>/retry``: a chat in ``error`` becomes ``pending`` with a fresh
    attempt count; 409 ``not_in_error`` otherwise."""
    session = uow.session
    chat = _writable_chat(session, principal, chat_id)
    if chat.status != ChatStatus.ERROR:
        raise Conflict(
            f"chat {chat_id} is {ChatStatus(chat.status).value}; only a chat in error can be "
            "retried",
            code="not_in_error",
            field="chat_id",
        )
    now = clock.now()
    _make_pending(chat, now, clear_retry=True)
    chat.updated_at = now
    session.flush()
    enqueue_run_chat(uow, chat.id)
    return chat
