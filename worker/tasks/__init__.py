"""Task registration. Each module holds one domain's thin tasks and a ``register(app)``."""

from __future__ import annotations

from celery import Celery

from worker.tasks import base, cron, events, maintenance


def register(app: Celery) -> None:
    base.register(app)
    events.register(app)
    cron.register(app)
    maintenance.register(app)
