"""Users, organizations, memberships and API tokens."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.clock import Clock
from shared.models import ApiKey, Organization, OrganizationMember, OrgRole, SiteRole, User

TOKEN_PREFIX = "ca_"
#: Scopes a token may carry; a token never exceeds its user's role.
SCOPES = ("automation:read", "automation:write", "automation:*", "chat:read", "*")
ROLE_CHOICES = ("member", "org-admin", "site-admin")


class AccountError(ValueError):
    pass


def hash_token(token: str) -> str:
    # Tokens are 256-bit random values, so a fast unsalted hash is not brute-forceable.
    return hashlib.sha256(token.encode()).hexdigest()


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


def create_token(
    session: Session, clock: Clock, email: str, scopes: list[str] | None = None, name: str = ""
) -> tuple[ApiKey, str]:
    """Returns the stored key and the plaintext token, which is never stored."""
    scopes = list(scopes or ["*"])
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise AccountError(f"unknown scope {bad[0]!r}; choose from {', '.join(SCOPES)}")
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise AccountError(
            f"no user with email {email!r}; create it with `automations users create`"
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        user_id=user.id,
        name=name,
        token_prefix=token[:10],
        token_hash=hash_token(token),
        scopes=scopes,
        created_at=clock.now(),
    )
    session.add(key)
    session.flush()
    return key, token
