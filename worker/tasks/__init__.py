"""The worker's tasks: module-level functions on :class:`worker.tasks.base.AutomationsTask`,
one module per domain. Importing this package registers them with every Celery app."""

from __future__ import annotations

from worker.tasks import base, chats, cron, events, lifecycle, maintenance, notifications

__all__ = [
    "base",
    "chats",
    "cron",
    "events",
    "lifecycle",
    "maintenance",
    "notifications",
]
