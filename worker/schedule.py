"""The beat schedule, in one place: every periodic job, its interval and its queue."""

from __future__ import annotations

from typing import Any

from shared.infra.config import Settings
from shared.infra.queues import (
    AUTO_ARCHIVE,
    CHAT_RETENTION,
    DISPATCH_CRON,
    PURGE_EVENTS,
    QUEUE_MAINTENANCE,
    RECOVER_CHATS,
    REQUEUE_NOTIFICATION_EMAILS,
    SWEEP_PENDING_EVENTS,
)


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    def job(task: str, every: float) -> dict[str, Any]:
        # Expire a tick that was not picked up before the next one is due: ticks are
        # idempotent, so a backlog of them after an outage is pure waste.
        return {
            "task": task,
            "schedule": every,
            "options": {"queue": QUEUE_MAINTENANCE, "expires": every},
        }

    return {
        "sweep-pending-events": job(SWEEP_PENDING_EVENTS, settings.sweeper_interval_seconds),
        "dispatch-cron": job(DISPATCH_CRON, settings.cron_dispatch_interval_seconds),
        "purge-events": job(PURGE_EVENTS, settings.purge_interval_seconds),
        "recover-chats": job(RECOVER_CHATS, settings.recover_chats_interval_seconds),
        "auto-archive": job(AUTO_ARCHIVE, settings.auto_archive_interval_seconds),
        "chat-retention": job(CHAT_RETENTION, settings.chat_retention_interval_seconds),
        # a safety net for e-mails whose task was lost (it does nothing without SMTP)
        "requeue-notification-emails": job(REQUEUE_NOTIFICATION_EMAILS, 300.0),
    }
