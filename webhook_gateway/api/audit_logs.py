"""``/audit-logs``: who changed what (SPEC 11 "Audit log").

Visibility: site-admins read every entry; org-admins read the entries of the organizations
they administer (site-wide entries such as ``site_config.update`` have no organization and
are for site-admins only); anyone else gets 403 ``forbidden``, not an empty list, so that a
client can tell "nothing happened" from "you may not look". Reading needs a token with the
``*`` scope, like every other administrative read.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, select, true

from shared.accounts.authz import Principal
from shared.errors import Forbidden
from shared.infra.db.pagination import paginate
from shared.models import AuditLog
from webhook_gateway.api import schemas as s
from webhook_gateway.api.framework import Ctx, operation


def audit_visibility(principal: Principal) -> ColumnElement[bool]:
    """SQL condition on :class:`AuditLog` for what ``principal`` may read; 403 for members."""
    if "*" not in principal.scopes:
        raise Forbidden(
            "reading the audit log needs a token with the '*' scope "
            f"(this one has: {', '.join(sorted(principal.scopes))})"
        )
    if principal.is_site_admin:
        return true()
    if not principal.admin_org_ids:
        raise Forbidden("only site-admins and org-admins may read the audit log", code="forbidden")
    return AuditLog.organization_id.in_(principal.admin_org_ids)


@operation(
    "GET",
    "/audit-logs",
    summary="The audit log, newest first (site-admins; org-admins for their organizations)",
    tag="site",
    response=s.AuditLogPage,
    query=s.AuditLogQuery,
    errors=s.READ_ERRORS,
)
def list_audit_logs(ctx: Ctx) -> s.AuditLogPage:
    """Filters: `action` (e.g. `chat.auto_archive`), `resource_type`, `resource_id`,
    `organization_id`, `since` (inclusive). Entries written by jobs have no `actor_id`.
    Others than site-admins and org-admins get 403 `forbidden`."""
    q: s.AuditLogQuery = ctx.query
    stmt = select(AuditLog).where(audit_visibility(ctx.principal))
    if q.action is not None:
        stmt = stmt.where(AuditLog.action == q.action)
    if q.resource_type is not None:
        stmt = stmt.where(AuditLog.resource_type == q.resource_type)
    if q.resource_id is not None:
        stmt = stmt.where(AuditLog.resource_id == q.resource_id)
    if q.organization_id is not None:
        stmt = stmt.where(AuditLog.organization_id == q.organization_id)
    if q.since is not None:
        stmt = stmt.where(AuditLog.created_at >= q.since)
    page = paginate(
        ctx.session,
        stmt,
        kind="audit_logs",
        sort_col=AuditLog.created_at,
        id_col=AuditLog.id,
        limit=q.limit,
        cursor=q.cursor,
    )
    return s.AuditLogPage(
        items=[s.AuditLogEntry.model_validate(e, from_attributes=True) for e in page.items],
        next_cursor=page.next_cursor,
    )
