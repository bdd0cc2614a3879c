"""Token usage sums and the monthly token limits (SPEC 9 "Usage")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from shared.models import OrgRole
from shared.usage.service import LIMIT_MAX
from webhook_gateway.api.schemas.base import Body, Request, Response, UtcDatetime, whole_number

TokenLimit = Annotated[
    int,
    Field(
        ge=0,
        le=LIMIT_MAX,
        description="input plus output tokens per calendar month (UTC); null: no limit",
    ),
    BeforeValidator(whole_number),
]


class UsageQuery(Request):
    organization_id: uuid.UUID
    since: UtcDatetime | None = Field(
        None, description="turns at or after (default: the start of this month, UTC)"
    )
    until: UtcDatetime | None = Field(None, description="turns before (exclusive)")
    group_by: Literal["user", "automation", "model"] | None = Field(
        None, description="also answer one sum per user, automation or model"
    )


class UsageSum(Response):
    key: str | None = Field(
        None,
        description="the group: a user id, an automation id or a model name (null: none, "
        "e.g. a deleted user's turns); absent from the total",
    )
    input_tokens: int
    output_tokens: int
    total_tokens: int
    turns: int


class UsageLimits(Response):
    organization: int | None = Field(description="the organization's monthly token limit")
    member: int | None = Field(
        description="the caller's own limit in the organization (it overrides the organization's)"
    )


class Usage(Response):
    organization_id: uuid.UUID
    since: datetime
    until: datetime | None
    group_by: Literal["user", "automation", "model"] | None
    scope: Literal["organization", "user"] = Field(
        description="`organization`: every member's turns (org-admins, site-admins); "
        "`user`: only the caller's (members)"
    )
    total: UsageSum
    groups: list[UsageSum] = Field(description="largest first; empty without group_by")
    truncated: bool = Field(description="more groups exist than the 1000 answered")
    limits: UsageLimits


class OrganizationUpdate(Body):
    monthly_token_limit: TokenLimit | None


class Organization(Response):
    id: uuid.UUID
    name: str
    monthly_token_limit: int | None
    updated_at: datetime


class MemberUpdate(Body):
    monthly_token_limit: TokenLimit | None


class Member(Response):
    organization_id: uuid.UUID
    user_id: uuid.UUID
    role: OrgRole
    monthly_token_limit: int | None = Field(
        description="overrides the organization's limit for this member; null: the "
        "organization's applies"
    )
