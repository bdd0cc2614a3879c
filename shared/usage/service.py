"""Token usage (SPEC 9 "Usage"): the ledger a turn writes, and the monthly limits a turn
checks before it starts.

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

from shared.models import Organization, OrganizationMember, UsageRecord
from shared.runner.errors import UsageLimitExceeded

__all__ = ["check_turn_allowed", "month_start", "record_turn_usage", "tokens_used"]


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
    since = month_start(now)
    if member_limit is not None:
        used = tokens_used(session, organization_id, since, user_id)
        if used >= member_limit:
            raise UsageLimitExceeded(
                f"your monthly token limit in this organization ({member_limit}) is used up "
                f"({used} tokens since {since:%Y-%m-%d})"
            )
        return
    org_limit = session.scalar(
        select(Organization.monthly_token_limit).where(Organization.id == organization_id)
    )
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
