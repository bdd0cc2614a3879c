"""The management API's routes. Each view translates to one :mod:`shared.automations` call."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from shared.automations import dry_run
from shared.automations import service as automations
from shared.chats import queries as chat_queries
from shared.events import queries as event_queries
from shared.models import Automation as AutomationRow
from shared.models import AutomationEvent, AutomationTrigger, Organization, TriggerType
from shared.models import Chat as ChatRow
from shared.models import ChatMessage as ChatMessageRow
from shared.triggers import service as triggers
from webhook_gateway.api import schemas as s
from webhook_gateway.api.framework import Ctx, operation

READ = (400, 401, 403, 404, 503)
WRITE = (400, 401, 403, 404, 413, 415, 503)


# Serialisers ------------------------------------------------------------------------------


def automation_out(row: AutomationRow) -> s.Automation:
    return s.Automation.model_validate(row, from_attributes=True)


def trigger_out(ctx: Ctx, row: AutomationTrigger) -> dict[str, Any]:
    return {
        "id": row.id,
        "automation_id": row.automation_id,
        "type": row.type,
        "webhook_url": ctx.webhook_url(row.id) if row.type is TriggerType.WEBHOOK else None,
        "cron_schedule": row.cron_schedule,
        "next_fire_at": row.next_fire_at,
        "last_triggered_at": row.last_triggered_at,
        "filter": row.filter or {},
        "label_paths": row.label_paths or {},
        "previous_secret_expires_at": row.previous_secret_expires_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def event_out(row: AutomationEvent) -> s.Event:
    return s.Event.model_validate(row, from_attributes=True)


def chat_out(row: ChatRow) -> s.Chat:
    return s.Chat.model_validate(row, from_attributes=True)


def message_out(row: ChatMessageRow) -> s.ChatMessage:
    return s.ChatMessage.model_validate(row, from_attributes=True)


# Users ------------------------------------------------------------------------------------


@operation("GET", "/users/me", summary="The caller", tag="users", response=s.Me, errors=READ)
def get_me(ctx: Ctx) -> s.Me:
    """The authenticated user, their organizations and roles, and the token's scopes."""
    p = ctx.principal
    orgs = []
    if p.memberships:
        rows = ctx.session.execute(
            select(Organization.id, Organization.name)
            .where(Organization.id.in_(list(p.memberships)))
            .order_by(Organization.name)
        ).all()
        orgs = [
            s.OrganizationMembership(id=oid, name=name, role=p.memberships[oid])
            for oid, name in rows
        ]
    return s.Me(
        id=p.user_id,
        email=p.email,
        site_role=p.site_role,
        organizations=orgs,
        scopes=sorted(p.scopes),
    )


# Automations ------------------------------------------------------------------------------


@operation(
    "POST",
    "/automations",
    summary="Create an automation",
    tag="automations",
    response=s.Automation,
    status=201,
    body=s.AutomationCreate,
    errors=(*WRITE, 409),
)
def create_automation(ctx: Ctx) -> s.Automation:
    """New automations start `disabled`. The name is unique per owner and organization (409)."""
    fields = ctx.body.model_dump(include=ctx.body_fields)
    fields["organization_id"] = ctx.body.organization_id
    row = automations.create_automation(ctx.session, ctx.clock, ctx.principal, fields)
    return automation_out(row)


@operation(
    "GET",
    "/automations",
    summary="List automations",
    tag="automations",
    response=s.AutomationPage,
    query=s.AutomationListQuery,
    errors=READ,
)
def list_automations(ctx: Ctx) -> s.AutomationPage:
    """The caller's own automations; with `organization_id`, the whole organization for its
    org-admins and site-admins (members still see only their own)."""
    q: s.AutomationListQuery = ctx.query
    page = automations.list_automations(
        ctx.session,
        ctx.principal,
        organization_id=q.organization_id,
        status=q.status,
        name=q.name,
        limit=q.limit,
        cursor=q.cursor,
    )
    return s.AutomationPage(
        items=[automation_out(r) for r in page.items], next_cursor=page.next_cursor
    )


@operation(
    "GET",
    "/automations/{automation_id}",
    summary="Get an automation",
    tag="automations",
    response=s.Automation,
    errors=READ,
)
def get_automation(ctx: Ctx, automation_id: uuid.UUID) -> s.Automation:
    return automation_out(automations.get_automation(ctx.session, ctx.principal, automation_id))


@operation(
    "PATCH",
    "/automations/{automation_id}",
    summary="Update an automation (including its status)",
    tag="automations",
    response=s.Automation,
    body=s.AutomationUpdate,
    errors=(*WRITE, 409),
)
def update_automation(ctx: Ctx, automation_id: uuid.UUID) -> s.Automation:
    """Only the fields present change. `status`: disabled (events dropped), preview (events
    logged, no chat action), active."""
    fields = ctx.body.model_dump(include=ctx.body_fields)
    row = automations.update_automation(
        ctx.session, ctx.clock, ctx.principal, automation_id, fields
    )
    return automation_out(row)


@operation(
    "DELETE",
    "/automations/{automation_id}",
    summary="Delete an automation, its triggers and events",
    tag="automations",
    response=None,
    status=204,
    errors=READ,
)
def delete_automation(ctx: Ctx, automation_id: uuid.UUID) -> None:
    automations.delete_automation(ctx.session, ctx.clock, ctx.principal, automation_id)


# Triggers ---------------------------------------------------------------------------------


@operation(
    "POST",
    "/automations/{automation_id}/triggers",
    summary="Add a webhook or cron trigger",
    tag="triggers",
    response=s.TriggerCreated,
    status=201,
    body=s.TriggerCreate,
    errors=WRITE,
)
def create_trigger(ctx: Ctx, automation_id: uuid.UUID) -> s.TriggerCreated:
    """A webhook trigger's secret is returned in this response only, in two forms."""
    created = triggers.create_trigger(
        ctx.session,
        ctx.clock,
        ctx.keyring,
        ctx.principal,
        automation_id,
        ctx.body.model_dump(include=ctx.body_fields),
    )
    out = trigger_out(ctx, created.trigger)
    out["webhook_secret"] = created.secret.hex if created.secret else None
    out["webhook_secret_standard"] = created.secret.standard if created.secret else None
    return s.TriggerCreated.model_validate(out)


@operation(
    "GET",
    "/automations/{automation_id}/triggers",
    summary="List triggers (never with secrets)",
    tag="triggers",
    response=s.TriggerPage,
    query=s.PageQuery,
    errors=READ,
)
def list_triggers(ctx: Ctx, automation_id: uuid.UUID) -> s.TriggerPage:
    page = triggers.list_triggers(
        ctx.session, ctx.principal, automation_id, limit=ctx.query.limit, cursor=ctx.query.cursor
    )
    return s.TriggerPage(
        items=[s.Trigger.model_validate(trigger_out(ctx, t)) for t in page.items],
        next_cursor=page.next_cursor,
    )


@operation(
    "GET",
    "/automations/{automation_id}/triggers/{trigger_id}",
    summary="Get a trigger (never with its secret)",
    tag="triggers",
    response=s.Trigger,
    errors=READ,
)
def get_trigger(ctx: Ctx, automation_id: uuid.UUID, trigger_id: uuid.UUID) -> s.Trigger:
    _, row = triggers.get_trigger(ctx.session, ctx.principal, automation_id, trigger_id)
    return s.Trigger.model_validate(trigger_out(ctx, row))


@operation(
    "PATCH",
    "/automations/{automation_id}/triggers/{trigger_id}",
    summary="Update a trigger's filter, label paths or schedule",
    tag="triggers",
    response=s.Trigger,
    body=s.TriggerUpdate,
    errors=WRITE,
)
def update_trigger(ctx: Ctx, automation_id: uuid.UUID, trigger_id: uuid.UUID) -> s.Trigger:
    row = triggers.update_trigger(
        ctx.session,
        ctx.clock,
        ctx.principal,
        automation_id,
        trigger_id,
        ctx.body.model_dump(include=ctx.body_fields),
    )
    return s.Trigger.model_validate(trigger_out(ctx, row))


@operation(
    "DELETE",
    "/automations/{automation_id}/triggers/{trigger_id}",
    summary="Delete a trigger",
    tag="triggers",
    response=None,
    status=204,
    errors=READ,
)
def delete_trigger(ctx: Ctx, automation_id: uuid.UUID, trigger_id: uuid.UUID) -> None:
    triggers.delete_trigger(ctx.session, ctx.clock, ctx.principal, automation_id, trigger_id)


@operation(
    "POST",
    "/automations/{automation_id}/triggers/{trigger_id}/regenerate-secret",
    summary="Replace a webhook trigger's secret",
    tag="triggers",
    response=s.NewSecret,
    body=s.RegenerateSecret,
    body_required=False,
    errors=WRITE,
)
def regenerate_secret(ctx: Ctx, automation_id: uuid.UUID, trigger_id: uuid.UUID) -> s.NewSecret:
    """The new secret is shown once. With `previous_valid_for_seconds` (at most 7 days) the
    old secret keeps verifying until then, so senders can switch without dropped events.
    400 for cron triggers."""
    created = triggers.regenerate_secret(
        ctx.session,
        ctx.clock,
        ctx.keyring,
        ctx.principal,
        automation_id,
        trigger_id,
        ctx.body.previous_valid_for_seconds,
    )
    assert created.secret is not None
    return s.NewSecret(
        trigger_id=created.trigger.id,
        webhook_url=ctx.webhook_url(created.trigger.id),
        webhook_secret=created.secret.hex,
        webhook_secret_standard=created.secret.standard,
        previous_secret_expires_at=created.trigger.previous_secret_expires_at,
    )


# Events and dry run -----------------------------------------------------------------------


@operation(
    "GET",
    "/automations/{automation_id}/events",
    summary="The automation's event log, newest first",
    tag="events",
    response=s.EventPage,
    query=s.EventListQuery,
    errors=READ,
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
    "/automations/{automation_id}/test",
    summary="Dry-run the filter, labels and chat match on a payload",
    tag="automations",
    response=s.TestResult,
    body=s.TestRequest,
    errors=WRITE,
)
def test_automation(ctx: Ctx, automation_id: uuid.UUID) -> s.TestResult:
    """Stores nothing. Uses the supplied `filter` / `label_paths`, else the automation's."""
    body: s.TestRequest = ctx.body
    result = dry_run.test_automation(
        ctx.session,
        ctx.principal,
        automation_id,
        body.payload,
        trigger_id=body.trigger_id,
        filter=body.filter if "filter" in ctx.body_fields else None,
        label_paths=body.label_paths if "label_paths" in ctx.body_fields else None,
    )
    return s.TestResult.model_validate(result)


# Chats ------------------------------------------------------------------------------------


@operation(
    "GET",
    "/chats",
    summary="List chats",
    tag="chats",
    response=s.ChatPage,
    query=s.ChatListQuery,
    errors=READ,
)
def list_chats(ctx: Ctx) -> s.ChatPage:
    """Most recently updated first. `label=key:value` (repeatable; all must match),
    `automation_id`, `archived` (absent: both)."""
    q: s.ChatListQuery = ctx.query
    page = chat_queries.list_chats(
        ctx.session,
        ctx.principal,
        automation_id=q.automation_id,
        labels=chat_queries.parse_label_filters(q.label or []),
        archived=q.archived,
        limit=q.limit,
        cursor=q.cursor,
    )
    return s.ChatPage(items=[chat_out(c) for c in page.items], next_cursor=page.next_cursor)


@operation(
    "GET",
    "/chats/{chat_id}",
    summary="A chat with its messages",
    tag="chats",
    response=s.ChatDetail,
    errors=READ,
)
def get_chat(ctx: Ctx, chat_id: uuid.UUID) -> s.ChatDetail:
    chat, messages = chat_queries.get_chat(ctx.session, ctx.principal, chat_id)
    out = chat_out(chat).model_dump()
    out["messages"] = [message_out(m) for m in messages]
    return s.ChatDetail.model_validate(out)
