"""Beat's cron dispatch tick: a thin wrapper around :func:`shared.cron.dispatch.dispatch_due`."""

from __future__ import annotations

import logging

from celery import Celery

from shared.cron.dispatch import dispatch_due
from shared.infra.queues import DISPATCH_CRON, QUEUE_MAINTENANCE
from worker.tasks.base import DbTask, periodic_tick

log = logging.getLogger(__name__)


def register(app: Celery) -> None:
    @app.task(name=DISPATCH_CRON, base=DbTask, bind=True, queue=QUEUE_MAINTENANCE)
    @periodic_tick
    def dispatch_cron(self: DbTask) -> int:
        """Fire every due cron trigger once (idempotent; safe to run concurrently)."""
        runtime = self.runtime
        fired = dispatch_due(
            runtime.session_factory,
            runtime.clock,
            runtime.settings.cron_dispatch_batch_size,
            publish=runtime.publish_events,
        )
        return len(fired)
