"""Beat's maintenance jobs: the event retention purge (thin wrapper over shared.maintenance)."""

from __future__ import annotations

from celery import Celery

from shared.events.retention import purge_expired_events
from shared.infra.queues import PURGE_EVENTS, QUEUE_MAINTENANCE
from worker.tasks.base import DbTask, periodic_tick

#: Share of the task time limit one purge run may use before handing over to a fresh task.
PURGE_TIME_BUDGET = 0.5


def register(app: Celery) -> None:
    @app.task(name=PURGE_EVENTS, base=DbTask, bind=True, queue=QUEUE_MAINTENANCE)
    @periodic_tick
    def purge_events(self: DbTask) -> int:
        """Delete expired events in batches; one run at a time (others return at once)."""
        runtime = self.runtime
        settings = runtime.settings
        result = purge_expired_events(
            runtime.engine,
            runtime.clock,
            settings.event_retention_days,
            batch_size=settings.purge_batch_size,
            pause_seconds=settings.purge_pause_seconds,
            max_seconds=settings.task_time_limit_seconds * PURGE_TIME_BUDGET,
        )
        if not result.complete:
            # A backlog larger than one run: continue in a new task rather than outlive the
            # time limit. The guard was released on return, so the next run can take it.
            app.send_task(PURGE_EVENTS, queue=QUEUE_MAINTENANCE)
        return result.deleted
