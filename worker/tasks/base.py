"""The task base class: it owns the database session and the transaction.

Business code receives a session and a clock, never commits, and asks for work that must
happen after commit (publishing follow-up tasks) through ``after_commit``.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from celery import Celery, Task
from celery.signals import worker_process_init
from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from shared.infra.broker import EventPublisher, make_publisher
from shared.infra.clock import Clock, system_clock
from shared.infra.config import Settings
from shared.infra.db.engine import POOL_RECYCLE_SECONDS, engine_from_settings, make_session_factory
from shared.infra.db.prepared_tx import PreparedTransaction, prepared_transaction
from shared.infra.queues import PING

log = logging.getLogger(__name__)

#: Database failures that say nothing about the work itself: retry rather than fail it.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # connection pool exhausted
)

P = ParamSpec("P")
R = TypeVar("R")


def is_transient_db_error(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT_DB_ERRORS):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def periodic_tick(fn: Callable[P, R]) -> Callable[P, R | None]:
    """For beat's ticks: one that cannot reach the database is simply done again by the next
    tick, so it logs one warning line instead of a traceback every few seconds."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not is_transient_db_error(exc):
                raise
            first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            log.warning(
                "%s skipped: database unavailable (%s: %s)",
                fn.__name__,
                type(exc).__name__,
                first_line,
            )
            return None

    return wrapper


class Runtime:
    """Per-process resources of a Celery app, created lazily (after any fork)."""

    def __init__(self, app: Celery, settings: Settings, clock: Clock = system_clock) -> None:
        self.app = app
        self.settings = settings
        self.clock = clock
        self._engine: Engine | None = None
        self._factory: sessionmaker[Session] | None = None
        self._publisher: EventPublisher | None = None
        self._local = threading.local()  # the event task's connection, per thread

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            # No pre-ping: it costs a round trip per task. A connection that died (database
            # restart) raises OperationalError instead; SQLAlchemy then discards the pool's
            # connections and the task's retry gets a fresh one.
            self._engine = engine_from_settings(self.settings, pool_pre_ping=False)
            self._factory = make_session_factory(self._engine)
        return self._engine

    @property
    def session_factory(self) -> sessionmaker[Session]:
        _ = self.engine
        assert self._factory is not None
        return self._factory

    @property
    def publisher(self) -> EventPublisher:
        if self._publisher is None:
            self._publisher = make_publisher(self.app)
        return self._publisher

    def reset_after_fork(self) -> None:
        if self._engine is not None:
            self._engine.dispose(close=False)
        self._local = threading.local()  # the parent's connection stays the parent's
        self._engine = None
        self._factory = None
        self._publisher = None  # its connection pool belongs to the parent

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        uow = UnitOfWork(self.session_factory())
        try:
            yield uow
            uow.session.commit()
        except BaseException:
            uow.session.rollback()
            raise
        finally:
            uow.session.close()
        uow.run_after_commit()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A Core connection in one transaction, committed on success and rolled back on an
        error, like :meth:`transaction`, without an ORM session's bookkeeping (begin, flush
        checks, identity map, close: about 80 µs of CPU for Core-only work)."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def event_transaction(self) -> Iterator[Connection | PreparedTransaction]:
        """The per-event task's transaction, committed on success and rolled back on an
        error: on PostgreSQL with prepared statements a :class:`PreparedTransaction` (its
        statements are all prepared; ``BEGIN`` and ``COMMIT`` travel with the first and the
        last of them), else :meth:`connection`."""
        if self.engine.dialect.name == "postgresql" and self.settings.db_prepared_statements:
            with prepared_transaction(self._event_connection()) as tx:
                yield tx
        else:
            with self.connection() as conn:
                yield conn

    def _event_connection(self) -> Connection:
        """The event task's connection, kept checked out between its tasks (a pool process
        runs one at a time; per thread for a thread pool): checking a connection out of the
        pool and back in costs about 0.1 ms of CPU per event. Replaced after
        :data:`POOL_RECYCLE_SECONDS` like the pool's own; one found dead is invalidated by
        the failing statement and reconnects on its next use."""
        local = self._local
        conn: Connection | None = getattr(local, "conn", None)
        now = time.monotonic()
        if conn is not None and (conn.closed or now - local.since > POOL_RECYCLE_SECONDS):
            conn.close()
            conn = None
        if conn is None:
            conn = local.conn = self.engine.connect()
            local.since = now
        return conn

    def publish_events(self, event_ids: Sequence[str]) -> None:
        self.publisher.publish_many(event_ids)


class UnitOfWork:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._after: list[Callable[[], Any]] = []

    def after_commit(self, fn: Callable[[], Any]) -> None:
        self._after.append(fn)

    def run_after_commit(self) -> None:
        for fn in self._after:
            try:
                fn()
            except Exception:  # the sweeper re-publishes whatever this failed to publish
                log.exception("after-commit action failed")


def runtime_of(app: Celery) -> Runtime:
    rt = getattr(app, "automations_runtime", None)
    if rt is None:
        rt = Runtime(app, app.conf["automations_settings"])
        app.automations_runtime = rt  # type: ignore[attr-defined]
    return rt


class DbTask(Task):  # type: ignore[misc]
    """Base for tasks that touch the database: ``with self.transaction() as uow`` (an ORM
    session), or ``with self.connection() as conn`` (Core only)."""

    abstract = True

    @property
    def runtime(self) -> Runtime:
        return runtime_of(self.app)

    def transaction(self) -> Any:
        return self.runtime.transaction()

    def connection(self) -> Any:
        return self.runtime.connection()

    def event_transaction(self) -> Any:
        return self.runtime.event_transaction()


def register(app: Celery) -> None:
    @app.task(name=PING, base=DbTask, bind=True, ignore_result=False)
    def ping(self: DbTask) -> str:
        """Liveness probe for workers: answers when the worker and its database answer."""
        with self.transaction() as uow:
            uow.session.connection().exec_driver_sql("SELECT 1")
        return "pong"

    @worker_process_init.connect(weak=False)
    def _reset(**_: Any) -> None:
        rt = getattr(app, "automations_runtime", None)
        if rt is not None:
            rt.reset_after_fork()
        lower_pool_priority(app.conf["automations_settings"].worker_pool_nice)


def lower_pool_priority(nice: int) -> None:
    """Run this prefork pool process ``nice`` steps nicer than the worker's main process.

    The main process hands every message to a pool process and acknowledges it to the
    broker, one at a time: when the pool processes (and PostgreSQL) keep the CPUs busy, it
    waits in the run queue and every pool process idles until it gets its next message. With
    the pool processes at a lower priority the dispatcher runs as soon as it has work (on 2
    vCPUs, medians of 3 rounds: 500 instead of 422 events/s, docs/performance.md). Relative
    to the parent and absolute, so applying it twice changes nothing.
    """
    if nice <= 0:
        return
    try:
        parent = os.getpriority(os.PRIO_PROCESS, os.getppid())
        os.setpriority(os.PRIO_PROCESS, 0, min(parent + nice, 19))
    except OSError as exc:  # not permitted here: keep the inherited priority
        log.warning("could not lower the pool process priority: %s", exc)
