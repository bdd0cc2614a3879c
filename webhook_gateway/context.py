"""What the gateway's views need, built once per process by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.infra.clock import Clock
from shared.infra.config import Settings


@dataclass
class Gateway:
    settings: Settings
    clock: Clock
    #: transactional: the management API, health checks, bad-signature records
    engine: Engine
    session_factory: sessionmaker[Session]
    celery: Celery
    #: the webhook hot path (trigger lookups, event inserts): on PostgreSQL a pool of its own
    #: in autocommit mode, so each single-statement write commits as it returns, without
    #: BEGIN and COMMIT round trips or switching a connection's mode per request; on SQLite
    #: the same engine as ``engine``.
    ingest_engine: Engine

    def dispose(self) -> None:
        """Close every pooled database connection (tests, shutdown)."""
        self.engine.dispose()
        if self.ingest_engine is not self.engine:
            self.ingest_engine.dispose()


def gateway() -> Gateway:
    return current_app.extensions["automations"]  # type: ignore[no-any-return]
