"""Writing to a chat from the API: post a user message, retry a chat in ``error``, change
a chat (``PATCH``: title, pin, pause/resume, archive).

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

An archived chat takes no message and no retry (409 ``chat_archived``): unarchive it first.

Pause and resume (``PATCH {"paused": …}``):

* pausing makes any status ``paused``. A ``running`` chat loses its runner's claim: the turn
  in flight fails its fence and writes nothing (:mod:`shared.chats.turns`), and the message it
  was answering stays unanswered. ``retry_at`` is kept, so a resume never retries earlier than
  a provider asked;
* resuming makes the chat ``pending`` (``run_chat`` published after commit) when its newest
  user or assistant message is a user message, i.e. something is unanswered, else
  ``waiting``. A chat paused in ``error`` with its failed message unanswered is therefore
  tried again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.accounts.authz import Principal
from shared.chats.lifecycle import REASON_MANUAL, archive_chat, lock_chat
from shared.errors import Conflict
from shared.infra.clock import Clock
from shared.infra.db.uow import UnitOfWork
from shared.infra.queues import QUEUE_CHATS, RUN_CHAT
from shared.models import Chat, ChatMessage
from shared.models.enums import ChatStatus, MessageRole

__all__ = [
    "ChatChanges",
    "enqueue_run_chat",
    "new_user_message_status",
    "post_message",
    "retry_chat",
    "set_paused",
    "update_chat",
]


def enqueue_run_chat(uow: UnitOfWork, chat_id: uuid.UUID) -> None:
    """Publish ``run_chat(chat_id)`` on the chats queue once ``uow`` committed."""
    uow.enqueue(RUN_CHAT, [str(chat_id)], QUEUE_CHATS)


def new_user_message_status(status: ChatStatus) -> ChatStatus:
    """The chat's status after a user message was appended."""
    if status in (ChatStatus.RUNNING, ChatStatus.PAUSED):
        return status
    return ChatStatus.PENDING


def _writable_chat(session: Session, principal: Principal, chat_id: uuid.UUID) -> Chat:
    """The chat, locked; 404 when not visible, 409 ``chat_archived`` when archived."""
    chat = lock_chat(session, principal, chat_id)
    _refuse_archived(chat)
    return chat


def _refuse_archived(chat: Chat) -> None:
    if chat.archived:
        raise Conflict(
            f'chat {chat.id} is archived; unarchive it first (PATCH {{"archived": false}})',
            code="chat_archived",
            field="chat_id",
        )


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


def _unanswered(session: Session, chat_id: uuid.UUID) -> bool:
    """Whether the newest non-deleted user or assistant message is a user message."""
    role = session.scalar(
        select(ChatMessage.role)
        .where(
            ChatMessage.chat_id == chat_id,
            ChatMessage.deleted.is_(False),
            ChatMessage.role.in_([MessageRole.USER, MessageRole.ASSISTANT]),
        )
        .order_by(ChatMessage.created_at.desc(), ChatMessage.id.desc())
        .limit(1)
    )
    return role == MessageRole.USER


def set_paused(uow: UnitOfWork, now: datetime, chat: Chat, paused: bool) -> None:
    """Pause or resume a locked chat (the module's rule); a no-op when already so."""
    status = ChatStatus(chat.status)
    if paused:
        if status == ChatStatus.PAUSED:
            return
        chat.status = ChatStatus.PAUSED
        chat.runner_id = None  # a running turn loses its claim and writes nothing
        chat.heartbeat_at = None
        chat.queued_at = None
        chat.updated_at = now
        return
    if status != ChatStatus.PAUSED:
        return
    if _unanswered(uow.session, chat.id):
        _make_pending(chat, now, clear_retry=False)
        uow.session.flush()
        enqueue_run_chat(uow, chat.id)
    else:
        chat.status = ChatStatus.WAITING
    chat.updated_at = now


@dataclass(frozen=True)
class ChatChanges:
    """What a ``PATCH /chats/<id>`` asks for; None leaves a field as it is."""

    title: str | None = None
    archived: bool | None = None
    pin_order: int | None = None
    paused: bool | None = None


def update_chat(
    uow: UnitOfWork, clock: Clock, principal: Principal, chat_id: uuid.UUID, changes: ChatChanges
) -> Chat:
    """Apply ``changes`` in one transaction. Unarchiving comes first and archiving last, so
    ``{"archived": false, "paused": false}`` resumes a chat it has just unarchived; changing
    ``paused`` on a chat that stays archived is 409 ``chat_archived``. Archive and unarchive
    cascade to the chat's descendants (:func:`shared.chats.lifecycle.archive_chat`)."""
    session = uow.session
    now = clock.now()
    chat = lock_chat(session, principal, chat_id)
    if changes.archived is False:
        chat = archive_chat(session, now, principal, chat_id, archived=False, reason=REASON_MANUAL)
    if changes.paused is not None:
        _refuse_archived(chat)
        set_paused(uow, now, chat, changes.paused)
    if changes.title is not None and changes.title != chat.title:
        chat.title = changes.title
        chat.updated_at = now
    if changes.pin_order is not None and changes.pin_order != chat.pin_order:
        chat.pin_order = changes.pin_order
        chat.updated_at = now
    session.flush()
    if changes.archived is True:
        chat = archive_chat(session, now, principal, chat_id, archived=True, reason=REASON_MANUAL)
    return chat
