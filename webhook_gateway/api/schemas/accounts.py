"""Users, tokens and organizations."""

from __future__ import annotations

import uuid

from shared.models import (
    OrgRole,
    SiteRole,
)
from webhook_gateway.api.schemas.base import (
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
