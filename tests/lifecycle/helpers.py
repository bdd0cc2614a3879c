"""Helpers of the chat lifecycle tests: families of chats with messages at given times, and
the jobs run through units of work over a test session."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from shared.infra.clock import FrozenClock
from shared.infra.db.uow import Database, Units
from shared.models import Chat, Organization, User
from tests import factories

#: the tests' now: a Tuesday afternoon; with 7 days the cutoff is 2026-03-03 00:00 UTC
NOW = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
CUTOFF_7 = datetime(2026, 3, 3, tzinfo=UTC)


class Collector:
    """A task publisher that records what was published after commit."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def publish(self, messages: Any) -> None:
        self.messages.extend(messages)


def units(session: Session, publisher: Collector | None = None) -> Units:
    """Units of work that are savepoints of the test session's transaction."""
    return Database(session.connection(), publisher).unit


def engine_of(session: Session) -> Engine:
    return session.connection().engine


def owner(session: Session, clock: FrozenClock) -> tuple[User, Organization]:
    org = factories.org(session, clock)
    return factories.user(session, clock, org), org


def family(
    session: Session,
    clock: FrozenClock,
    user: User,
    org: Organization,
    *,
    created_at: datetime,
    messages: Sequence[datetime] = (),
    deleted: Sequence[datetime] = (),
    children: Sequence[Sequence[datetime]] = (),
    **kw: Any,
) -> Chat:
    """A root chat created at ``created_at`` with messages at ``messages`` (and deleted ones at
    ``deleted``), and one child per entry of ``children`` with messages at those times."""
    root = factories.chat(session, clock, user, org.id, created_at=created_at, **kw)
    for when in messages:
        _message(session, root, when, deleted=False)
    for when in deleted:
        _message(session, root, when, deleted=True)
    for child_messages in children:
        child = factories.chat(
            session,
            clock,
            user,
            org.id,
            created_at=created_at,
            parent_chat_id=root.id,
            root_chat_id=root.id,
            title=f"{root.title} / child",
        )
        for when in child_messages:
            _message(session, child, when, deleted=False)
    return root


def _message(session: Session, chat: Chat, when: datetime, *, deleted: bool) -> None:
    clock = FrozenClock(when)
    factories.message(session, clock, chat, deleted=deleted, deleted_at=when if deleted else None)


def reload(session: Session, *chats: Chat) -> list[Chat]:
    ids = [c.id for c in chats]
    session.expire_all()
    rows = {c.id: c for c in session.scalars(select(Chat).where(Chat.id.in_(ids)))}
    return [rows[i] for i in ids if i in rows]
