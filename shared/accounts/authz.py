"""Who may see and change what: roles, token scopes and SQL visibility clauses.

Rules (issue 6):

* A **member** of an organization sees and changes only the automations they own in
  organizations they belong to (and the chats they own there).
* An **org-admin** sees and changes everything in their organization.
* A **site-admin** sees and changes everything.
* A token carries scopes (``automation:read``, ``automation:write``, ``automation:*``,
  ``chat:read``, ``chat:write``, ``*``). Scopes only narrow: a token never exceeds its user's role.
  ``automation:write`` implies ``automation:read`` (a write answers with the resource).
* Resources a caller may not see are answered with 404, never 403, so their existence does
  not leak. A missing *scope* is a property of the token, not of a resource: 403.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from shared.accounts.tokens import TOKEN_PREFIX, hash_token
from shared.infra.clock import Clock
from shared.models import (
    ApiKey,
    Automation,
    Chat,
    OrganizationMember,
    OrgRole,
    SiteRole,
    User,
)

__all__ = [
    "AUTOMATION_READ",
    "AUTOMATION_WRITE",
    "CHAT_READ",
    "CHAT_WRITE",
    "Principal",
    "authenticate",
    "automation_visibility",
    "can_access_automation",
    "can_create_in",
    "can_view_chat",
    "chat_visibility",
]

AUTOMATION_READ = "automation:read"
AUTOMATION_WRITE = "automation:write"
CHAT_READ = "chat:read"
#: post messages to chats, retry them (implies chat:read: a write answers with the resource)
CHAT_WRITE = "chat:write"

#: what each token scope grants
_GRANTS: dict[str, frozenset[str]] = {
    "*": frozenset({AUTOMATION_READ, AUTOMATION_WRITE, CHAT_READ, CHAT_WRITE}),
    "automation:*": frozenset({AUTOMATION_READ, AUTOMATION_WRITE}),
    AUTOMATION_WRITE: frozenset({AUTOMATION_READ, AUTOMATION_WRITE}),
    AUTOMATION_READ: frozenset({AUTOMATION_READ}),
    CHAT_READ: frozenset({CHAT_READ}),
    CHAT_WRITE: frozenset({CHAT_READ, CHAT_WRITE}),
}

#: ``last_used_at`` is written at most this often per token (avoids a write per request)
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a user, their memberships and the token's scopes."""

    user_id: uuid.UUID
    email: str
    site_role: SiteRole
    #: organization id → role in it
    memberships: dict[uuid.UUID, OrgRole] = field(default_factory=dict)
    scopes: frozenset[str] = frozenset({"*"})
    api_key_id: uuid.UUID | None = None

    @property
    def is_site_admin(self) -> bool:
        return self.site_role is SiteRole.SITE_ADMIN

    @property
    def permissions(self) -> frozenset[str]:
        out: set[str] = set()
        for scope in self.scopes:
            out |= _GRANTS.get(scope, frozenset())
        return frozenset(out)

    def has(self, permission: str) -> bool:
        return permission in self.permissions

    def is_org_admin(self, organization_id: uuid.UUID) -> bool:
        return self.memberships.get(organization_id) is OrgRole.ORG_ADMIN

    def is_member(self, organization_id: uuid.UUID) -> bool:
        return organization_id in self.memberships

    @property
    def admin_org_ids(self) -> list[uuid.UUID]:
        return [org for org, role in self.memberships.items() if role is OrgRole.ORG_ADMIN]

    @property
    def member_org_ids(self) -> list[uuid.UUID]:
        return list(self.memberships)


def load_principal(
    session: Session,
    user: User,
    scopes: list[Any] | None = None,
    api_key_id: uuid.UUID | None = None,
) -> Principal:
    rows = session.execute(
        select(OrganizationMember.organization_id, OrganizationMember.role).where(
            OrganizationMember.user_id == user.id
        )
    ).all()
    return Principal(
        user_id=user.id,
        email=user.email,
        site_role=SiteRole(user.site_role),
        memberships={org_id: OrgRole(role) for org_id, role in rows},
        scopes=frozenset(str(s) for s in (scopes if scopes is not None else ["*"])),
        api_key_id=api_key_id,
    )


def authenticate(session: Session, clock: Clock, token: str) -> Principal | None:
    """The principal of a bearer token, or None when unknown, revoked, expired or its user is
    deactivated.

    Reads the key and its user from the database on every request, with no cache, so a
    revocation or deactivation is refused by every process from its next request on."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.token_hash == hash_token(token)))
    if key is None or key.revoked_at is not None:
        return None
    now = clock.now()
    if token_expired(key, now):
        return None
    user = session.get(User, key.user_id)
    if user is None or not user.active:
        return None
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now
    return load_principal(session, user, list(key.scopes or []), key.id)


# Automations -------------------------------------------------------------------------------


def can_access_automation(principal: Principal, automation: Automation) -> bool:
    """Visibility and change rights coincide for automations (and their triggers/events)."""
    if principal.is_site_admin:
        return True
    if principal.is_org_admin(automation.organization_id):
        return True
    return automation.owner_id == principal.user_id and principal.is_member(
        automation.organization_id
    )


def automation_visibility(principal: Principal) -> ColumnElement[bool]:
    """SQL condition on :class:`Automation` matching what ``principal`` may see."""
    if principal.is_site_admin:
        return true()
    clauses: list[ColumnElement[bool]] = []
    if principal.admin_org_ids:
        clauses.append(Automation.organization_id.in_(principal.admin_org_ids))
    if principal.member_org_ids:
        clauses.append(
            and_(
                Automation.owner_id == principal.user_id,
                Automation.organization_id.in_(principal.member_org_ids),
            )
        )
    return or_(*clauses) if clauses else false()


def can_create_in(principal: Principal, organization_id: uuid.UUID) -> bool:
    """Anyone may create automations (owned by themselves) in organizations they belong to."""
    return principal.is_site_admin or principal.is_member(organization_id)


# Chats -------------------------------------------------------------------------------------


def can_view_chat(principal: Principal, chat: Chat) -> bool:
    if principal.is_site_admin or principal.is_org_admin(chat.organization_id):
        return True
    return chat.owner_id == principal.user_id and principal.is_member(chat.organization_id)


def chat_visibility(principal: Principal) -> ColumnElement[bool]:
    if principal.is_site_admin:
        return true()
    clauses: list[ColumnElement[bool]] = []
    if principal.admin_org_ids:
        clauses.append(Chat.organization_id.in_(principal.admin_org_ids))
    if principal.member_org_ids:
        clauses.append(
            and_(
                Chat.owner_id == principal.user_id,
                Chat.organization_id.in_(principal.member_org_ids),
            )
        )
    return or_(*clauses) if clauses else false()


def token_expired(key: ApiKey, now: datetime) -> bool:
    return key.expires_at is not None and key.expires_at <= now
