"""Token usage (SPEC 9 "Usage"): the ledger a turn writes, the monthly limits a turn
checks before it starts, and setting those limits (org-admins and site-admins).

A month is a calendar month in UTC. A member's own ``monthly_token_limit`` in the
organization overrides the organization's; the organization's sum counts every member, the
member's sum only their own turns. Sums and limits never cross organizations: every query is
keyed by the organization first.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from shared import audit
from shared.accounts import authz
from shared.accounts.authz import Principal
from shared.errors import Forbidden, NotFound
from shared.infra.clock import Clock
from shared.models import Organization, OrganizationMember, UsageRecord
from shared.runner.errors import UsageLimitExceeded

__all__ = [
    "LIMIT_MAX",
    "check_limits",
    "check_turn_allowed",
    "month_start",
    "record_turn_usage",
    "set_member_limit",
    "set_organization_limit",
    "tokens_used",
]

#: the largest monthly token limit accepted (fits a BigInteger with room to spare)
LIMIT_MAX = 10**15


def month_start(now: datetime) -> datetime:
    """The first instant of ``now``'s calendar month in UTC."""
    now = now.astimezone(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def tokens_used(
    session: Session,
    organization_id: uuid.UUID,
    since: datetime,
    user_id: uuid.UUID | None = None,
) -> int:
    """Input plus output tokens of the organization's turns since ``since`` (only
    ``user_id``'s when given)."""
    query = select(
        func.coalesce(func.sum(UsageRecord.input_tokens + UsageRecord.output_tokens), 0)
    ).where(UsageRecord.organization_id == organization_id, UsageRecord.created_at >= since)
    if user_id is not None:
        query = query.where(UsageRecord.user_id == user_id)
    return int(session.scalar(query) or 0)


def check_turn_allowed(
    session: Session, now: datetime, organization_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    """Raise :class:`~shared.runner.errors.UsageLimitExceeded` when a turn of ``user_id`` in
    the organization would start at or over the limit that applies to it this month."""
    member_limit = session.scalar(
        select(OrganizationMember.monthly_token_limit).where(
            OrganizationMember.organization_id == organization_id,
            OrganizationMember.user_id == user_id,
        )
    )
    org_limit = session.scalar(
        select(Organization.monthly_token_limit).where(Organization.id == organization_id)
    )
    check_limits(session, now, organization_id, user_id, member_limit, org_limit)


def check_limits(
    session: Session,
    now: datetime,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    member_limit: int | None,
    org_limit: int | None,
) -> None:
    """:func:`check_turn_allowed` with the two limits already read (the runner reads them
    with the chat, in one statement). The member's own limit, when set, replaces the
    organization's. Without limits nothing is summed."""
    since = month_start(now)
    if member_limit is not None:
        used = tokens_used(session, organization_id, since, user_id)
        if used >= member_limit:
            raise UsageLimitExceeded(
                f"your monthly token limit in this organization ({member_limit}) is used up "
                f"({used} tokens since {since:%Y-%m-%d})"
            )
        return
    if org_limit is not None:
        used = tokens_used(session, organization_id, since)
        if used >= org_limit:
            raise UsageLimitExceeded(
                f"the organization's monthly token limit ({org_limit}) is used up "
                f"({used} tokens since {since:%Y-%m-%d})"
            )


def record_turn_usage(
    session: Session,
    *,
    now: datetime,
    organization_id: uuid.UUID,
    user_id: uuid.UUID | None,
    automation_id: uuid.UUID | None,
    chat_id: uuid.UUID | None,
    model_config_id: uuid.UUID | None,
    model: str,
    input_tokens: int,
    output_tokens: int,
) -> None:
    """Append one turn's tokens to the ledger (in the caller's transaction: the turn's
    fenced commit)."""
    session.execute(
        insert(UsageRecord).values(
            id=uuid.uuid4(),
            organization_id=organization_id,
            user_id=user_id,
            automation_id=automation_id,
            chat_id=chat_id,
            model_config_id=model_config_id,
            model=model[:200],
            input_tokens=max(0, int(input_tokens)),
            output_tokens=max(0, int(output_tokens)),
            created_at=now,
        )
    )


# Setting limits -------------------------------------------------------------------------------


def _administered(
    session: Session, principal: Principal, organization_id: uuid.UUID
) -> Organization:
    """The organization when ``principal`` administers it: 404 when they cannot see it, 403
    ``forbidden`` when they are a plain member. Needs the ``automation:write`` scope."""
    if not principal.has(authz.AUTOMATION_WRITE):
        raise Forbidden(
            f"this token lacks the {authz.AUTOMATION_WRITE} scope "
            f"(it has: {', '.join(sorted(principal.scopes))})"
        )
    org = session.get(Organization, organization_id, with_for_update=True)
    if org is None or not (principal.is_site_admin or principal.is_member(organization_id)):
        raise NotFound(f"organization {organization_id} not found", field="organization_id")
    if not (principal.is_site_admin or principal.is_org_admin(organization_id)):
        raise Forbidden(
            "only the organization's org-admins may change its token limits", code="forbidden"
        )
    return org


def set_organization_limit(
    session: Session,
    clock: Clock,
    principal: Principal,
    organization_id: uuid.UUID,
    limit: int | None,
) -> Organization:
    """Set (or with None, clear) the organization's monthly token limit."""
    org = _administered(session, principal, organization_id)
    if org.monthly_token_limit != limit:
        old = org.monthly_token_limit
        org.monthly_token_limit = limit
        org.updated_at = clock.now()
        audit.record(
            session,
            clock,
            actor_id=principal.user_id,
            organization_id=org.id,
            action="organization.token_limit",
            resource_type="organization",
            resource_id=org.id,
            details={"monthly_token_limit": {"from": old, "to": limit}},
        )
        session.flush()
    return org


def set_member_limit(
    session: Session,
    clock: Clock,
    principal: Principal,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    limit: int | None,
) -> OrganizationMember:
    """Set (or with None, clear) one member's own monthly token limit in the organization,
    which overrides the organization's (:func:`check_turn_allowed`)."""
    _administered(session, principal, organization_id)
    member = session.scalar(
        select(OrganizationMember)
        .where(
            OrganizationMember.organization_id == organization_id,
            OrganizationMember.user_id == user_id,
        )
        .with_for_update()
    )
    if member is None:
        raise NotFound(
            f"user_id: user {user_id} is not a member of this organization", field="user_id"
        )
    if member.monthly_token_limit != limit:
        old = member.monthly_token_limit
        member.monthly_token_limit = limit
        member.updated_at = clock.now()
        audit.record(
            session,
            clock,
            actor_id=principal.user_id,
            organization_id=organization_id,
            action="organization_member.token_limit",
            resource_type="user",
            resource_id=user_id,
            details={"monthly_token_limit": {"from": old, "to": limit}},
        )
        session.flush()
    return member
