"""``/automations/{automation_id}/events``: the event log (written by the system only)."""

from __future__ import annotations

import uuid

from shared.events import queries as event_queries
from shared.models import AutomationEvent
from webhook_gateway.api import schemas as s
from webhook_gateway.api.framework import Ctx, operation


def event_out(row: AutomationEvent) -> s.Event:
    return s.Event.model_validate(row, from_attributes=True)


@operation(
    "GET",
    "/automations/{automation_id}/events",
    summary="The automation's event log, newest first",
    tag="events",
    response=s.EventPage,
    query=s.EventListQuery,
    errors=s.READ_ERRORS,
)
def list_events(ctx: Ctx, automation_id: uuid.UUID) -> s.EventPage:
    """Filter by `status` (repeatable), `trigger_id` and `since` (inclusive) / `until`
    (exclusive) on the received time. Events are written by the system only."""
    q: s.EventListQuery = ctx.query
    page = event_queries.list_events(
        ctx.session,
        ctx.principal,
        automation_id,
        statuses=[str(x) for x in q.status] if q.status else None,
        trigger_id=q.trigger_id,
        since=q.since,
        until=q.until,
        limit=q.limit,
        cursor=q.cursor,
    )
    return s.EventPage(items=[event_out(e) for e in page.items], next_cursor=page.next_cursor)
