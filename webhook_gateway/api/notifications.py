"""``/notifications``: the caller's own notifications (SPEC 11 "Notifications").

Everyone sees only their own, whatever their role (someone else's is 404, as if it did not
exist); any token of the user may read and mark them read."""

from __future__ import annotations

import uuid

from shared.models import Notification as NotificationRow
from shared.notifications import service as notifications
from webhook_gateway.api import schemas as s
from webhook_gateway.api.framework import Ctx, operation


def notification_out(row: NotificationRow) -> s.Notification:
    return s.Notification.model_validate(row, from_attributes=True)


@operation(
    "GET",
    "/notifications",
    summary="Your notifications, newest first",
    tag="notifications",
    response=s.NotificationPage,
    query=s.NotificationListQuery,
    errors=s.READ_ERRORS,
)
def list_notifications(ctx: Ctx) -> s.NotificationPage:
    """`unread=true`: only those not marked read."""
    q: s.NotificationListQuery = ctx.query
    page = notifications.list_notifications(
        ctx.session,
        ctx.principal.user_id,
        unread_only=bool(q.unread),
        cursor=q.cursor,
        limit=q.limit,
    )
    return s.NotificationPage(
        items=[notification_out(n) for n in page.items], next_cursor=page.next_cursor
    )


@operation(
    "POST",
    "/notifications/{notification_id}/read",
    summary="Mark one of your notifications read",
    tag="notifications",
    response=s.Notification,
    errors=(401, 404, 429, 503),
)
def mark_notification_read(ctx: Ctx, notification_id: uuid.UUID) -> s.Notification:
    """Idempotent: the first read time stays. Someone else's notification is 404."""
    row = notifications.mark_read(
        ctx.session, ctx.clock.now(), ctx.principal.user_id, notification_id
    )
    return notification_out(row)
