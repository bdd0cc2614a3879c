"""Beat's chat lifecycle jobs (SPEC 11): auto-archive and chat retention.

Thin wrappers over :mod:`shared.chats.archive` and :mod:`shared.chats.retention`. Not one unit
of work each: a run commits batch by batch (every transaction short), and holds the job's
one-run-at-a-time guard for the whole run, so a tick that overlaps a slow run, or an operator's
``automations jobs run``, returns at once having done nothing.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from shared.chats.archive import auto_archive
from shared.chats.retention import delete_expired_chats
from shared.infra.queues import AUTO_ARCHIVE, CHAT_RETENTION, QUEUE_MAINTENANCE
from worker.tasks.base import AutomationsTask

#: Share of the task time limit one run may use before handing over to a fresh task.
TIME_BUDGET = 0.5


@shared_task(
    name=AUTO_ARCHIVE,
    base=AutomationsTask,
    bind=True,
    queue=QUEUE_MAINTENANCE,
    periodic=True,
    autoretry_for=(),
)
def auto_archive_task(self: AutomationsTask) -> dict[str, Any]:
    """Archive inactive root chats and their descendants; one digest per owner."""
    rt = self.runtime
    result = auto_archive(
        rt.engine,
        rt.unit_of_work,
        rt.clock,
        smtp_enabled=rt.settings.smtp_enabled,
        max_seconds=rt.settings.task_time_limit_seconds * TIME_BUDGET,
    )
    if not result.complete:  # a backlog larger than one run: continue in a new task
        self.apply_async(queue=QUEUE_MAINTENANCE)
    return result.as_dict()


@shared_task(
    name=CHAT_RETENTION,
    base=AutomationsTask,
    bind=True,
    queue=QUEUE_MAINTENANCE,
    periodic=True,
    autoretry_for=(),
)
def chat_retention_task(self: AutomationsTask) -> dict[str, Any]:
    """Delete archived chats past ``chat_retention_days``, descendants included."""
    rt = self.runtime
    result = delete_expired_chats(
        rt.engine,
        rt.unit_of_work,
        rt.clock,
        max_seconds=rt.settings.task_time_limit_seconds * TIME_BUDGET,
    )
    if not result.complete:
        self.apply_async(queue=QUEUE_MAINTENANCE)
    return result.as_dict()
