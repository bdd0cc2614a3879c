"""``/automations/{automation_id}/events``: the event log (written by the system only)."""

from __future__ import annotations

import uuid

from shared.events import queries as event_queries
from shared.events import replay
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


@operation(
    "POST",
    "/automations/{automation_id}/events/{event_id}/replay",
    summary="Replay one event through the pipeline as configured now",
    tag="events",
    response=s.ReplayAccepted,
    status=202,
    errors=(*s.WRITE_ERRORS, 409),
)
def replay_event(ctx: Ctx, automation_id: uuid.UUID, event_id: uuid.UUID) -> s.ReplayAccepted:
    """A new `pending` event with the stored payload, headers and event type and
    `replay_of` the original; limits apply. 409 `payload_truncated` when the stored payload
    was truncated, 409 `trigger_deleted` when its trigger is gone."""
    new_id = replay.replay_event(ctx.uow, ctx.clock, ctx.principal, automation_id, event_id)
    return s.ReplayAccepted(event_id=new_id)


@operation(
    "POST",
    "/automations/{automation_id}/events/replay",
    summary="Replay the events matching the event list's filters",
    tag="events",
    response=s.BulkReplayResult,
    body=s.BulkReplayRequest,
    errors=s.WRITE_ERRORS,
)
def replay_events(ctx: Ctx, automation_id: uuid.UUID) -> s.BulkReplayResult:
    """Oldest first, each matching event once, at most 10,000 a call; events that cannot be
    replayed are skipped and counted. With `dry_run` nothing is written: the answer only
    counts."""
    body: s.BulkReplayRequest = ctx.body
    filters = replay.EventFilters(
        statuses=tuple(body.status or ()),
        trigger_id=body.trigger_id,
        since=body.since,
        until=body.until,
    )
    result = replay.replay_events(
        ctx.uow, ctx.clock, ctx.principal, automation_id, filters, dry_run=body.dry_run
    )
    return s.BulkReplayResult(
        dry_run=body.dry_run,
        matched=result.matched,
        skipped=result.skipped,
        replayed=result.replayed,
        event_ids=result.event_ids,
    )
