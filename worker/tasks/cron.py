"""Beat's cron dispatch tick: a thin wrapper around :func:`shared.cron.dispatch.dispatch_due`."""

from __future__ import annotations

from celery import shared_task

from shared.cron.dispatch import dispatch_due
from shared.infra.queues import DISPATCH_CRON, QUEUE_MAINTENANCE
from worker.tasks.base import AutomationsTask


@shared_task(
    name=DISPATCH_CRON,
    base=AutomationsTask,
    bind=True,
    queue=QUEUE_MAINTENANCE,
    periodic=True,
    autoretry_for=(),
)
def dispatch_cron(self: AutomationsTask) -> int:
    """Fire every due cron trigger once (idempotent; safe to run concurrently)."""
    rt = self.runtime
    fired = dispatch_due(self.unit_of_work, rt.clock, rt.settings.cron_dispatch_batch_size)
    return len(fired)
