"""Auto-archive (SPEC 11): archive root chats whose family has been inactive for
``auto_archive_days``, with one audit entry per root and one digest per owner per run.

A root chat is a candidate when it is not archived, not pinned (``pin_order`` 0), not
``pending`` or ``running``, and its family's last activity (the newest non-deleted message of
the root or of any descendant, i.e. a chat whose ``root_chat_id`` is the root, else the
root's ``created_at``) is before the cutoff, UTC midnight of ``now - auto_archive_days``.
"Before the cutoff" is written as: created before it, and no non-deleted message of the
family at or after it (``NOT EXISTS``: an index probe that stops at the first recent message,
instead of a ``MAX`` over the whole family).

The run works in batches, each its own short transaction:

1. select up to ``batch_size`` candidates after the previous batch's last one, in
   ``(created_at, id)`` order (the partial index ``ix_chats_auto_archive_candidates``), and
   lock them (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: a chat a turn or a person holds is
   left for the next run; SQLite's ``BEGIN IMMEDIATE`` already serialises writers);
2. archive the roots with an ``UPDATE`` that repeats every condition (the re-check: a fresh
   statement sees a message committed after step 1's snapshot; a message inserted now waits
   for our row lock, its foreign key check takes ``FOR KEY SHARE``), then their descendants;
3. write the audit entries.

The digests (``shared.notifications.service.notify``) go out in one last transaction once
the batches are done, so an owner gets one per run however many batches archived their chats.
Only one run at a time (:func:`job_guard`): a second run, a beat tick
racing ``automations jobs run``, returns at once having done nothing, so nobody gets two
digests for one day's chats and no chat is archived twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import heapq
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    exists,
    false,
    func,
    insert,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.orm import aliased

from shared.infra.clock import Clock
from shared.infra.db.uow import Units
from shared.models import AuditLog
from shared.models.enums import ChatStatus
from shared.models.tables import chat_messages, chats
from shared.notifications.service import notify
from shared.site_config import read_site_config

__all__ = [
    "ACTIVE_STATUSES",
    "DIGEST_KIND",
    "DIGEST_TITLES",
    "ArchiveResult",
    "archive_cutoff",
    "auto_archive",
    "digest_text",
    "job_guard",
]

log = logging.getLogger(__name__)

#: chats doing work are never auto-archived
ACTIVE_STATUSES = (ChatStatus.PENDING, ChatStatus.RUNNING)
#: the notification kind (and audit action) of auto-archive
DIGEST_KIND = "chat.auto_archive"
#: titles listed in one digest before "and M more"
DIGEST_TITLES = 25

_AUDIT: Table = cast(Table, AuditLog.__table__)
_memory_locks: dict[str, threading.Lock] = {}
_memory_locks_guard = threading.Lock()


@contextmanager
def job_guard(engine: Engine, name: str) -> Iterator[bool]:
    """Try to become the one running ``name`` job; yields whether it did.

    PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection of
    its own, held outside any transaction for the whole run (the batches run on other
    connections; nothing stays "idle in transaction"); a crashed holder's lock goes with its
    connection. SQLite: an exclusive ``flock`` on ``<database file>.<name>.lock`` (a
    process-local lock for an in-memory database); the descriptor's close releases it.
    """
    if engine.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"automations:{name}".encode()).digest()[:8], "big")
        key -= 1 << 63 if key >= 1 << 63 else 0  # a signed bigint
        with engine.connect() as conn:
            acquired = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            )
            conn.commit()
            try:
                yield acquired
            finally:
                if acquired:
                    try:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                        conn.commit()
                    except Exception:  # the lock goes with the discarded connection
                        log.warning("could not release the %s guard", name, exc_info=True)
                        conn.invalidate()
        return
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        with _memory_locks_guard:
            lock = _memory_locks.setdefault(f"{engine.url}:{name}", threading.Lock())
        acquired = lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()
        return
    fd = os.open(f"{database}.{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            acquired = True
        except BlockingIOError:
            acquired = False
        yield acquired
    finally:
        os.close(fd)


@dataclass
class _OwnerDigest:
    count: int = 0
    #: the least recently active chats so far: a max-heap by (last activity, id) of 25
    oldest: list[tuple[float, str, str, str]] = field(default_factory=list)

    def add(self, last_activity: datetime, chat_id: uuid.UUID, title: str) -> None:
        self.count += 1
        item = (-last_activity.timestamp(), str(chat_id), title, last_activity.isoformat())
        if len(self.oldest) < DIGEST_TITLES:
            heapq.heappush(self.oldest, item)
        elif item > self.oldest[0]:  # less recently active than the newest kept one
            heapq.heapreplace(self.oldest, item)

    def listed(self) -> list[tuple[str, str, str]]:
        """``(chat id, title, last activity)``, least recently active first."""
        return [(cid, title, at) for _, cid, title, at in sorted(self.oldest, reverse=True)]


@dataclass
class ArchiveResult:
    ran: bool  # False when another run held the guard
    days: int = 0
    cutoff: datetime | None = None
    roots: int = 0
    descendants: int = 0
    notified: int = 0
    batches: int = 0
    longest_batch_seconds: float = 0.0
    complete: bool = True  # False when stopped by max_batches/max_seconds with work left
    notification_ids: list[uuid.UUID] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "days": self.days,
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "archived_roots": self.roots,
            "archived_descendants": self.descendants,
            "digests": self.notified,
            "batches": self.batches,
            "longest_batch_seconds": round(self.longest_batch_seconds, 4),
            "complete": self.complete,
        }


def archive_cutoff(now: datetime, days: int) -> datetime:
    """UTC midnight of ``now - days``."""
    day = (now.astimezone(UTC) - timedelta(days=days)).date()
    return datetime.combine(day, dtime(0), tzinfo=UTC)


def digest_text(days: int, retention_days: int, listed: list[str], total: int) -> tuple[str, str]:
    """The digest's title and body: ``listed`` titles (least recently active first, at most
    25) of ``total`` archived chats, and what happens to them next."""
    title = f"Chats auto-archived after {days} days of inactivity"
    noun = "chat" if total == 1 else "chats"
    lines = [f"{total} {noun} had no activity for {days} days and were archived:", ""]
    lines += [f"- {t}" for t in listed]
    if total > len(listed):
        lines.append(f"and {total - len(listed)} more")
    lines.append("")
    if retention_days == 0:
        lines.append("Archived chats are kept indefinitely; unarchive a chat to use it again.")
    else:
        lines.append(
            f"You can restore them within {retention_days} days; after that they are "
            "permanently deleted."
        )
    return title, "\n".join(lines)


def _family_quiet(root: Any, cutoff: datetime) -> ColumnElement[bool]:
    """No non-deleted message of ``root`` or its descendants at or after ``cutoff``."""
    child = aliased(chats)
    own = exists().where(
        chat_messages.c.chat_id == root.c.id,
        chat_messages.c.deleted.is_(False),
        chat_messages.c.created_at >= cutoff,
    )
    kids = exists().where(
        child.c.root_chat_id == root.c.id,
        chat_messages.c.chat_id == child.c.id,
        chat_messages.c.deleted.is_(False),
        chat_messages.c.created_at >= cutoff,
    )
    return and_(~own, ~kids)


def _candidate_conditions(root: Any, cutoff: datetime) -> list[ColumnElement[bool]]:
    return [
        root.c.parent_chat_id.is_(None),
        # "= false", not "IS false": the form the partial index's predicate is written in,
        # so that the planner can prove the index applies
        root.c.archived == false(),
        root.c.pin_order == 0,
        root.c.status.notin_(ACTIVE_STATUSES),
        root.c.created_at < cutoff,
        _family_quiet(root, cutoff),
    ]


def _last_activity(root: Any) -> tuple[Any, Any]:
    """Scalar subqueries: the newest non-deleted message of the root, and of its descendants."""
    child = aliased(chats)
    own = (
        select(func.max(chat_messages.c.created_at))
        .where(chat_messages.c.chat_id == root.c.id, chat_messages.c.deleted.is_(False))
        .scalar_subquery()
    )
    kids = (
        select(func.max(chat_messages.c.created_at))
        .where(
            child.c.root_chat_id == root.c.id,
            chat_messages.c.chat_id == child.c.id,
            chat_messages.c.deleted.is_(False),
        )
        .scalar_subquery()
    )
    return own, kids


@dataclass
class _Batch:
    last_key: tuple[datetime, uuid.UUID] | None
    #: archived roots: (id, owner, organization, title, last activity)
    archived: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, str, datetime]]
    descendants: int


def _archive_batch(
    conn: Connection,
    now: datetime,
    cutoff: datetime,
    days: int,
    after: tuple[datetime, uuid.UUID] | None,
    batch_size: int,
) -> _Batch:
    c = chats
    conditions = _candidate_conditions(c, cutoff)
    if after is not None:
        key = tuple_(literal(after[0], c.c.created_at.type), literal(after[1], c.c.id.type))
        # the plain range is what the partial index on created_at can serve; the row
        # comparison breaks ties
        conditions += [c.c.created_at >= after[0], tuple_(c.c.created_at, c.c.id) > key]
    locked = (
        select(c.c.id, c.c.created_at)
        .where(*conditions)
        .order_by(c.c.created_at, c.c.id)
        .limit(batch_size)
    )
    if conn.dialect.name == "postgresql":
        locked = locked.with_for_update(skip_locked=True, of=c)
    picked = conn.execute(locked).all()
    if not picked:
        return _Batch(None, [], 0)
    last_key = (picked[-1].created_at, picked[-1].id)
    ids = [row.id for row in picked]
    # The re-check: every condition again, in a statement with a fresh snapshot.
    rows = conn.execute(
        update(c)
        .where(c.c.id.in_(ids), *_candidate_conditions(c, cutoff))
        .values(archived=True, archived_at=now, updated_at=now)
        .returning(c.c.id, c.c.owner_id, c.c.organization_id, c.c.title, c.c.created_at)
    ).all()
    if not rows:
        return _Batch(last_key, [], 0)
    root_ids = [r.id for r in rows]
    descendants = conn.execute(
        update(c)
        .where(c.c.root_chat_id.in_(root_ids), c.c.archived == false())
        .values(archived=True, archived_at=now, updated_at=now)
    ).rowcount
    own, kids = _last_activity(c)
    activity = {
        r.id: max([r.created_at, *(t for t in (r.own, r.kids) if t is not None)])
        for r in conn.execute(
            select(c.c.id, c.c.created_at, own.label("own"), kids.label("kids")).where(
                c.c.id.in_(root_ids)
            )
        )
    }
    archived = [
        (r.id, r.owner_id, r.organization_id, r.title, activity.get(r.id, r.created_at))
        for r in rows
    ]
    conn.execute(
        insert(_AUDIT),
        [
            {
                "id": uuid.uuid4(),
                "created_at": now,
                "actor_id": None,
                "organization_id": org_id,
                "action": DIGEST_KIND,
                "resource_type": "chat",
                "resource_id": chat_id,
                "details": {"days": days, "last_activity": last.isoformat()},
            }
            for chat_id, _owner, org_id, _title, last in archived
        ],
    )
    return _Batch(last_key, archived, int(descendants or 0))


def auto_archive(
    engine: Engine,
    units: Units,
    clock: Clock,
    *,
    smtp_enabled: bool,
    batch_size: int = 1000,
    max_batches: int | None = None,
    max_seconds: float | None = None,
    timer: Callable[[], float] = time.monotonic,
) -> ArchiveResult:
    """One auto-archive run; returns what it did (``ran=False``: another run is going on).

    ``engine`` holds the one-run-at-a-time guard; ``units`` open the batches' transactions
    (their after-commit work publishes the digests' e-mails). ``max_batches`` and
    ``max_seconds`` stop early (``complete=False``), so a huge backlog (the day the setting is
    first turned on) never outlives the task time limit; the digests of what was archived go
    out, and the next run continues.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    with job_guard(engine, "auto-archive") as acquired:
        if not acquired:
            log.info("auto-archive skipped: another run is in progress")
            return ArchiveResult(ran=False)
        return _run(units, clock, smtp_enabled, batch_size, max_batches, max_seconds, timer)


def _run(
    units: Units,
    clock: Clock,
    smtp_enabled: bool,
    batch_size: int,
    max_batches: int | None,
    max_seconds: float | None,
    timer: Callable[[], float],
) -> ArchiveResult:
    run_started = timer()
    now = clock.now()
    with units() as uow:
        site = read_site_config(uow.session)
    result = ArchiveResult(ran=True, days=site.auto_archive_days)
    if site.auto_archive_days == 0:
        return result
    cutoff = result.cutoff = archive_cutoff(now, site.auto_archive_days)
    digests: dict[uuid.UUID, _OwnerDigest] = {}
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        out_of_batches = max_batches is not None and result.batches >= max_batches
        out_of_time = max_seconds is not None and timer() - run_started >= max_seconds
        if out_of_batches or out_of_time:
            result.complete = False
            break
        started = timer()
        with units() as uow:
            batch = _archive_batch(
                uow.connection, now, cutoff, site.auto_archive_days, after, batch_size
            )
        result.longest_batch_seconds = max(result.longest_batch_seconds, timer() - started)
        if batch.last_key is None:
            break
        result.batches += 1
        after = batch.last_key
        result.roots += len(batch.archived)
        result.descendants += batch.descendants
        for chat_id, owner_id, _org, title, last in batch.archived:
            digests.setdefault(owner_id, _OwnerDigest()).add(last, chat_id, title)
    if digests:
        result.notification_ids = _send_digests(
            units, now, smtp_enabled, site.auto_archive_days, site.chat_retention_days, digests
        )
        result.notified = len(result.notification_ids)
    if result.roots:
        log.info(
            "auto-archive: archived %d root chat(s) and %d descendant(s) inactive since %s "
            "in %d batch(es) (longest %.3f s); %d digest(s)",
            result.roots,
            result.descendants,
            cutoff.isoformat(),
            result.batches,
            result.longest_batch_seconds,
            result.notified,
        )
    return result


def _send_digests(
    units: Units,
    now: datetime,
    smtp_enabled: bool,
    days: int,
    retention_days: int,
    digests: dict[uuid.UUID, _OwnerDigest],
) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    with units() as uow:
        for owner_id, digest in digests.items():
            listed = digest.listed()
            title, body = digest_text(days, retention_days, [t for _, t, _ in listed], digest.count)
            ids.append(
                notify(
                    uow,
                    now,
                    smtp_enabled=smtp_enabled,
                    user_id=owner_id,
                    kind=DIGEST_KIND,
                    title=title,
                    body=body,
                    details={
                        "days": days,
                        "retention_days": retention_days,
                        "archived_count": digest.count,
                        "chats": [
                            {"id": cid, "title": t, "last_activity": at} for cid, t, at in listed
                        ],
                        "more": digest.count - len(listed),
                    },
                )
            )
    return ids
