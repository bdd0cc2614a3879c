"""E-mail a notification once; publish again the e-mails nobody sent (beat).

``send_notification_email`` is sent once per notification, in one transaction:

1. claim: lock the row if it is still ``pending`` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL:
   a duplicate task running at the same time skips it; on SQLite every write transaction
   holds the single writer lock from BEGIN IMMEDIATE, so duplicates queue up) and count the
   attempt;
2. hand the message to the SMTP server (bounded by ``SMTP_TIMEOUT_SECONDS`` per operation);
3. mark the row ``sent`` with ``emailed_at``; commit.

A redelivered or duplicated task then finds the row ``sent`` (or ``failed``) and does
nothing. A transient failure (server down, 4xx) commits the counted attempt and retries with
Celery's exponential back-off; once ``MAX_EMAIL_ATTEMPTS`` attempts (counted on the row, so
duplicates share the budget) have failed, or at once on a permanent failure (5xx, refused
configuration), the row becomes ``failed``.

The remaining at-least-once window: the process dies (or the database goes away) after the
server accepted the message and before the commit. The row is still ``pending`` and is sent
again by the redelivered task or the safety net, with the same Message-ID
(:func:`shared.notifications.mail.message_id`), so receivers can drop the copy.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from celery import shared_task
from sqlalchemy import select, update

from shared.errors import TransientDatabaseError, describe_error
from shared.infra.queues import (
    QUEUE_MAINTENANCE,
    QUEUE_NOTIFICATIONS,
    REQUEUE_NOTIFICATION_EMAILS,
    SEND_NOTIFICATION_EMAIL,
)
from shared.models import Notification, User
from shared.notifications.mail import MailError, build_message, parse_smtp_url, send_message
from shared.notifications.service import (
    EMAIL_FAILED,
    EMAIL_PENDING,
    EMAIL_SENT,
    email_message,
)
from worker.tasks.base import AutomationsTask

log = logging.getLogger(__name__)

#: send attempts per notification (counted on the row) before it is ``failed``
MAX_EMAIL_ATTEMPTS = 8
#: a ``pending`` notification older than this was lost (publish failed, message dropped, the
#: retry chain died with its worker): the safety net publishes it again. Longer than a whole
#: retry chain (8 attempts, back-off doubling from 1 s, capped at 300 s: under 10 minutes).
REQUEUE_AFTER = timedelta(minutes=15)
#: notifications the safety net publishes again per tick
REQUEUE_BATCH = 500


class MailRetry(Exception):
    """A transient send failure, counted on the row: the declarative policy retries it."""


@shared_task(
    name=SEND_NOTIFICATION_EMAIL,
    base=AutomationsTask,
    bind=True,
    queue=QUEUE_NOTIFICATIONS,
    acks_late=True,
    autoretry_for=(MailRetry, TransientDatabaseError),
    retry_backoff=True,
    retry_backoff_max=300,
    retry_jitter=True,
    # the row's MAX_EMAIL_ATTEMPTS decides when a mail failure is final; these extra
    # retries are for a database that is away (no attempt is counted then)
    max_retries=MAX_EMAIL_ATTEMPTS + 4,
)
def send_notification_email(self: AutomationsTask, notification_id: str) -> str:
    """E-mail one notification unless it was already sent; the outcome, for logs and tests."""
    try:
        nid = uuid.UUID(str(notification_id))
    except ValueError:
        log.error("send_notification_email: not a notification id: %r", notification_id)
        return "invalid"
    settings = self.runtime.settings
    if not settings.smtp_enabled:  # configured away since: leave it pending for later
        log.warning("notification %s not e-mailed: AUTOMATIONS_SMTP_URL is not set", nid)
        return "disabled"
    target = parse_smtp_url(settings.smtp_url)
    clock = self.runtime.clock
    failure: MailError | None = None
    with self.unit_of_work() as uow:
        conn = uow.connection
        if conn.dialect.name == "postgresql":
            locked = conn.execute(
                select(Notification.id)
                .where(Notification.id == nid, Notification.email_status == EMAIL_PENDING)
                .with_for_update(skip_locked=True)
            ).scalar_one_or_none()
            if locked is None:
                return "skipped"  # sent, failed, gone, or another task is sending it now
        row = conn.execute(
            update(Notification)
            .where(Notification.id == nid, Notification.email_status == EMAIL_PENDING)
            .values(email_attempts=Notification.email_attempts + 1)
            .returning(
                Notification.email_attempts,
                Notification.title,
                Notification.body,
                Notification.created_at,
                Notification.user_id,
            )
        ).one_or_none()
        if row is None:
            return "skipped"
        attempts, title, body, created_at, user_id = row
        user = conn.execute(select(User.email, User.active).where(User.id == user_id)).one_or_none()
        if user is None or not user.active or not user.email:
            failure = MailError("the user is inactive or has no e-mail address", transient=False)
        else:
            try:
                message = build_message(
                    notification_id=nid,
                    sender=settings.smtp_from,
                    recipient=user.email,
                    subject=title,
                    body=body,
                    created_at=created_at,
                )
                send_message(target, message)
            except MailError as exc:
                failure = exc
            except Exception as exc:  # e.g. an address the e-mail package refuses: final,
                # or the row would stay pending and come back with every safety-net tick
                log.exception("notification %s: could not build or send the e-mail", nid)
                failure = MailError(describe_error(exc), transient=False)
        if failure is None:
            status = EMAIL_SENT
        elif failure.transient and attempts < MAX_EMAIL_ATTEMPTS:
            status = EMAIL_PENDING
        else:
            status = EMAIL_FAILED
        values: dict[str, Any] = {"email_status": status}
        if status == EMAIL_SENT:
            values["emailed_at"] = clock.now()
        conn.execute(update(Notification).where(Notification.id == nid).values(**values))
    if failure is None:
        log.info("notification %s e-mailed (attempt %d)", nid, attempts)
        return EMAIL_SENT
    if status == EMAIL_FAILED:
        log.error("notification %s not e-mailed after %d attempt(s): %s", nid, attempts, failure)
        return EMAIL_FAILED
    log.warning(
        "notification %s: e-mail attempt %d/%d failed (%s); retrying",
        nid,
        attempts,
        MAX_EMAIL_ATTEMPTS,
        failure,
    )
    raise MailRetry(str(failure))


@shared_task(
    name=REQUEUE_NOTIFICATION_EMAILS,
    base=AutomationsTask,
    bind=True,
    queue=QUEUE_MAINTENANCE,
    periodic=True,
    autoretry_for=(),
)
def requeue_notification_emails(self: AutomationsTask) -> int:
    """Publish again the e-mails of notifications still ``pending`` after ``REQUEUE_AFTER``
    (their message was lost); the claim makes a duplicate harmless."""
    rt = self.runtime
    if not rt.settings.smtp_enabled:
        return 0
    cutoff = rt.clock.now() - REQUEUE_AFTER
    with self.unit_of_work() as uow:
        ids = (
            uow.connection.execute(
                select(Notification.id)
                .where(Notification.email_status == EMAIL_PENDING)
                .where(Notification.created_at < cutoff)
                .order_by(Notification.created_at)
                .limit(REQUEUE_BATCH)
            )
            .scalars()
            .all()
        )
        for nid in ids:
            uow.enqueue(*email_message(nid))
    if ids:
        log.info("notifications: published %d pending e-mail(s) again", len(ids))
    return len(ids)
