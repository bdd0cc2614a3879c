"""Model configs: create, list, get, update, delete and test (SPEC 9), authorization included.

Who may do what (the rules of :mod:`shared.accounts.authz`, applied to an organization's
shared settings rather than to owned resources):

* every **member** of the organization reads its model configs (and may test them: a test
  sends one short prompt, and a member whose chats fail needs to see why);
* its **org-admins** and **site-admins** create, change and delete them; a member who tries
  gets 403 ``forbidden`` (the config is visible to them, so saying so leaks nothing);
* anybody else gets 404, so a config's existence never leaks across organizations.

Token scopes: reading and testing need ``automation:read``, writing ``automation:write``.

The API key is write-only: it is sealed with the keyring (:func:`shared.keys.seal`, like
webhook secrets; ``automations keys rotate | decrypt | delete`` cover it) and answered only as
``api_key_set``. Changing ``base_url`` or ``provider`` of a config that holds a key needs the
key (or ``null``) in the same request: otherwise a second admin could re-point the config at a
server of their own and receive the key that somebody else entered.

Requests are validated at the edge (the API's schemas); this module checks what needs the
database or the settings: authorization, the organization, name uniqueness (409
``name_taken``) and the outbound-URL rules of SPEC 9 for ``base_url``.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace
from typing import Any, TypedDict

from sqlalchemy import select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared import audit, keys
from shared.accounts import authz
from shared.accounts.authz import Principal
from shared.automations.service import canonical_name, require
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.infra.clock import Clock
from shared.infra.config import Settings
from shared.infra.crypto import CryptoError, Keyring, UnknownKeyError
from shared.infra.db.pagination import Page, paginate
from shared.models import ModelConfig, Organization
from shared.runner.clients import ProviderConfig
from shared.runner.errors import ChatError, redact
from shared.runner.outbound import OutboundURLRefused, check_url
from shared.runner.providers import PROVIDERS, ping

__all__ = [
    "PROVIDERS",
    "ModelConfigChanges",
    "NewModelConfig",
    "PingOutcome",
    "can_write",
    "create_model_config",
    "delete_model_config",
    "get_model_config",
    "list_model_configs",
    "ping_model_config",
    "provider_config",
    "update_model_config",
]

#: a test may take the startup timeout plus this long for the rest of its 16-token reply
TEST_GRACE_SECONDS = 15.0


@dataclass(frozen=True)
class NewModelConfig:
    """A validated model config to create (``api_key`` in plain text; None or "": none)."""

    organization_id: uuid.UUID
    name: str
    provider: str
    base_url: str
    model: str
    api_key: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    context_window: int | None = None


class ModelConfigChanges(TypedDict, total=False):
    """Validated changes; only the keys present change (``api_key`` None clears the key)."""

    name: str
    provider: str
    base_url: str
    model: str
    api_key: str | None
    max_output_tokens: int | None
    temperature: float | None
    context_window: int | None


@dataclass(frozen=True)
class PingOutcome:
    """``POST /model-configs/<id>/test``: ``error`` is a ChatError's JSON (never the key)."""

    ok: bool
    latency_ms: int
    error: dict[str, Any] | None


# Authorization -------------------------------------------------------------------------------


def can_read(principal: Principal, organization_id: uuid.UUID) -> bool:
    return principal.is_site_admin or principal.is_member(organization_id)


def can_write(principal: Principal, organization_id: uuid.UUID) -> bool:
    return principal.is_site_admin or principal.is_org_admin(organization_id)


def _not_found(config_id: uuid.UUID) -> NotFound:
    return NotFound(f"model config {config_id} not found", field="model_config_id")


def _forbidden() -> Forbidden:
    return Forbidden(
        "only the organization's org-admins may create, change or delete model configs",
        code="forbidden",
    )


def get_model_config(
    session: Session,
    principal: Principal,
    config_id: uuid.UUID,
    *,
    write: bool = False,
    lock: bool = False,
) -> ModelConfig:
    """The model config when ``principal`` may see it (404 otherwise); with ``write``, 403
    unless they may also change it."""
    require(principal, authz.AUTOMATION_WRITE if write else authz.AUTOMATION_READ)
    stmt = select(ModelConfig).where(ModelConfig.id == config_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.scalar(stmt)
    if row is None or not can_read(principal, row.organization_id):
        raise _not_found(config_id)
    if write and not can_write(principal, row.organization_id):
        raise _forbidden()
    return row


def list_model_configs(
    session: Session,
    principal: Principal,
    *,
    organization_id: uuid.UUID | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[ModelConfig]:
    """The model configs of ``organization_id``, or of every organization the caller belongs
    to (site-admins: every organization)."""
    require(principal, authz.AUTOMATION_READ)
    stmt = select(ModelConfig)
    if organization_id is not None:
        if not can_read(principal, organization_id):
            raise NotFound(
                f"organization_id: organization {organization_id} not found",
                field="organization_id",
            )
        stmt = stmt.where(ModelConfig.organization_id == organization_id)
    elif principal.is_site_admin:
        stmt = stmt.where(true())
    else:
        stmt = stmt.where(ModelConfig.organization_id.in_(principal.member_org_ids))
    return paginate(
        session,
        stmt,
        kind="model_configs",
        sort_col=ModelConfig.created_at,
        id_col=ModelConfig.id,
        limit=limit,
        cursor=cursor,
    )


# Writing -------------------------------------------------------------------------------------


def _checked_name(value: str) -> str:
    try:
        return canonical_name(value)
    except ValueError as exc:
        raise Invalid(f"name: {exc}", field="name") from None


def _checked_url(value: str, allow_private: bool) -> str:
    url = value.strip()
    try:
        check_url(url, "base_url", allow_private=allow_private)
    except OutboundURLRefused as exc:
        raise Invalid(str(exc), code="invalid_url", field="base_url") from None
    return url


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"name: this organization already has a model config named {name!r}",
        code="name_taken",
        field="name",
    )


def _check_name_free(
    session: Session, organization_id: uuid.UUID, name: str, exclude: uuid.UUID | None
) -> None:
    stmt = select(ModelConfig.id).where(
        ModelConfig.organization_id == organization_id, ModelConfig.name == name
    )
    if exclude is not None:
        stmt = stmt.where(ModelConfig.id != exclude)
    if session.scalar(stmt) is not None:
        raise _name_taken(name)


def _flush_unique(session: Session, name: str) -> None:
    """Flush in a savepoint: a concurrent create of the same name is a 409, not a 500."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise _name_taken(name) from None


def _set_key(
    session: Session, clock: Clock, keyring: Keyring, row: ModelConfig, plain: str | None
) -> None:
    if plain:
        row.api_key, row.api_key_key_id = keys.seal(session, clock, keyring, plain)
    else:
        row.api_key, row.api_key_key_id = None, None


def create_model_config(
    session: Session,
    clock: Clock,
    principal: Principal,
    keyring: Keyring,
    new: NewModelConfig,
    *,
    allow_private: bool,
) -> ModelConfig:
    """Create a model config in an organization the caller administers."""
    require(principal, authz.AUTOMATION_WRITE)
    org = session.get(Organization, new.organization_id)
    if org is None or not can_read(principal, org.id):
        raise NotFound(
            f"organization_id: organization {new.organization_id} not found",
            field="organization_id",
        )
    if not can_write(principal, org.id):
        raise _forbidden()
    now = clock.now()
    row = ModelConfig(
        id=uuid.uuid4(),
        organization_id=org.id,
        name=_checked_name(new.name),
        provider=new.provider,
        base_url=_checked_url(new.base_url, allow_private),
        model=new.model,
        max_output_tokens=new.max_output_tokens,
        temperature=new.temperature,
        context_window=new.context_window,
        created_at=now,
        updated_at=now,
    )
    _check_name_free(session, org.id, row.name, None)
    _set_key(session, clock, keyring, row, new.api_key)
    session.add(row)
    _flush_unique(session, row.name)
    audit.record(
        session,
        clock,
        actor_id=principal.user_id,
        organization_id=org.id,
        action="model_config.create",
        resource_type="model_config",
        resource_id=row.id,
        details={
            "name": row.name,
            "provider": row.provider,
            "base_url": row.base_url,
            "model": row.model,
            "api_key_set": row.api_key is not None,
        },
    )
    return row


def update_model_config(
    session: Session,
    clock: Clock,
    principal: Principal,
    keyring: Keyring,
    config_id: uuid.UUID,
    changes: ModelConfigChanges,
    *,
    allow_private: bool,
) -> ModelConfig:
    """Apply ``changes`` (see the module docstring for the key and ``base_url``)."""
    row = get_model_config(session, principal, config_id, write=True, lock=True)
    values: dict[str, Any] = dict(changes)
    if "name" in values:
        values["name"] = _checked_name(values["name"])
        _check_name_free(session, row.organization_id, values["name"], row.id)
    if "base_url" in values:
        values["base_url"] = _checked_url(values["base_url"], allow_private)
    moved = [f for f in ("base_url", "provider") if f in values and values[f] != getattr(row, f)]
    if moved and row.api_key is not None and "api_key" not in values:
        raise Invalid(
            f"api_key: changing {' and '.join(moved)} needs the API key again in the same "
            "request (or null to remove it), so that the stored key never goes to an "
            "endpoint it was not entered for",
            code="api_key_required",
            field="api_key",
        )
    changed: list[str] = []
    if "api_key" in values:
        plain = values.pop("api_key")
        if plain or row.api_key is not None:
            _set_key(session, clock, keyring, row, plain)
            changed.append("api_key")
    for field, value in values.items():
        if getattr(row, field) != value:
            setattr(row, field, value)
            changed.append(field)
    if not changed:
        return row
    row.updated_at = clock.now()
    _flush_unique(session, row.name)
    audit.record(
        session,
        clock,
        actor_id=principal.user_id,
        organization_id=row.organization_id,
        action="model_config.update",
        resource_type="model_config",
        resource_id=row.id,
        details={"fields": sorted(changed), "api_key_set": row.api_key is not None},
    )
    return row


def delete_model_config(
    session: Session, clock: Clock, principal: Principal, config_id: uuid.UUID
) -> None:
    """Delete a model config. Automations and chats that used it keep running with
    ``model_config_id`` null (the foreign keys are ON DELETE SET NULL); their turns fail with
    kind ``config`` until another config is set."""
    row = get_model_config(session, principal, config_id, write=True)
    audit.record(
        session,
        clock,
        actor_id=principal.user_id,
        organization_id=row.organization_id,
        action="model_config.delete",
        resource_type="model_config",
        resource_id=row.id,
        details={"name": row.name},
    )
    session.delete(row)
    session.flush()


# Using ---------------------------------------------------------------------------------------


def provider_config(row: ModelConfig, keyring: Keyring, settings: Settings) -> ProviderConfig:
    """What a turn (or a test) needs of ``row``: the key decrypted, the settings' timeouts and
    outbound rule. Raises :class:`~shared.infra.crypto.CryptoError` when the key cannot be
    decrypted (its encryption key is not configured, or the ciphertext is damaged)."""
    api_key = keyring.decrypt(row.api_key, row.api_key_key_id) if row.api_key else None
    return ProviderConfig(
        provider=row.provider,
        base_url=row.base_url,
        model=row.model,
        api_key=api_key,
        max_output_tokens=row.max_output_tokens,
        temperature=row.temperature,
        startup_timeout_seconds=settings.startup_timeout_seconds,
        stream_idle_timeout_seconds=settings.stream_idle_timeout_seconds,
        allow_private=settings.effective_outbound_allow_private,
    )


def _key_error(row: ModelConfig, exc: CryptoError) -> ChatError:
    if isinstance(exc, UnknownKeyError):
        reason = (
            f"it was encrypted with key {exc.digest}, which is not in AUTOMATIONS_ENCRYPTION_KEYS"
        )
    else:
        reason = "the stored ciphertext is damaged; set the key again"
    return ChatError(
        message="the model config's API key cannot be decrypted: " + reason,
        kind="config",
        provider=row.provider,
        retryable=False,
    )


def ping_model_config(
    session: Session,
    principal: Principal,
    keyring: Keyring,
    config_id: uuid.UUID,
    settings: Settings,
) -> PingOutcome:
    """Send one short prompt (:func:`shared.runner.providers.ping`) and report the latency or
    the classified error. Runs the SDK's event loop in the calling thread, bounded by the
    startup timeout (plus :data:`TEST_GRACE_SECONDS` for the short reply)."""
    row = get_model_config(session, principal, config_id)
    try:
        config = provider_config(row, keyring, settings)
    except CryptoError as exc:
        return PingOutcome(False, 0, _key_error(row, exc).to_json())
    bound = settings.startup_timeout_seconds + TEST_GRACE_SECONDS
    config = replace(config, stream_idle_timeout_seconds=min(bound, 300.0))

    async def bounded() -> tuple[bool, int, ChatError | None]:
        try:
            return await asyncio.wait_for(ping(config), timeout=bound)
        except TimeoutError:
            error = ChatError(
                message=f"the provider did not finish a one-line reply within {bound:g} s",
                kind="timeout",
                provider=row.provider,
                retryable=True,
            )
            return False, round(bound * 1000), error

    ok, latency_ms, error = asyncio.run(bounded())
    if error is None:
        return PingOutcome(ok, latency_ms, None)
    body = error.to_json()
    for name in ("message", "detail"):
        if isinstance(body[name], str):
            body[name] = redact(body[name], [config.api_key])
    return PingOutcome(ok, latency_ms, body)
