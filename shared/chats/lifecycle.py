"""Archiving, unarchiving and deleting a chat with its descendants (SPEC 11).

A chat's *family* is the chat and its sub-chats at any depth. A root chat's descendants are
the chats whose ``root_chat_id`` is the root (one indexed lookup); a sub-chat's are found by
walking ``parent_chat_id`` (a recursive CTE, which PostgreSQL and SQLite both run).

* :func:`archive_chat` sets ``archived`` and ``archived_at`` on the whole family (unarchive
  clears both) and writes one audit entry (``chat.archive`` / ``chat.unarchive``) for the chat
  it was asked about, with the reason and how many descendants changed. A sub-chat of an
  archived chat cannot be unarchived on its own (409 ``parent_archived``): its family would
  be half archived and chat retention would delete it with its root anyway.
* :func:`delete_chat` deletes the chat; the database cascades to its descendants, their
  messages and (once section 12 lands) pinned context. Events that created or continued one
  of them keep their status with a null chat reference (``ON DELETE SET NULL``). One audit
  entry ``chat.delete``.

``principal`` is None for the system (jobs): no authorization, no actor on the audit entry.
With a principal, the scope ``chat:write`` is needed and a chat the caller may not see is 404.
The chat row is locked first (``FOR UPDATE``), as every chat write is
(:mod:`shared.chats.messages`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select, update
from sqlalchemy.orm import Session

from shared import audit
from shared.accounts import authz
from shared.accounts.authz import Principal
from shared.automations.service import require
from shared.errors import Conflict, NotFound
from shared.models import Chat

__all__ = [
    "REASON_AUTO",
    "REASON_MANUAL",
    "archive_chat",
    "delete_chat",
    "descendant_ids",
    "lock_chat",
]

#: ``reason`` values recorded on the audit entries
REASON_MANUAL = "manual"
REASON_AUTO = "auto"


@dataclass(frozen=True)
class _At:
    """A clock stopped at ``now``: :func:`shared.audit.record` takes a clock, these
    functions are given the time."""

    at: datetime

    def now(self) -> datetime:
        return self.at


def lock_chat(session: Session, principal: Principal | None, chat_id: uuid.UUID) -> Chat:
    """The chat, locked and freshly read; 404 when missing or not visible to ``principal``
    (who needs the scope ``chat:write``)."""
    if principal is not None:
        require(principal, authz.CHAT_WRITE)
    chat = session.scalars(
        select(Chat)
        .where(Chat.id == chat_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if chat is None or (principal is not None and not authz.can_view_chat(principal, chat)):
        raise NotFound(f"chat {chat_id} not found", field="chat_id")
    return chat


def _descendants_query(chat: Chat) -> Select[tuple[uuid.UUID]]:
    if chat.root_chat_id is None and chat.parent_chat_id is None:
        return select(Chat.id).where(Chat.root_chat_id == chat.id)
    tree = select(Chat.id).where(Chat.parent_chat_id == chat.id).cte("family", recursive=True)
    tree = tree.union_all(select(Chat.id).where(Chat.parent_chat_id == tree.c.id))
    return select(tree.c.id)


def descendant_ids(session: Session, chat: Chat) -> list[uuid.UUID]:
    """The ids of ``chat``'s sub-chats at any depth (not the chat itself)."""
    return list(session.scalars(_descendants_query(chat)))


def _actor(principal: Principal | None) -> uuid.UUID | None:
    return principal.user_id if principal is not None else None


def archive_chat(
    session: Session,
    now: datetime,
    principal: Principal | None,
    chat_id: uuid.UUID,
    *,
    archived: bool,
    reason: str = REASON_MANUAL,
    details: dict[str, Any] | None = None,
) -> Chat:
    """Archive (or unarchive) the chat and all its descendants; returns the chat.

    Idempotent: a family already in the asked state changes nothing and writes no audit
    entry. Descendants whose state differed (one unarchived by hand, say) are brought along.
    ``details`` are added to the audit entry (auto-archive records its days and the family's
    last activity)."""
    chat = lock_chat(session, principal, chat_id)
    if not archived and chat.parent_chat_id is not None:
        parent_archived = session.scalar(
            select(Chat.archived).where(Chat.id == chat.parent_chat_id)
        )
        if parent_archived:
            raise Conflict(
                f"chat {chat_id} belongs to an archived chat; unarchive "
                f"{chat.root_chat_id or chat.parent_chat_id} instead",
                code="parent_archived",
                field="archived",
            )
    family: ColumnElement[bool] = Chat.id.in_(_descendants_query(chat))
    changed = session.execute(
        update(Chat)
        .where(family, Chat.archived.is_(not archived))
        .values(archived=archived, archived_at=now if archived else None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    descendants = int(changed.rowcount or 0)  # type: ignore[attr-defined]
    if chat.archived == archived and descendants == 0:
        return chat
    if chat.archived != archived:
        chat.archived = archived
        chat.archived_at = now if archived else None
        chat.updated_at = now
    audit.record(
        session,
        _At(now),
        actor_id=_actor(principal),
        organization_id=chat.organization_id,
        action="chat.archive" if archived else "chat.unarchive",
        resource_type="chat",
        resource_id=chat.id,
        details={"reason": reason, "descendants": descendants, **(details or {})},
    )
    session.flush()
    return chat


def delete_chat(
    session: Session, now: datetime, principal: Principal | None, chat_id: uuid.UUID
) -> None:
    """Delete the chat, its descendants and their messages (the foreign keys cascade)."""
    chat = lock_chat(session, principal, chat_id)
    descendants = session.scalar(
        select(func.count()).select_from(_descendants_query(chat).subquery())
    )
    entry = {
        "title": chat.title[:200],
        "descendants": int(descendants or 0),
        "owner_id": str(chat.owner_id),
        "archived": chat.archived,
    }
    organization_id, target = chat.organization_id, chat.id
    session.expunge(chat)
    session.execute(
        delete(Chat).where(Chat.id == target).execution_options(synchronize_session=False)
    )
    audit.record(
        session,
        _At(now),
        actor_id=_actor(principal),
        organization_id=organization_id,
        action="chat.delete",
        resource_type="chat",
        resource_id=target,
        details=entry,
    )
    session.flush()
