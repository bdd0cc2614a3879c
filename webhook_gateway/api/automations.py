"""``/automations``: create, list, get, update (including the status) and delete."""

from __future__ import annotations

import uuid

from shared.automations import service as automations
from shared.models import Automation as AutomationRow
from webhook_gateway.api import schemas as s
from webhook_gateway.api.framework import Ctx, operation


def automation_out(row: AutomationRow) -> s.Automation:
    return s.Automation.model_validate(row, from_attributes=True)


@operation(
    "POST",
    "/automations",
    summary="Create an automation",
    tag="automations",
    response=s.Automation,
    status=201,
    body=s.AutomationCreate,
    errors=(*s.WRITE_ERRORS, 409),
)
def create_automation(ctx: Ctx) -> s.Automation:
    """New automations start `disabled`. The name is unique per owner and organization (409)."""
    body: s.AutomationCreate = ctx.body
    row = automations.create_automation(ctx.session, ctx.clock, ctx.principal, body.domain())
    return automation_out(row)


@operation(
    "GET",
    "/automations",
    summary="List automations",
    tag="automations",
    response=s.AutomationPage,
    query=s.AutomationListQuery,
    errors=s.READ_ERRORS,
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
    errors=s.READ_ERRORS,
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
    errors=(*s.WRITE_ERRORS, 409),
)
def update_automation(ctx: Ctx, automation_id: uuid.UUID) -> s.Automation:
    """Only the fields present change. `status`: disabled (events dropped), preview (events
    logged, no chat action), active."""
    body: s.AutomationUpdate = ctx.body
    row = automations.update_automation(
        ctx.session, ctx.clock, ctx.principal, automation_id, body.changes()
    )
    return automation_out(row)


@operation(
    "DELETE",
    "/automations/{automation_id}",
    summary="Delete an automation, its triggers and events",
    tag="automations",
    response=None,
    status=204,
    errors=s.READ_ERRORS,
)
def delete_automation(ctx: Ctx, automation_id: uuid.UUID) -> None:
    automations.delete_automation(ctx.session, ctx.clock, ctx.principal, automation_id)
