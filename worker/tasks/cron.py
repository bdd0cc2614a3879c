"""Beat's cron dispatch tick: a thin wrapper around :func:`shared.cron.dispatch.dispatch_due`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from celery import Celery

from shared.cron.dispatch import dispatch_due
from shared.tasknames import DISPATCH_CRON, PROCESS_EVENT, QUEUE_EVENTS, QUEUE_MAINTENANCE
from worker.tasks.base import DbTask, Runtime

log = logging.getLogger(__name__)


def publish_events(runtime: Runtime, event_ids: Sequence[str]) -> None:
    """Publish ``process_event`` for each id over one broker connection (a batch may be 500)."""
    app = runtime.app
    with app.producer_or_acquire() as producer:
        for event_id in event_ids:
            app.send_task(PROCESS_EVENT, args=[event_id], queue=QUEUE_EVENTS, producer=producer)


def register(app: Celery) -> None:
    @app.task(name=DISPATCH_CRON, base=DbTask, bind=True, queue=QUEUE_MAINTENANCE)
    def dispatch_cron(self: DbTask) -> int:
        """Fire every due cron trigger once (idempotent; safe to run concurrently)."""
        runtime = self.runtime
        fired = dispatch_due(
            runtime.session_factory,
            runtime.clock,
            runtime.settings.cron_dispatch_batch_size,
            publish=lambda ids: publish_events(runtime, ids),
        )
        return len(fired)
