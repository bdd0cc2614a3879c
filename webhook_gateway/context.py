"""What the gateway's views need, built once per process by the app factory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from celery import Celery
from flask import current_app
from sqlalchemy import Engine

from shared.infra.clock import Clock
from shared.infra.config import Settings
from shared.infra.db.uow import UnitOfWork
from shared.infra.runtime import Runtime
from webhook_gateway.auth_throttle import AuthThrottle


@dataclass
class Gateway:
    settings: Settings
    clock: Clock
    #: the process's engine (one pool), publisher and units of work
    runtime: Runtime
    #: failed authentications per client address (webhook_gateway.auth_throttle)
    auth_throttle: AuthThrottle = field(init=False)

    def __post_init__(self) -> None:
        self.auth_throttle = AuthThrottle.from_settings(self.settings)

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    @property
    def celery(self) -> Celery:
        return self.runtime.celery

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        with self.runtime.unit_of_work() as uow:
            yield uow

    def dispose(self) -> None:
        """Close every pooled database connection (tests, shutdown)."""
        self.runtime.dispose()


def gateway() -> Gateway:
    return current_app.extensions["automations"]  # type: ignore[no-any-return]
