"""The unit of work: one transaction, and what must happen only once it committed.

Every writer (API views, webhook ingress, tasks, cron dispatch, the sweeper, the CLI) opens
one with :meth:`Database.unit`, does its work through ``uow.connection`` (Core) or
``uow.session`` (ORM; both share the one transaction), and asks for follow-up work with
:meth:`UnitOfWork.enqueue` (a Celery task) or :meth:`UnitOfWork.after_commit` (anything
else). Business code never commits: leaving the ``with`` block commits, an exception rolls
back, and only after a successful commit are the queued tasks published, in one batch, and
the hooks run. This is warehouse's ``request.tm`` with ``addAfterCommitHook``.

A failure after the commit (the broker is down) never undoes the commit: it is logged, and
the sweeper re-publishes events left ``pending`` (SPEC 4).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

__all__ = ["Database", "TaskMessage", "TaskPublisher", "UnitOfWork", "Units"]

log = logging.getLogger(__name__)


class TaskMessage(NamedTuple):
    """A task to publish after commit: its name, positional args and queue."""

    name: str
    args: tuple[Any, ...]
    queue: str


class TaskPublisher(Protocol):
    def publish(self, messages: Sequence[TaskMessage]) -> None:
        """Send the messages, in order, in one batch; raises when the broker fails."""


class UnitOfWork:
    """One database transaction (opened on first use) plus its after-commit work.

    Bound to an engine, the unit checks a connection out and runs its own transaction. Bound
    to a connection that is already in a transaction (tests; composing with a caller's
    transaction), the unit is a SAVEPOINT on it, and "commit" releases the savepoint.
    """

    def __init__(self, bind: Engine | Connection) -> None:
        self._bind = bind
        self._nested: Any = None
        self._conn: Connection | None = None
        self._session: Session | None = None
        self._messages: list[TaskMessage] = []
        self._hooks: list[Callable[[], Any]] = []

    @property
    def connection(self) -> Connection:
        """The transaction's Core connection (checked out of the pool on first use)."""
        if self._conn is None:
            if isinstance(self._bind, Connection):
                self._nested = self._bind.begin_nested()
                self._conn = self._bind
            else:
                conn = self._bind.connect()
                conn.begin()
                self._conn = conn
        return self._conn

    @property
    def session(self) -> Session:
        """An ORM session in the same transaction: it flushes before the commit and never
        commits or rolls back by itself."""
        if self._session is None:
            self._session = Session(
                bind=self.connection,
                expire_on_commit=False,
                autoflush=True,
                join_transaction_mode="rollback_only",
            )
        return self._session

    def enqueue(self, name: str, args: Sequence[Any], queue: str) -> None:
        """Publish this task once the transaction committed (never if it rolls back)."""
        self._messages.append(TaskMessage(name, tuple(args), queue))

    def after_commit(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` once the transaction committed, after the queued tasks went out."""
        self._hooks.append(fn)

    def commit(self) -> None:
        if self._session is not None:
            self._session.flush()
        if self._nested is not None:
            self._nested.commit()
        elif self._conn is not None:
            self._conn.commit()

    def rollback(self) -> None:
        self._messages.clear()
        self._hooks.clear()
        if self._nested is not None:
            if self._nested.is_active:
                self._nested.rollback()
        elif self._conn is not None:
            self._conn.rollback()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._conn is not None and self._nested is None:
            try:
                self._conn.close()
            except Exception:
                # Returning a connection whose server went away can fail while the pool
                # resets it (psycopg2 raises from set_isolation_level on a dead socket). The
                # unit's own outcome stands (committed, or its error propagates): discard
                # the connection instead of letting checkin mask that outcome.
                log.debug("discarding a connection that failed to close", exc_info=True)
                try:
                    self._conn.invalidate()
                except Exception:
                    pass
        self._conn = None
        self._nested = None

    def run_after_commit(self, publisher: TaskPublisher | None) -> None:
        messages, self._messages = self._messages, []
        hooks, self._hooks = self._hooks, []
        if messages:
            if publisher is None:
                log.warning("no publisher: %d task(s) not published", len(messages))
            else:
                try:
                    publisher.publish(messages)
                except Exception as exc:  # the sweeper re-publishes pending events
                    log.warning(
                        "publishing %d task(s) after commit failed (%s: %s); events stay "
                        "pending for the sweeper",
                        len(messages),
                        type(exc).__name__,
                        str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "",
                    )
        for fn in hooks:
            try:
                fn()
            except Exception:
                log.exception("after-commit action failed")


class Database:
    """An engine (or an outer connection, see :class:`UnitOfWork`) and the publisher its
    units of work publish through."""

    def __init__(self, bind: Engine | Connection, publisher: TaskPublisher | None = None) -> None:
        self.bind = bind
        self.publisher = publisher

    @contextmanager
    def unit(self) -> Iterator[UnitOfWork]:
        """A unit of work: commit on success, roll back on an exception, then publish.

        Always a real transaction: an autocommit checkout (``isolation_level`` as an execution
        option) would save BEGIN/COMMIT for single-statement units, but SQLAlchemy resets
        that option when the connection is checked in, and on a connection whose server died
        the reset raises before the connection is returned, leaking a pool slot.
        """
        uow = UnitOfWork(self.bind)
        try:
            yield uow
            uow.commit()
        except BaseException:
            try:
                uow.rollback()
            except Exception:  # the connection is gone: closing discards it
                pass
            raise
        finally:
            uow.close()
        uow.run_after_commit(self.publisher)


#: Opens a unit of work: ``Database.unit``, ``Runtime.unit_of_work``, a task's
#: ``unit_of_work``. Code that needs several transactions (batches) takes one of these.
Units = Callable[[], AbstractContextManager[UnitOfWork]]
