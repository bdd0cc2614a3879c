"""Beat's maintenance jobs: the event retention purge (thin wrapper over shared.events)."""

from __future__ import annotations

from celery import shared_task

from shared.events.retention import purge_expired_events
from shared.infra.queues import PURGE_EVENTS, QUEUE_MAINTENANCE
from worker.tasks.base import AutomationsTask

#: Share of the task time limit one purge run may use before handing over to a fresh task.
PURGE_TIME_BUDGET = 0.5


@shared_task(
    name=PURGE_EVENTS,
    base=AutomationsTask,
    bind=True,
    queue=QUEUE_MAINTENANCE,
    periodic=True,
    autoretry_for=(),
)
def purge_events(self: AutomationsTask) -> int:
    """Delete expired events in batches; one run at a time (others return at once).

    Not one unit of work: the purge commits batch by batch on one connection, which holds the
    session-level guard lock for the whole run (shared.events.retention).
    """
    rt = self.runtime
    settings = rt.settings
    result = purge_expired_events(
        rt.engine,
        rt.clock,
        settings.event_retention_days,
        batch_size=settings.purge_batch_size,
        pause_seconds=settings.purge_pause_seconds,
        max_seconds=settings.task_time_limit_seconds * PURGE_TIME_BUDGET,
    )
    if not result.complete:
        # A backlog larger than one run: continue in a new task rather than outlive the
        # time limit. The guard was released on return, so the next run can take it.
        self.apply_async(queue=QUEUE_MAINTENANCE)
    return result.deleted
