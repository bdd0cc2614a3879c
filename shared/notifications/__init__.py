"""Notifications (SPEC 11): stored per user, listed and marked read through the API, and
e-mailed once when SMTP is configured (:mod:`shared.notifications.mail`,
``worker/tasks/notifications.py``)."""

from shared.notifications.service import (
    EMAIL_FAILED,
    EMAIL_NONE,
    EMAIL_PENDING,
    EMAIL_SENT,
    list_notifications,
    mark_read,
    notify,
)

__all__ = [
    "EMAIL_FAILED",
    "EMAIL_NONE",
    "EMAIL_PENDING",
    "EMAIL_SENT",
    "list_notifications",
    "mark_read",
    "notify",
]
