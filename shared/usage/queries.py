"""``GET /usage``: token sums of one organization's turns (SPEC 9 "Usage").

Who sees what: org-admins and site-admins see the whole organization; a member sees only
their own turns (``scope: "user"``), whatever they group by, so a member learns neither the
organization's total nor a colleague's usage. Anybody else gets 404. Every query is keyed by
the organization first, so sums never cross organizations.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.accounts import authz
from shared.accounts.authz import Principal
from shared.automations.service import require
from shared.errors import Invalid, NotFound
from shared.infra.clock import Clock
from shared.models import Organization, OrganizationMember, UsageRecord
from shared.usage.service import month_start

__all__ = ["GROUP_BY", "GroupBy", "UsageSum", "UsageSummary", "usage_summary"]

GroupBy = Literal["user", "automation", "model"]
GROUP_BY: tuple[GroupBy, ...] = ("user", "automation", "model")
#: at most this many groups are answered (largest first); ``truncated`` says when more exist
MAX_GROUPS = 1000

_GROUP_COLUMNS: dict[GroupBy, Any] = {
    "user": UsageRecord.user_id,
    "automation": UsageRecord.automation_id,
    "model": UsageRecord.model,
}


@dataclass(frozen=True)
class UsageSum:
    """Tokens of a set of turns; ``key`` names the group (a user or automation id, a model
    name; None for turns without one, e.g. of a deleted user)."""

    input_tokens: int
    output_tokens: int
    turns: int
    key: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class UsageSummary:
    organization_id: uuid.UUID
    since: datetime
    until: datetime | None
    group_by: GroupBy | None
    #: ``organization`` (every member's turns) or ``user`` (only the caller's)
    scope: Literal["organization", "user"]
    total: UsageSum
    groups: list[UsageSum] = field(default_factory=list)
    truncated: bool = False
    #: the monthly limits that apply to the caller in this organization (null: none)
    organization_limit: int | None = None
    member_limit: int | None = None


def _sums(*columns: Any) -> tuple[Any, ...]:
    return (
        *columns,
        func.coalesce(func.sum(UsageRecord.input_tokens), 0),
        func.coalesce(func.sum(UsageRecord.output_tokens), 0),
        func.count(UsageRecord.id),
    )


def usage_summary(
    session: Session,
    clock: Clock,
    principal: Principal,
    organization_id: uuid.UUID,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    group_by: GroupBy | None = None,
) -> UsageSummary:
    """Sums over ``[since, until)`` (default: from the start of this calendar month, UTC)."""
    require(principal, authz.AUTOMATION_READ)
    org = session.get(Organization, organization_id)
    if org is None or not (principal.is_site_admin or principal.is_member(organization_id)):
        raise NotFound(
            f"organization_id: organization {organization_id} not found",
            field="organization_id",
        )
    since = since if since is not None else month_start(clock.now())
    if until is not None and until <= since:
        raise Invalid("until: must be later than since", field="until")
    whole = principal.is_site_admin or principal.is_org_admin(organization_id)
    conditions = [UsageRecord.organization_id == organization_id, UsageRecord.created_at >= since]
    if until is not None:
        conditions.append(UsageRecord.created_at < until)
    if not whole:
        conditions.append(UsageRecord.user_id == principal.user_id)
    total_row = session.execute(select(*_sums()).where(*conditions)).one()
    total = UsageSum(int(total_row[0]), int(total_row[1]), int(total_row[2]))
    groups: list[UsageSum] = []
    truncated = False
    if group_by is not None:
        column = _GROUP_COLUMNS[group_by]
        tokens = func.sum(UsageRecord.input_tokens + UsageRecord.output_tokens)
        stmt = (
            select(*_sums(column))
            .where(*conditions)
            .group_by(column)
            .order_by(tokens.desc(), column)
            .limit(MAX_GROUPS + 1)
        )
        rows = session.execute(stmt).all()
        truncated = len(rows) > MAX_GROUPS
        groups = [
            UsageSum(int(i), int(o), int(n), key=None if key is None else str(key))
            for key, i, o, n in rows[:MAX_GROUPS]
        ]
    member_limit = session.scalar(
        select(OrganizationMember.monthly_token_limit).where(
            OrganizationMember.organization_id == organization_id,
            OrganizationMember.user_id == principal.user_id,
        )
    )
    return UsageSummary(
        organization_id=organization_id,
        since=since,
        until=until,
        group_by=group_by,
        scope="organization" if whole else "user",
        total=total,
        groups=groups,
        truncated=truncated,
        organization_limit=org.monthly_token_limit,
        member_limit=member_limit,
    )
