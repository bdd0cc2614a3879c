"""Users, tokens and organizations."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from shared.models import (
    OrgRole,
    SiteRole,
)
from webhook_gateway.api.schemas.base import (
    Body,
    PageQuery,
    Response,
)

# Users -------------------------------------------------------------------------------------


class OrganizationMembership(Response):
    id: uuid.UUID
    name: str
    role: OrgRole


class Me(Response):
    id: uuid.UUID
    email: str
    site_role: SiteRole
    organizations: list[OrganizationMembership]
    scopes: list[str]


class UserListQuery(PageQuery):
    active: bool | None = Field(None, description="only active (true) or deactivated (false)")


class User(Response):
    id: uuid.UUID
    email: str
    name: str
    site_role: SiteRole
    active: bool
    created_at: datetime


class UserPage(Response):
    items: list[User]
    next_cursor: str | None


class UserUpdate(Body):
    active: bool = Field(
        description="false: deactivate (the user's tokens stop working at once); true: reactivate"
    )


# Tokens ------------------------------------------------------------------------------------


class TokenListQuery(PageQuery):
    include_revoked: bool = Field(False, description="also list revoked tokens")


class Token(Response):
    """An API token's metadata; the token itself is shown only once, when it is created."""

    id: uuid.UUID
    name: str
    token_prefix: str = Field(description="the token's first characters, to recognise it")
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None = Field(description="updated at most once a minute per token")
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenPage(Response):
    items: list[Token]
    next_cursor: str | None
