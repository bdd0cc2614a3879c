"""A process's shared resources: settings, clock, engine, publisher, units of work.

The gateway, the worker, beat and the CLI each build one :class:`Runtime`. Resources are made
on first use, so a prefork child that calls :meth:`Runtime.reset_after_fork` gets its own
connections and never touches its parent's sockets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from celery import Celery
from sqlalchemy import Engine

from shared.infra.broker import Publisher, producer_app
from shared.infra.clock import Clock, clock_with_offset
from shared.infra.config import Settings
from shared.infra.db.engine import engine_from_settings
from shared.infra.db.uow import Database, TaskMessage, UnitOfWork


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        celery: Celery | None = None,
        engine: Engine | None = None,
        on_publish_failure: Callable[[Sequence[TaskMessage]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or clock_with_offset(settings.clock_offset_seconds)
        self.on_publish_failure = on_publish_failure
        self._celery = celery
        self._engine = engine
        self._db: Database | None = None

    @property
    def celery(self) -> Celery:
        if self._celery is None:
            self._celery = producer_app(self.settings)
        return self._celery

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            # No pre-ping: it costs a round trip per checkout. A connection that died
            # (database restart) raises OperationalError instead; SQLAlchemy then discards
            # the pool's older connections, and the caller's retry (503 + Retry-After, the
            # task's autoretry) gets a fresh one.
            self._engine = engine_from_settings(self.settings, pool_pre_ping=False)
        return self._engine

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.engine, Publisher(self.celery, self.on_publish_failure))
        return self._db

    @db.setter
    def db(self, db: Database) -> None:
        """Replace the units' database (tests bind it to a connection in a transaction)."""
        self._db = db

    @property
    def publisher(self) -> Publisher:
        return self.db.publisher  # type: ignore[return-value]

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        with self.db.unit() as uow:
            yield uow

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's connections (without closing them)."""
        if self._engine is not None:
            self._engine.dispose(close=False)
        self._db = None  # Celery resets its own broker pools after a fork

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
