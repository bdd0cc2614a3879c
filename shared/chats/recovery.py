"""The chat runner's safety net (beat's ``recover_chats``, SPEC 9 "A turn").

Durability of a turn comes from the database, not from the broker message: a chat is
``pending`` until a runner claims it, and ``running`` only while its runner heartbeats. This
job repairs the two ways a chat can be forgotten:

* **a crashed runner**: a ``running`` chat whose heartbeat is older than
  ``runner_stale_seconds`` goes back to ``pending`` (its ``runner_id`` cleared, so the dead
  runner's fenced commit can never land) and ``run_chat`` is published;
* **a lost publish**: a ``pending`` chat that is due (``retry_at`` null or passed) and whose
  last publish (``queued_at``) is older than ``runner_republish_seconds`` is published again.

Both work in batches (PostgreSQL ``FOR UPDATE SKIP LOCKED``, so two beats or a slow run never
fight over rows); the caller publishes the returned ids after its commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Connection, select, update

from shared.chats.messages import enqueue_run_chat
from shared.infra.clock import Clock
from shared.infra.config import Settings
from shared.infra.db.uow import UnitOfWork
from shared.models.enums import ChatStatus
from shared.models.tables import chats

__all__ = ["Recovered", "recover_and_publish", "recover_chats"]


@dataclass
class Recovered:
    #: running chats with a stale heartbeat, now pending
    stale: list[uuid.UUID] = field(default_factory=list)
    #: pending chats nobody claimed, published again
    republished: list[uuid.UUID] = field(default_factory=list)

    @property
    def to_publish(self) -> list[uuid.UUID]:
        return [*self.stale, *self.republished]


def recover_chats(
    conn: Connection,
    clock: Clock,
    *,
    stale_seconds: float,
    republish_seconds: float,
    batch_size: int = 500,
) -> Recovered:
    """One batch of each repair, in the caller's transaction; publish ``to_publish`` after
    the commit."""
    now = clock.now()
    out = Recovered()
    stale = conn.execute(
        select(chats.c.id)
        .where(
            chats.c.status == ChatStatus.RUNNING,
            chats.c.heartbeat_at < now - timedelta(seconds=stale_seconds),
        )
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    ).scalars()
    out.stale = list(stale)
    if out.stale:
        conn.execute(
            update(chats)
            .where(chats.c.id.in_(out.stale), chats.c.status == ChatStatus.RUNNING)
            .values(status=ChatStatus.PENDING, runner_id=None, heartbeat_at=None, queued_at=now)
        )
    cutoff = now - timedelta(seconds=republish_seconds)
    unclaimed = conn.execute(
        select(chats.c.id)
        .where(
            chats.c.status == ChatStatus.PENDING,
            chats.c.retry_at.is_(None) | (chats.c.retry_at <= now),
            chats.c.queued_at.is_(None) | (chats.c.queued_at < cutoff),
        )
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    ).scalars()
    out.republished = [chat_id for chat_id in unclaimed if chat_id not in set(out.stale)]
    if out.republished:
        conn.execute(update(chats).where(chats.c.id.in_(out.republished)).values(queued_at=now))
    return out


def recover_and_publish(uow: UnitOfWork, clock: Clock, settings: Settings) -> Recovered:
    """:func:`recover_chats` with the settings' ages, publishing ``run_chat`` for every chat
    it returned to or left ``pending`` once ``uow`` committed: the recover-chats beat job and
    ``automations jobs run recover-chats`` alike."""
    result = recover_chats(
        uow.connection,
        clock,
        stale_seconds=settings.runner_stale_seconds,
        republish_seconds=settings.runner_republish_seconds,
    )
    for chat_id in result.to_publish:
        enqueue_run_chat(uow, chat_id)
    return result
