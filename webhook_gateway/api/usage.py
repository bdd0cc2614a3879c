"""``/usage`` (token sums) and the monthly token limits of organizations and their members
(SPEC 9 "Usage")."""

from __future__ import annotations

import uuid

from shared.models import Organization as OrganizationRow
from shared.usage import queries
from shared.usage import service as usage
from webhook_gateway.api import schemas as s
from webhook_gateway.api.framework import Ctx, operation


def _sum(row: queries.UsageSum) -> s.UsageSum:
    return s.UsageSum(
        key=row.key,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        total_tokens=row.total_tokens,
        turns=row.turns,
    )


@operation(
    "GET",
    "/usage",
    summary="Token usage of an organization",
    tag="usage",
    response=s.Usage,
    query=s.UsageQuery,
    errors=s.READ_ERRORS,
)
def get_usage(ctx: Ctx) -> s.Usage:
    """Input and output tokens of the organization's turns in `[since, until)`, in total and
    with `group_by` per user, automation or model. Org-admins and site-admins see the whole
    organization; members see only their own turns (`scope: user`)."""
    q: s.UsageQuery = ctx.query
    summary = queries.usage_summary(
        ctx.session,
        ctx.clock,
        ctx.principal,
        q.organization_id,
        since=q.since,
        until=q.until,
        group_by=q.group_by,
    )
    return s.Usage(
        organization_id=summary.organization_id,
        since=summary.since,
        until=summary.until,
        group_by=summary.group_by,
        scope=summary.scope,
        total=_sum(summary.total),
        groups=[_sum(g) for g in summary.groups],
        truncated=summary.truncated,
        limits=s.UsageLimits(organization=summary.organization_limit, member=summary.member_limit),
    )


def _organization(row: OrganizationRow) -> s.Organization:
    return s.Organization(
        id=row.id,
        name=row.name,
        monthly_token_limit=row.monthly_token_limit,
        updated_at=row.updated_at,
    )


@operation(
    "PATCH",
    "/organizations/{organization_id}",
    summary="Set an organization's monthly token limit",
    tag="usage",
    response=s.Organization,
    body=s.OrganizationUpdate,
    errors=s.WRITE_ERRORS,
)
def update_organization(ctx: Ctx, organization_id: uuid.UUID) -> s.Organization:
    """Org-admins and site-admins (403 for members). `monthly_token_limit: null` removes the
    limit. A turn that would start at or over the limit fails with kind `usage_limit`."""
    body: s.OrganizationUpdate = ctx.body
    row = usage.set_organization_limit(
        ctx.session, ctx.clock, ctx.principal, organization_id, body.monthly_token_limit
    )
    return _organization(row)


@operation(
    "PATCH",
    "/organizations/{organization_id}/members/{user_id}",
    summary="Set a member's own monthly token limit",
    tag="usage",
    response=s.Member,
    body=s.MemberUpdate,
    errors=s.WRITE_ERRORS,
)
def update_member(ctx: Ctx, organization_id: uuid.UUID, user_id: uuid.UUID) -> s.Member:
    """Org-admins and site-admins. The member's limit overrides the organization's for their
    turns (their own usage counts against it); null: the organization's applies again."""
    body: s.MemberUpdate = ctx.body
    row = usage.set_member_limit(
        ctx.session, ctx.clock, ctx.principal, organization_id, user_id, body.monthly_token_limit
    )
    return s.Member(
        organization_id=row.organization_id,
        user_id=row.user_id,
        role=row.role,
        monthly_token_limit=row.monthly_token_limit,
    )
