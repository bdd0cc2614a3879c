"""Store, list and mark read a user's notifications; ask for the e-mail after commit.

A notification is one row. When SMTP is configured its ``email_status`` starts ``pending``
and :func:`notify` asks the unit of work to publish ``send_notification_email`` once the row
is committed (never before: the task would not find it; never on rollback: there is nothing
to send). The task (``worker/tasks/notifications.py``) moves the row to ``sent`` or
``failed``; a row left ``pending`` (the publish failed, the broker lost the message) is
published again by the beat safety net.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.errors import NotFound
from shared.infra.db.pagination import Page, paginate
from shared.infra.db.uow import UnitOfWork
from shared.infra.queues import QUEUE_NOTIFICATIONS, SEND_NOTIFICATION_EMAIL
from shared.models import Notification

__all__ = [
    "EMAIL_FAILED",
    "EMAIL_NONE",
    "EMAIL_PENDING",
    "EMAIL_SENT",
    "email_message",
    "list_notifications",
    "mark_read",
    "notify",
]

#: no SMTP was configured when the notification was made: never e-mailed
EMAIL_NONE = "none"
#: to be e-mailed (or being e-mailed) by the notifications task
EMAIL_PENDING = "pending"
#: the SMTP server accepted the message
EMAIL_SENT = "sent"
#: every attempt failed; not retried any more
EMAIL_FAILED = "failed"


def email_message(notification_id: uuid.UUID) -> tuple[str, tuple[str], str]:
    """The task message that e-mails one notification: ``uow.enqueue(*email_message(id))``."""
    return SEND_NOTIFICATION_EMAIL, (str(notification_id),), QUEUE_NOTIFICATIONS


def notify(
    uow: UnitOfWork,
    now: datetime,
    *,
    smtp_enabled: bool,
    user_id: uuid.UUID,
    kind: str,
    title: str,
    body: str,
    details: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Store a notification for ``user_id`` in the unit's transaction and return its id.

    With ``smtp_enabled`` (``settings.smtp_enabled``) it is e-mailed too: the e-mail task is
    published after the commit, on queue ``notifications``.
    """
    row = Notification(
        id=uuid.uuid4(),
        user_id=user_id,
        kind=kind,
        title=title[:500],
        body=body,
        details=dict(details or {}),
        created_at=now,
        read_at=None,
        email_status=EMAIL_PENDING if smtp_enabled else EMAIL_NONE,
        email_attempts=0,
        emailed_at=None,
    )
    uow.session.add(row)
    uow.session.flush()
    if smtp_enabled:
        uow.enqueue(*email_message(row.id))
    return row.id


def list_notifications(
    session: Session,
    user_id: uuid.UUID,
    *,
    unread_only: bool = False,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[Notification]:
    """The user's notifications, newest first, as a keyset page
    (``ix_notifications_user_created``)."""
    stmt = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    return paginate(
        session,
        stmt,
        kind="notifications",
        sort_col=Notification.created_at,
        id_col=Notification.id,
        limit=limit,
        cursor=cursor,
    )


def mark_read(
    session: Session, now: datetime, user_id: uuid.UUID, notification_id: uuid.UUID
) -> Notification:
    """Mark the user's notification read (idempotent: the first read time stays).

    Someone else's notification answers 404, like one that does not exist.
    """
    row = session.get(Notification, notification_id)
    if row is None or row.user_id != user_id:
        raise NotFound(f"notification {notification_id} not found", field="notification_id")
    if row.read_at is None:
        row.read_at = now
        session.flush()
    return row
