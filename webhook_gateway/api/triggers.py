"""``/automations/{automation_id}/triggers``: webhook and cron triggers, and rotating a
webhook trigger's secret."""

from __future__ import annotations

import uuid
from typing import Any

from shared.models import AutomationTrigger, TriggerType
from shared.triggers import service as triggers
from webhook_gateway.api import schemas as s
from webhook_gateway.api.framework import Ctx, operation


def trigger_out(ctx: Ctx, row: AutomationTrigger) -> dict[str, Any]:
    """The fields of :class:`schemas.Trigger` (a dict: creation adds the secret to it)."""
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
        "event_types": row.event_types or [],
        "message_template": row.message_template,
        "replay_window_seconds": (
            row.replay_window_seconds if row.type is TriggerType.WEBHOOK else None
        ),
        "previous_secret_expires_at": row.previous_secret_expires_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


@operation(
    "POST",
    "/automations/{automation_id}/triggers",
    summary="Add a webhook or cron trigger",
    tag="triggers",
    response=s.TriggerCreated,
    status=201,
    body=s.TriggerCreate,
    errors=s.WRITE_ERRORS,
)
def create_trigger(ctx: Ctx, automation_id: uuid.UUID) -> s.TriggerCreated:
    """A webhook trigger's secret is returned in this response only, in two forms."""
    body: s.TriggerCreate = ctx.body
    created = triggers.create_trigger(
        ctx.session, ctx.clock, ctx.keyring, ctx.principal, automation_id, body.domain()
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
    errors=s.READ_ERRORS,
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
    errors=s.READ_ERRORS,
)
def get_trigger(ctx: Ctx, automation_id: uuid.UUID, trigger_id: uuid.UUID) -> s.Trigger:
    _, row = triggers.get_trigger(ctx.session, ctx.principal, automation_id, trigger_id)
    return s.Trigger.model_validate(trigger_out(ctx, row))


@operation(
    "PATCH",
    "/automations/{automation_id}/triggers/{trigger_id}",
    summary="Update a trigger's filter, label paths, schedule or replay window",
    tag="triggers",
    response=s.Trigger,
    body=s.TriggerUpdate,
    errors=s.WRITE_ERRORS,
)
def update_trigger(ctx: Ctx, automation_id: uuid.UUID, trigger_id: uuid.UUID) -> s.Trigger:
    body: s.TriggerUpdate = ctx.body
    row = triggers.update_trigger(
        ctx.session, ctx.clock, ctx.principal, automation_id, trigger_id, body.changes()
    )
    return s.Trigger.model_validate(trigger_out(ctx, row))


@operation(
    "DELETE",
    "/automations/{automation_id}/triggers/{trigger_id}",
    summary="Delete a trigger",
    tag="triggers",
    response=None,
    status=204,
    errors=s.READ_ERRORS,
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
    errors=s.WRITE_ERRORS,
)
def regenerate_secret(ctx: Ctx, automation_id: uuid.UUID, trigger_id: uuid.UUID) -> s.NewSecret:
    """The new secret is shown once. With `previous_valid_for_seconds` (at most 7 days) the
    old secret keeps verifying until then, so senders can switch without dropped events.
    400 for cron triggers."""
    body: s.RegenerateSecret = ctx.body
    created = triggers.regenerate_secret(
        ctx.session,
        ctx.clock,
        ctx.keyring,
        ctx.principal,
        automation_id,
        trigger_id,
        body.previous_valid_for_seconds,
    )
    assert created.secret is not None
    return s.NewSecret(
        trigger_id=created.trigger.id,
        webhook_url=ctx.webhook_url(created.trigger.id),
        webhook_secret=created.secret.hex,
        webhook_secret_standard=created.secret.standard,
        previous_secret_expires_at=created.trigger.previous_secret_expires_at,
    )
