"""Users, organizations and memberships; site-admins list users and deactivate them.

A deactivated user's tokens stop working at once: :func:`~shared.accounts.authz.authenticate`
reads the user on every request and refuses inactive ones. Reactivating a user makes their
(unrevoked, unexpired) tokens work again. ``principal`` ``None`` in the functions below is the
operator with database access (the CLI).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import audit
from shared.errors import Forbidden, Invalid, NotFound
from shared.infra.clock import Clock
from shared.infra.db.pagination import Page, paginate
from shared.models import Organization, OrganizationMember, OrgRole, SiteRole, User

if TYPE_CHECKING:
    from shared.accounts.authz import Principal

ROLE_CHOICES = ("member", "org-admin", "site-admin")


class AccountError(ValueError):
    pass


def get_or_create_org(session: Session, clock: Clock, name: str) -> Organization:
    name = name.strip()
    if not name:
        raise AccountError("organization name must not be empty")
    org = session.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        now = clock.now()
        org = Organization(name=name, created_at=now, updated_at=now)
        session.add(org)
        session.flush()
    return org


def create_user(session: Session, clock: Clock, email: str, org_name: str, role: str) -> User:
    """Create (or update the membership of) a user; creates the organization if missing."""
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@") or len(email) > 320:
        raise AccountError(f"not an email address: {email!r}")
    if role not in ROLE_CHOICES:
        raise AccountError(f"role must be one of {', '.join(ROLE_CHOICES)}")
    now = clock.now()
    org = get_or_create_org(session, clock, org_name)
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, name="", site_role=SiteRole.MEMBER, created_at=now, updated_at=now)
        session.add(user)
        session.flush()
    if role == "site-admin":
        user.site_role = SiteRole.SITE_ADMIN
        user.updated_at = now
    org_role = OrgRole.MEMBER if role == "member" else OrgRole.ORG_ADMIN
    member = session.get(OrganizationMember, (org.id, user.id))
    if member is None:
        session.add(
            OrganizationMember(
                organization_id=org.id,
                user_id=user.id,
                role=org_role,
                created_at=now,
                updated_at=now,
            )
        )
    else:
        member.role = org_role
        member.updated_at = now
    session.flush()
    return user


# User administration (site-admins) ---------------------------------------------------------


def require_user_admin(principal: Principal | None, not_found: NotFound) -> None:
    """Only site-admins manage users. Everyone else is answered ``not_found`` (the operation
    does not exist for them, as with resources they may not see); a site-admin's token needs
    the ``*`` scope (403: the token's property, not the resource's)."""
    if principal is None:
        return
    if not principal.is_site_admin:
        raise not_found
    if "*" not in principal.scopes:
        raise Forbidden(
            "managing users needs a token with the '*' scope "
            f"(this one has: {', '.join(sorted(principal.scopes))})"
        )


def list_users(
    session: Session,
    principal: Principal | None,
    *,
    active: bool | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[User]:
    """Every user, newest first; ``active`` filters by state."""
    require_user_admin(principal, NotFound("users not found"))
    stmt = select(User)
    if active is not None:
        stmt = stmt.where(User.active.is_(active))
    return paginate(
        session,
        stmt,
        kind="users",
        sort_col=User.created_at,
        id_col=User.id,
        limit=limit,
        cursor=cursor,
    )


def find_user(session: Session, ref: str) -> User:
    """A user by id or email (the CLI's USER argument)."""
    ref = ref.strip()
    try:
        user = session.get(User, uuid.UUID(ref))
    except ValueError:
        user = session.scalar(select(User).where(User.email == ref.lower()))
    if user is None:
        raise NotFound(f"no user with id or email {ref!r}", field="user")
    return user


def emails_by_id(session: Session, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    ids = set(user_ids)
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.email).where(User.id.in_(ids))).all()
    return {uid: email for uid, email in rows}


def set_user_active(
    session: Session,
    clock: Clock,
    principal: Principal | None,
    user_id: uuid.UUID,
    active: bool,
) -> User:
    """Deactivate (their tokens stop working at once) or reactivate a user.

    A site-admin cannot deactivate themself (400, field ``active``). Setting the state a user
    already has changes nothing and writes no audit entry."""
    require_user_admin(principal, NotFound(f"user {user_id} not found", field="user_id"))
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found", field="user_id")
    if principal is not None and user.id == principal.user_id and not active:
        raise Invalid(
            "active: you cannot deactivate yourself; ask another site-admin", field="active"
        )
    if user.active != active:
        user.active = active
        user.updated_at = clock.now()
        audit.record(
            session,
            clock,
            actor_id=principal.user_id if principal is not None else None,
            organization_id=None,
            action="user.activate" if active else "user.deactivate",
            resource_type="user",
            resource_id=user.id,
            details={"email": user.email},
        )
        session.flush()
    return user
