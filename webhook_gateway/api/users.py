"""``/users``: who the caller is; site-admins list users and deactivate or reactivate them."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from shared.accounts import users
from shared.models import Organization
from shared.models import User as UserRow
from webhook_gateway.api import schemas as s
from webhook_gateway.api.framework import Ctx, operation


def user_out(row: UserRow) -> s.User:
    return s.User.model_validate(row, from_attributes=True)


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


@operation(
    "GET",
    "/users",
    summary="List users (site-admins)",
    tag="users",
    response=s.UserPage,
    query=s.UserListQuery,
    errors=s.READ_ERRORS,
)
def list_users(ctx: Ctx) -> s.UserPage:
    """Every user, newest first; `active` filters. Site-admins with a `*` token only (others:
    404; a narrower token: 403)."""
    q: s.UserListQuery = ctx.query
    page = users.list_users(
        ctx.session, ctx.principal, active=q.active, limit=q.limit, cursor=q.cursor
    )
    return s.UserPage(items=[user_out(u) for u in page.items], next_cursor=page.next_cursor)


@operation(
    "PATCH",
    "/users/{user_id}",
    summary="Deactivate or reactivate a user (site-admins)",
    tag="users",
    response=s.User,
    body=s.UserUpdate,
    errors=s.WRITE_ERRORS,
)
def update_user(ctx: Ctx, user_id: uuid.UUID) -> s.User:
    """`{"active": false}`: the user's tokens stop working at once (401) until they are
    reactivated with `{"active": true}`. A site-admin cannot deactivate themself (400).
    Site-admins with a `*` token only (others: 404; a narrower token: 403)."""
    body: s.UserUpdate = ctx.body
    return user_out(
        users.set_user_active(ctx.session, ctx.clock, ctx.principal, user_id, body.active)
    )
