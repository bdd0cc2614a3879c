"""Automations: create, list, get, update, delete (authorization included).

Input is validated once, at the edge: the API's request schemas (which the CLI uses too)
enforce the rules named here (:data:`NAME_MAX`, :data:`RATE_LIMIT_MIN`/:data:`RATE_LIMIT_MAX`,
:func:`unique_ids`) and hand over a :class:`NewAutomation` or :class:`AutomationChanges`. The
operations below only check what needs the database: authorization, the organization and
model config, and name uniqueness (409). Names are the one exception: every caller's name
goes through :func:`canonical_name` (idempotent, so re-applying it to a schema-validated name
costs nothing), because uniqueness is only meaningful on the canonical form.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypedDict

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared import audit
from shared.accounts import authz
from shared.accounts.authz import Principal
from shared.cron.scheduling import refresh_automation_triggers
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.infra.clock import Clock
from shared.infra.db.pagination import Page, paginate
from shared.models import Automation, AutomationStatus, ChatScope, ModelConfig, Organization

__all__ = [
    "NAME_MAX",
    "RATE_LIMIT_MAX",
    "RATE_LIMIT_MIN",
    "AutomationChanges",
    "NewAutomation",
    "canonical_name",
    "create_automation",
    "delete_automation",
    "get_automation",
    "list_automations",
    "require",
    "unique_ids",
    "update_automation",
]

#: longest automation name (after stripping surrounding whitespace)
NAME_MAX = 200
#: bounds of ``max_chat_creates_per_hour`` and ``max_messages_per_hour``
RATE_LIMIT_MIN, RATE_LIMIT_MAX = 1, 1000


#: invisible characters that make look-alike names (all are Unicode format characters, Cf)
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff\u180e")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def _refused(char: str) -> str | None:
    """Why ``char`` may not appear in a name, or None when it may."""
    if char in _ZERO_WIDTH:
        return "zero-width characters"
    if char in _BIDI:
        return "bidirectional control characters"
    category = unicodedata.category(char)
    if category == "Cc":
        return "control characters"
    if category == "Cf":
        return "invisible format characters"
    if category == "Cs":
        return "unpaired surrogates"
    return None


def canonical_name(value: str, *, max_length: int = NAME_MAX) -> str:
    """The canonical form of a user-chosen name (automations, agents): surrounding whitespace
    stripped, NFKC-normalized, so names that only *look* different (full-width letters,
    combining accents) are the same name and collide on uniqueness.

    ``ValueError`` (the reason, without the field name) when the name is empty, longer than
    ``max_length`` once normalized, or holds a character that hides or reorders text:
    control (Cc), zero-width, bidirectional control or other format (Cf) characters.
    NFKC neither removes nor introduces any of these, so checking the result is enough.
    """
    name = unicodedata.normalize("NFKC", value.strip()).strip()
    if not name:
        raise ValueError("must not be empty")
    for position, char in enumerate(name, start=1):
        reason = _refused(char)
        if reason is not None:
            raise ValueError(
                f"must not contain {reason} (U+{ord(char):04X} at position {position}): "
                "they make names that look alike but differ"
            )
    if len(name) > max_length:
        raise ValueError(f"must be at most {max_length} characters once normalized (NFKC)")
    return name


def _checked_name(value: str) -> str:
    """:func:`canonical_name` for the domain's callers: a 400 naming the field."""
    try:
        return canonical_name(value)
    except ValueError as exc:
        raise Invalid(f"name: {exc}", field="name") from None


def unique_ids(values: Iterable[str]) -> list[str]:
    """``mcp_server_ids`` / ``allowed_tools`` are sets kept in the order given."""
    return list(dict.fromkeys(values))


@dataclass(frozen=True)
class NewAutomation:
    """A validated automation to create; it starts ``disabled``."""

    organization_id: uuid.UUID
    name: str
    description: str = ""
    instructions: str = ""
    model_config_id: uuid.UUID | None = None
    mcp_server_ids: tuple[str, ...] = ()
    allowed_tools: tuple[str, ...] = ()
    max_chat_creates_per_hour: int = 10
    max_messages_per_hour: int = 60
    chat_scope: ChatScope = ChatScope.AUTOMATION


class AutomationChanges(TypedDict, total=False):
    """Validated changes to an automation; only the keys present change."""

    name: str
    description: str
    instructions: str
    model_config_id: uuid.UUID | None
    mcp_server_ids: list[str]
    allowed_tools: list[str]
    max_chat_creates_per_hour: int
    max_messages_per_hour: int
    chat_scope: ChatScope
    status: AutomationStatus


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


def _check_model_config(
    session: Session, organization_id: uuid.UUID, value: uuid.UUID | None
) -> uuid.UUID | None:
    """The model config ``value`` when it exists in the organization (404 otherwise)."""
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
    session: Session,
    owner_id: uuid.UUID,
    organization_id: uuid.UUID,
    name: str,
    exclude: uuid.UUID | None,
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


def _apply(session: Session, automation: Automation, changes: AutomationChanges) -> list[str]:
    """Set ``changes`` (the model config after checking it); returns the changed fields."""
    changed: list[str] = []
    for field, value in changes.items():
        if field == "model_config_id":
            value = _check_model_config(
                session, automation.organization_id, changes["model_config_id"]
            )
        if getattr(automation, field) != value:
            setattr(automation, field, value)
            changed.append(field)
    return changed


def create_automation(
    session: Session, clock: Clock, principal: Principal, new: NewAutomation
) -> Automation:
    """Create an automation owned by the caller; it starts ``disabled``."""
    require(principal, authz.AUTOMATION_WRITE)
    org = session.get(Organization, new.organization_id)
    if org is None or not authz.can_create_in(principal, org.id):
        raise NotFound(
            f"organization_id: organization {new.organization_id} not found",
            field="organization_id",
        )
    model_config_id = _check_model_config(session, org.id, new.model_config_id)
    now = clock.now()
    automation = Automation(
        owner_id=principal.user_id,
        organization_id=org.id,
        name=_checked_name(new.name),
        description=new.description,
        instructions=new.instructions,
        model_config_id=model_config_id,
        mcp_server_ids=list(new.mcp_server_ids),
        allowed_tools=list(new.allowed_tools),
        status=AutomationStatus.DISABLED,
        max_chat_creates_per_hour=new.max_chat_creates_per_hour,
        max_messages_per_hour=new.max_messages_per_hour,
        chat_scope=new.chat_scope,
        created_at=now,
        updated_at=now,
    )
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


def _name_filter(name: str) -> list[str]:
    """The names a ``name`` filter matches: its canonical form (how names are saved), and the
    text as given, so rows saved before names were normalized can still be found."""
    try:
        canonical = canonical_name(name)
    except ValueError:
        return [name]
    return list(dict.fromkeys((canonical, name)))


def list_automations(
    session: Session,
    principal: Principal,
    *,
    organization_id: uuid.UUID | None = None,
    status: AutomationStatus | None = None,
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
        stmt = stmt.where(Automation.status == status)
    if name is not None:
        stmt = stmt.where(Automation.name.in_(_name_filter(name)))
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
    changes: AutomationChanges,
) -> Automation:
    """Apply ``changes``; a status change (un)schedules the cron triggers."""
    automation = get_automation(session, principal, automation_id, write=True, lock=True)
    old_status = automation.status
    if "name" in changes:
        changes = changes.copy()
        changes["name"] = _checked_name(changes["name"])
        _check_name_free(
            session, automation.owner_id, automation.organization_id, changes["name"], automation.id
        )
    changed = _apply(session, automation, changes)
    if not changed:
        return automation
    now = clock.now()
    automation.updated_at = now
    _flush_unique(session, automation.name)
    if automation.status != old_status:
        refresh_automation_triggers(session, automation, now)
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
