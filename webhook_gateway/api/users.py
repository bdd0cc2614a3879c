"""``/users/me``: who the caller is."""

from __future__ import annotations

from sqlalchemy import select

from shared.models import Organization
from webhook_gateway.api import schemas as s
from webhook_gateway.api.framework import Ctx, operation


@operation(
    "GET", "/users/me", summary="The caller", tag="users", response=s.Me, errors=s.READ_ERRORS
)
def get_me(ctx: Ctx) -> s.Me:
    """The authenticated user, their organizations and roles, and the token's scopes."""
    p = ctx.principal
    orgs = []
    if p.memberships:
        rows = ctx.session.execute(
            select(Organization.id, Organization.name)
            .where(Organization.id.in_(list(p.memberships)))
            .order_by(Organization.name)
        ).all()
        orgs = [
            s.OrganizationMembership(id=oid, name=name, role=p.memberships[oid])
            for oid, name in rows
        ]
    return s.Me(
        id=p.user_id,
        email=p.email,
        site_role=p.site_role,
        organizations=orgs,
        scopes=sorted(p.scopes),
    )
