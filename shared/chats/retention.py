"""Chat retention (SPEC 11): delete archived chats ``chat_retention_days`` after they were
archived (0 = keep them forever), descendants included, in batches.

Each batch is its own short transaction:

1. lock up to ``batch_size`` expired archived chats, oldest ``archived_at`` first (the partial
   index ``ix_chats_archived_at``; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL);
2. delete their descendants (``root_chat_id`` or ``parent_chat_id`` in the batch), then the
   chats themselves, repeating the expiry conditions (the re-check).

Messages go with their chat (``ON DELETE CASCADE``), and events that pointed at a deleted
chat keep their status with a null reference (``ON DELETE SET NULL``, SPEC 3). The cutoff is
fixed when the run starts, so the loop ends; only one run at a time
(:func:`shared.chats.archive.job_guard`): two runs could otherwise each lock one member of a
family and wait for the other's.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, or_, select

from shared.chats.archive import job_guard
from shared.infra.clock import Clock
from shared.infra.db.uow import Units
from shared.models.tables import chat_messages, chats
from shared.site_config import read_site_config

__all__ = ["RetentionResult", "delete_expired_chats"]

log = logging.getLogger(__name__)


@dataclass
class RetentionResult:
    ran: bool  # False when another run held the guard
    days: int = 0
    cutoff: datetime | None = None
    #: chats deleted, sub-chats included
    chats: int = 0
    #: how many of them were sub-chats (a parent_chat_id)
    sub_chats: int = 0
    messages: int = 0
    batches: int = 0
    longest_batch_seconds: float = 0.0
    complete: bool = True  # False when stopped by max_batches with chats possibly left

    def as_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "days": self.days,
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "deleted_chats": self.chats,
            "deleted_sub_chats": self.sub_chats,
            "deleted_messages": self.messages,
            "batches": self.batches,
            "longest_batch_seconds": round(self.longest_batch_seconds, 4),
            "complete": self.complete,
        }


def _delete_batch(conn: Connection, cutoff: datetime, batch_size: int) -> tuple[int, int, int]:
    """One batch: (chats deleted, how many of them were sub-chats, messages with them)."""
    c = chats
    expired = (c.c.archived.is_(True), c.c.archived_at < cutoff)
    pick = select(c.c.id).where(*expired).order_by(c.c.archived_at, c.c.id).limit(batch_size)
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    ids: list[uuid.UUID] = list(conn.execute(pick).scalars())
    if not ids:
        return 0, 0, 0
    family = or_(c.c.root_chat_id.in_(ids), c.c.parent_chat_id.in_(ids))
    members = conn.execute(
        select(c.c.id, c.c.parent_chat_id).where(or_(c.c.id.in_(ids), family))
    ).all()
    member_ids = [m.id for m in members]
    messages = conn.execute(
        select(func.count()).where(chat_messages.c.chat_id.in_(member_ids))
    ).scalar_one()
    # descendants first, then the chats with the expiry re-checked; counted by what is gone
    # afterwards (SQLite does not return rows its cascades deleted)
    conn.execute(delete(c).where(family, c.c.id.notin_(ids)))
    conn.execute(delete(c).where(c.c.id.in_(ids), *expired))
    left = set(conn.execute(select(c.c.id).where(c.c.id.in_(member_ids))).scalars())
    gone = [m for m in members if m.id not in left]
    sub_chats = sum(1 for m in gone if m.parent_chat_id is not None)
    return len(gone), sub_chats, int(messages)


def delete_expired_chats(
    engine: Engine,
    units: Units,
    clock: Clock,
    *,
    batch_size: int = 1000,
    max_batches: int | None = None,
    max_seconds: float | None = None,
    timer: Callable[[], float] = time.monotonic,
) -> RetentionResult:
    """One retention run; returns what it deleted (``ran=False``: another run is going on).

    ``engine`` holds the one-run-at-a-time guard; ``units`` open the batches' transactions.
    ``max_batches`` and ``max_seconds`` stop early (``complete=False``); the next run continues.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    with job_guard(engine, "chat-retention") as acquired:
        if not acquired:
            log.info("chat retention skipped: another run is in progress")
            return RetentionResult(ran=False)
        run_started = timer()
        now = clock.now()
        with units() as uow:
            days = read_site_config(uow.session).chat_retention_days
        result = RetentionResult(ran=True, days=days)
        if days == 0:
            return result
        cutoff = result.cutoff = now - timedelta(days=days)
        while True:
            out_of_batches = max_batches is not None and result.batches >= max_batches
            out_of_time = max_seconds is not None and timer() - run_started >= max_seconds
            if out_of_batches or out_of_time:
                result.complete = False
                break
            started = timer()
            with units() as uow:
                deleted, sub_chats, messages = _delete_batch(uow.connection, cutoff, batch_size)
            result.longest_batch_seconds = max(result.longest_batch_seconds, timer() - started)
            if not deleted:
                break
            result.batches += 1
            result.chats += deleted
            result.sub_chats += sub_chats
            result.messages += messages
    if result.chats:
        log.info(
            "chat retention: deleted %d chat(s) (%d sub-chat(s)) and %d message(s) archived "
            "before %s in %d batch(es) (longest %.3f s)",
            result.chats,
            result.sub_chats,
            result.messages,
            cutoff.isoformat(),
            result.batches,
            result.longest_batch_seconds,
        )
    return result
