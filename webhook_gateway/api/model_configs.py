"""``/model-configs``: the model endpoints an organization's chats run against (SPEC 9).

Members read (and test), org-admins and site-admins write; the API key is write-only
(``api_key_set``). See :mod:`shared.model_configs.service` for the rules."""

from __future__ import annotations

import uuid

from shared import model_configs as service
from webhook_gateway.api import schemas as s
from webhook_gateway.api.framework import Ctx, operation


@operation(
    "POST",
    "/model-configs",
    summary="Create a model config",
    tag="model-configs",
    response=s.ModelConfig,
    status=201,
    body=s.ModelConfigCreate,
    errors=(*s.WRITE_ERRORS, 409),
)
def create_model_config(ctx: Ctx) -> s.ModelConfig:
    """Org-admins only (403 for members). The name is unique in the organization (409
    `name_taken`); `base_url` must pass the outbound-address rules (400 naming it); the API
    key is encrypted at rest and never answered."""
    body: s.ModelConfigCreate = ctx.body
    row = service.create_model_config(
        ctx.session,
        ctx.clock,
        ctx.principal,
        ctx.keyring,
        body.domain(),
        allow_private=ctx.settings.effective_outbound_allow_private,
    )
    return s.ModelConfig.of(row)


@operation(
    "GET",
    "/model-configs",
    summary="List model configs",
    tag="model-configs",
    response=s.ModelConfigPage,
    query=s.ModelConfigListQuery,
    errors=s.READ_ERRORS,
)
def list_model_configs(ctx: Ctx) -> s.ModelConfigPage:
    """The model configs of `organization_id`, or of every organization you belong to."""
    q: s.ModelConfigListQuery = ctx.query
    page = service.list_model_configs(
        ctx.session,
        ctx.principal,
        organization_id=q.organization_id,
        limit=q.limit,
        cursor=q.cursor,
    )
    return s.ModelConfigPage(
        items=[s.ModelConfig.of(r) for r in page.items], next_cursor=page.next_cursor
    )


@operation(
    "GET",
    "/model-configs/{model_config_id}",
    summary="Get a model config",
    tag="model-configs",
    response=s.ModelConfig,
    errors=s.READ_ERRORS,
)
def get_model_config(ctx: Ctx, model_config_id: uuid.UUID) -> s.ModelConfig:
    return s.ModelConfig.of(service.get_model_config(ctx.session, ctx.principal, model_config_id))


@operation(
    "PATCH",
    "/model-configs/{model_config_id}",
    summary="Update a model config",
    tag="model-configs",
    response=s.ModelConfig,
    body=s.ModelConfigUpdate,
    errors=(*s.WRITE_ERRORS, 409),
)
def update_model_config(ctx: Ctx, model_config_id: uuid.UUID) -> s.ModelConfig:
    """Only the fields given change; `api_key: null` removes the key. A config holding a key
    needs it again (or null) when `base_url` or `provider` changes (400 `api_key_required`)."""
    body: s.ModelConfigUpdate = ctx.body
    row = service.update_model_config(
        ctx.session,
        ctx.clock,
        ctx.principal,
        ctx.keyring,
        model_config_id,
        body.changes(),
        allow_private=ctx.settings.effective_outbound_allow_private,
    )
    return s.ModelConfig.of(row)


@operation(
    "DELETE",
    "/model-configs/{model_config_id}",
    summary="Delete a model config",
    tag="model-configs",
    response=None,
    status=204,
    errors=s.READ_ERRORS,
)
def delete_model_config(ctx: Ctx, model_config_id: uuid.UUID) -> None:
    """Automations and chats that used it keep their other settings with `model_config_id`
    null; their turns fail with kind `config` until another model config is set."""
    service.delete_model_config(ctx.session, ctx.clock, ctx.principal, model_config_id)


@operation(
    "POST",
    "/model-configs/{model_config_id}/test",
    summary="Send a one-line prompt to a model config",
    tag="model-configs",
    response=s.ModelConfigTestResult,
    errors=s.READ_ERRORS,
)
def test_model_config(ctx: Ctx, model_config_id: uuid.UUID) -> s.ModelConfigTestResult:
    """Answers 200 whether the provider answered or not: `ok` with the latency, or the
    classified error (`kind`, `status_code`, ...; never the API key). Bounded by
    AUTOMATIONS_STARTUP_TIMEOUT_SECONDS plus 15 s."""
    outcome = service.ping_model_config(
        ctx.session, ctx.principal, ctx.keyring, model_config_id, ctx.settings
    )
    return s.ModelConfigTestResult.model_validate(
        {"ok": outcome.ok, "latency_ms": outcome.latency_ms, "error": outcome.error}
    )
