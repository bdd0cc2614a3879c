"""Event retention: delete events older than the retention period, in bounded batches.

Rule: an event is expired when ``received_at < now - retention_days``; the status does not
matter, so ``error`` rows from bad-signature floods go by the same rule as everything else.

Each batch is its own short transaction that deletes the ``batch_size`` oldest expired rows
(served by ``ix_automation_events_received_at``); there is a pause between batches so the
purge never monopolises the database, and it loops until a batch comes back short. The cutoff
is fixed when the run starts, so the loop always terminates. On PostgreSQL rows locked by a
worker at that moment are skipped (``SKIP LOCKED``), not waited for; the next run gets them.

Only one purge runs at a time: on PostgreSQL a session-level advisory lock
(``pg_try_advisory_lock``) held on the one connection the run uses for all its batches; on
SQLite an exclusive ``flock`` on ``<database file>.purge.lock`` (a process-local lock for an
in-memory database). A run that finds the guard taken returns at once with ``ran=False``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, Table, delete, func, select, text

from shared.infra.clock import Clock
from shared.models import AutomationEvent

__all__ = ["PURGE_LOCK_KEY", "PurgeResult", "purge_expired_events", "purge_guard"]

log = logging.getLogger(__name__)

#: Advisory lock key of the purge on PostgreSQL (ASCII "autopurg").
PURGE_LOCK_KEY = 0x6175746F70757267

_EVENTS: Table = AutomationEvent.__table__  # type: ignore[assignment]
_memory_locks: dict[str, threading.Lock] = {}
_memory_locks_guard = threading.Lock()


@dataclass
class PurgeResult:
    ran: bool  # False when another purge held the guard
    cutoff: datetime | None = None
    deleted: int = 0
    deleted_by_status: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    longest_batch_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    complete: bool = True  # False when stopped by max_seconds/max_batches with rows left


def purge_expired_events(
    engine: Engine,
    clock: Clock,
    retention_days: int,
    *,
    batch_size: int = 5000,
    pause_seconds: float = 0.05,
    max_seconds: float | None = None,
    max_batches: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timer: Callable[[], float] = time.monotonic,
) -> PurgeResult:
    """Delete expired events oldest first, ``batch_size`` rows per transaction.

    Stops when a batch deletes fewer than ``batch_size`` rows (nothing left), or, with rows
    possibly left (``complete=False``), after ``max_batches`` batches or once ``max_seconds``
    have passed, so a huge backlog never outlives the task time limit; the caller runs it again.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    started = timer()
    with engine.connect() as conn, purge_guard(conn) as acquired:
        if not acquired:
            log.info("event purge skipped: another purge is running")
            return PurgeResult(ran=False)
        cutoff = clock.now() - timedelta(days=retention_days)
        result = PurgeResult(ran=True, cutoff=cutoff)
        by_status: Counter[str] = Counter()
        postgres = conn.dialect.name == "postgresql"
        while True:
            batch_started = timer()
            with conn.begin():
                counts = _delete_batch(conn, cutoff, batch_size, postgres)
            result.longest_batch_seconds = max(
                result.longest_batch_seconds, timer() - batch_started
            )
            result.batches += 1
            deleted = sum(counts.values())
            by_status.update(counts)
            result.deleted += deleted
            if deleted < batch_size:
                break
            out_of_batches = max_batches is not None and result.batches >= max_batches
            out_of_time = max_seconds is not None and timer() - started >= max_seconds
            if out_of_batches or out_of_time:
                result.complete = False
                break
            if pause_seconds > 0:
                sleep(pause_seconds)
    result.deleted_by_status = dict(by_status)
    result.elapsed_seconds = timer() - started
    if result.deleted or not result.complete:
        log.info(
            "event purge: deleted %d event(s) received before %s in %d batch(es) "
            "(longest %.3f s)%s",
            result.deleted,
            cutoff.isoformat(),
            result.batches,
            result.longest_batch_seconds,
            "" if result.complete else "; more remain",
        )
    return result


def _delete_batch(
    conn: Connection, cutoff: datetime, batch_size: int, postgres: bool
) -> Counter[str]:
    oldest = (
        select(_EVENTS.c.id)
        .where(_EVENTS.c.received_at < cutoff)
        .order_by(_EVENTS.c.received_at)
        .limit(batch_size)
    )
    if postgres:
        oldest = oldest.with_for_update(skip_locked=True)
    stmt = delete(_EVENTS).where(_EVENTS.c.id.in_(oldest.scalar_subquery()))
    if postgres:
        # Count in the database: one row per status instead of one per deleted event.
        deleted = stmt.returning(_EVENTS.c.status).cte("deleted")
        rows = conn.execute(select(deleted.c.status, func.count()).group_by(deleted.c.status))
        return Counter({str(status): int(n) for status, n in rows})
    return Counter(str(status) for (status,) in conn.execute(stmt.returning(_EVENTS.c.status)))


@contextmanager
def purge_guard(conn: Connection) -> Iterator[bool]:
    """Try to become the one running purge; yields whether it succeeded.

    ``conn`` must stay the same connection for the whole purge (the PostgreSQL advisory lock
    belongs to the database session, not to a transaction).
    """
    if conn.dialect.name == "postgresql":
        acquired = bool(
            conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": PURGE_LOCK_KEY}).scalar()
        )
        conn.commit()
        try:
            yield acquired
        finally:
            if acquired:
                _pg_unlock(conn)
        return
    database = conn.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        with _memory_locks_guard:
            lock = _memory_locks.setdefault(str(conn.engine.url), threading.Lock())
        acquired = lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()
        return
    fd = os.open(f"{database}.purge.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            acquired = True
        except BlockingIOError:
            acquired = False
        yield acquired  # closing the descriptor releases the lock
    finally:
        os.close(fd)


def _pg_unlock(conn: Connection) -> None:
    try:
        if conn.in_transaction():
            conn.rollback()
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PURGE_LOCK_KEY})
        conn.commit()
    except Exception:
        # Unlock failed (connection broken?): drop the connection so the lock goes with it
        # instead of staying held by a pooled connection.
        log.exception("could not release the purge lock; discarding the connection")
        conn.invalidate()
