"""Users, organizations and memberships."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.infra.clock import Clock
from shared.models import Organization, OrganizationMember, OrgRole, SiteRole, User

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
