"""Automations: create, list, get, update, delete (authorization included)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared import audit
from shared.accounts import authz
from shared.accounts.authz import Principal
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.infra.clock import Clock
from shared.infra.db.pagination import Page, paginate
from shared.models import Automation, AutomationStatus, ModelConfig, Organization

__all__ = [
    "EDITABLE_FIELDS",
    "create_automation",
    "delete_automation",
    "get_automation",
    "list_automations",
    "require",
    "update_automation",
]

LIMIT_MIN, LIMIT_MAX = 1, 1000
NAME_MAX = 200
EDITABLE_FIELDS = (
    "name",
    "description",
    "instructions",
    "model_config_id",
    "mcp_server_ids",
    "allowed_tools",
    "max_chat_creates_per_hour",
    "max_messages_per_hour",
    "status",
)


def require(principal: Principal, permission: str) -> None:
    if not principal.has(permission):
        raise Forbidden(
            f"this token lacks the {permission} scope "
            f"(it has: {', '.join(sorted(principal.scopes))})"
        )


def _not_found(automation_id: uuid.UUID | str) -> NotFound:
    return NotFound(f"automation {automation_id} not found", field="automation_id")


def get_automation(
    session: Session,
    principal: Principal,
    automation_id: uuid.UUID,
    *,
    write: bool = False,
    lock: bool = False,
) -> Automation:
    """The automation when ``principal`` may see it (404 otherwise); checks the token scope."""
    require(principal, authz.AUTOMATION_WRITE if write else authz.AUTOMATION_READ)
    stmt = select(Automation).where(Automation.id == automation_id)
    if lock:
        stmt = stmt.with_for_update()
    automation = session.scalar(stmt)
    if automation is None or not authz.can_access_automation(principal, automation):
        raise _not_found(automation_id)
    return automation


def _validate_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise Invalid("name: must not be empty", field="name")
    name = name.strip()
    if len(name) > NAME_MAX:
        raise Invalid(f"name: at most {NAME_MAX} characters", field="name")
    return name


def _validate_limit(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not LIMIT_MIN <= value <= LIMIT_MAX:
        raise Invalid(
            f"{field}: must be an integer between {LIMIT_MIN} and {LIMIT_MAX}", field=field
        )
    return value


def _validate_str_list(field: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Invalid(f"{field}: must be a list of non-empty strings", field=field)
    return list(dict.fromkeys(value))


def _validate_model_config(
    session: Session, organization_id: uuid.UUID, value: Any
) -> uuid.UUID | None:
    if value is None:
        return None
    config = session.get(ModelConfig, value)
    if config is None or config.organization_id != organization_id:
        raise NotFound(
            f"model_config_id: model config {value} not found in this organization",
            field="model_config_id",
        )
    return config.id


def _check_name_free(
    session: Session, owner_id: uuid.UUID, organization_id: uuid.UUID, name: str, exclude: Any
) -> None:
    stmt = select(Automation.id).where(
        Automation.owner_id == owner_id,
        Automation.organization_id == organization_id,
        Automation.name == name,
    )
    if exclude is not None:
        stmt = stmt.where(Automation.id != exclude)
    if session.scalar(stmt) is not None:
        raise Conflict(
            f"name: you already have an automation named {name!r} in this organization",
            code="name_taken",
            field="name",
        )


def _flush_unique(session: Session, name: str) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(
            f"name: you already have an automation named {name!r} in this organization",
            code="name_taken",
            field="name",
        ) from None


def _apply(session: Session, automation: Automation, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and set ``fields``; returns the changed ones (old values not included)."""
    changed: dict[str, Any] = {}
    for field, value in fields.items():
        if field not in EDITABLE_FIELDS:
            raise Invalid(f"{field}: unknown field", field=field, code="unknown_field")
        if field == "name":
            value = _validate_name(value)
        elif field in ("description", "instructions"):
            if not isinstance(value, str):
                raise Invalid(f"{field}: must be a string", field=field)
        elif field in ("max_chat_creates_per_hour", "max_messages_per_hour"):
            value = _validate_limit(field, value)
        elif field in ("mcp_server_ids", "allowed_tools"):
            value = _validate_str_list(field, value)
        elif field == "model_config_id":
            value = _validate_model_config(session, automation.organization_id, value)
        elif field == "status":
            try:
                value = AutomationStatus(value)
            except ValueError:
                raise Invalid(
                    "status: must be one of disabled, preview, active", field="status"
                ) from None
        if getattr(automation, field) != value:
            setattr(automation, field, value)
            changed[field] = value
    return changed


def create_automation(
    session: Session, clock: Clock, principal: Principal, fields: Mapping[str, Any]
) -> Automation:
    """Create an automation owned by the caller; it starts ``disabled``."""
    require(principal, authz.AUTOMATION_WRITE)
    fields = dict(fields)
    org_id = fields.pop("organization_id", None)
    if org_id is None:
        raise Invalid("organization_id: required", field="organization_id")
    if "name" not in fields:
        raise Invalid("name: required", field="name")
    if "status" in fields:
        raise Invalid(
            "status: new automations start disabled; change it with PATCH", field="status"
        )
    org = session.get(Organization, org_id)
    if org is None or not authz.can_create_in(principal, org.id):
        raise NotFound(f"organization_id: organization {org_id} not found", field="organization_id")
    now = clock.now()
    automation = Automation(
        owner_id=principal.user_id,
        organization_id=org.id,
        name="",
        description="",
        instructions="",
        mcp_server_ids=[],
        allowed_tools=[],
        status=AutomationStatus.DISABLED,
        max_chat_creates_per_hour=10,
        max_messages_per_hour=60,
        created_at=now,
        updated_at=now,
    )
    _apply(session, automation, fields)
    _check_name_free(session, principal.user_id, org.id, automation.name, None)
    session.add(automation)
    _flush_unique(session, automation.name)
    audit.record(
        session,
        clock,
        actor_id=principal.user_id,
        organization_id=org.id,
        action="automation.create",
        resource_type="automation",
        resource_id=automation.id,
        details={"name": automation.name},
    )
    return automation


def list_automations(
    session: Session,
    principal: Principal,
    *,
    organization_id: uuid.UUID | None = None,
    status: str | None = None,
    name: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[Automation]:
    """The caller's own automations; with ``organization_id``, the organization's for its
    admins (and site-admins), the caller's own there for members."""
    require(principal, authz.AUTOMATION_READ)
    stmt = select(Automation).where(authz.automation_visibility(principal))
    if organization_id is not None:
        if not (principal.is_site_admin or principal.is_member(organization_id)):
            raise NotFound(
                f"organization_id: organization {organization_id} not found",
                field="organization_id",
            )
        stmt = stmt.where(Automation.organization_id == organization_id)
        if not (principal.is_site_admin or principal.is_org_admin(organization_id)):
            stmt = stmt.where(Automation.owner_id == principal.user_id)
    else:
        stmt = stmt.where(Automation.owner_id == principal.user_id)
    if status is not None:
        try:
            stmt = stmt.where(Automation.status == AutomationStatus(status))
        except ValueError:
            raise Invalid(
                "status: must be one of disabled, preview, active", field="status"
            ) from None
    if name is not None:
        stmt = stmt.where(Automation.name == name)
    return paginate(
        session,
        stmt,
        kind="automations",
        sort_col=Automation.created_at,
        id_col=Automation.id,
        limit=limit,
        cursor=cursor,
    )


def update_automation(
    session: Session,
    clock: Clock,
    principal: Principal,
    automation_id: uuid.UUID,
    fields: Mapping[str, Any],
) -> Automation:
    automation = get_automation(session, principal, automation_id, write=True, lock=True)
    old_status = automation.status
    if "name" in fields:
        _check_name_free(
            session,
            automation.owner_id,
            automation.organization_id,
            _validate_name(fields["name"]),
            automation.id,
        )
    changed = _apply(session, automation, fields)
    if not changed:
        return automation
    now = clock.now()
    automation.updated_at = now
    _flush_unique(session, automation.name)
    if automation.status != old_status:
        from shared.triggers.service import refresh_all_triggers

        refresh_all_triggers(session, automation, now)
    details: dict[str, Any] = {"fields": sorted(changed)}
    if "status" in changed:
        details["status"] = {"from": str(old_status), "to": str(automation.status)}
    audit.record(
        session,
        clock,
        actor_id=principal.user_id,
        organization_id=automation.organization_id,
        action="automation.update",
        resource_type="automation",
        resource_id=automation.id,
        details=details,
    )
    return automation


def delete_automation(
    session: Session, clock: Clock, principal: Principal, automation_id: uuid.UUID
) -> None:
    automation = get_automation(session, principal, automation_id, write=True)
    audit.record(
        session,
        clock,
        actor_id=principal.user_id,
        organization_id=automation.organization_id,
        action="automation.delete",
        resource_type="automation",
        resource_id=automation.id,
        details={"name": automation.name},
    )
    session.delete(automation)
    session.flush()
