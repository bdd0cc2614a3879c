"""The event log of an automation (read-only: events are written by the system only)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.accounts.authz import Principal
from shared.automations.service import get_automation
from shared.errors import Invalid
from shared.infra.db.pagination import Page, paginate
from shared.models import AutomationEvent, EventStatus

__all__ = ["list_events"]


def _utc(name: str, value: datetime | None) -> datetime | None:
    """``value`` in UTC (the API's schemas already did this; other callers may not have)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise Invalid(f"{name}: needs a timezone (e.g. 2026-01-15T12:00:00Z)", field=name)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise Invalid(
            f"{name}: out of range: in UTC it must fall between 0001-01-01T00:00:00Z and "
            "9999-12-31T23:59:59Z",
            field=name,
        ) from None


def list_events(
    session: Session,
    principal: Principal,
    automation_id: uuid.UUID,
    *,
    statuses: list[str] | None = None,
    trigger_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[AutomationEvent]:
    """Newest first; ``since`` inclusive, ``until`` exclusive (on ``received_at``)."""
    automation = get_automation(session, principal, automation_id)
    stmt = select(AutomationEvent).where(AutomationEvent.automation_id == automation.id)
    if statuses:
        try:
            wanted = [EventStatus(s) for s in statuses]
        except ValueError:
            allowed = ", ".join(s.value for s in EventStatus)
            raise Invalid(f"status: must be one of {allowed}", field="status") from None
        stmt = stmt.where(AutomationEvent.status.in_(wanted))
    if trigger_id is not None:
        stmt = stmt.where(AutomationEvent.trigger_id == trigger_id)
    since, until = _utc("since", since), _utc("until", until)
    if since is not None:
        stmt = stmt.where(AutomationEvent.received_at >= since)
    if until is not None:
        stmt = stmt.where(AutomationEvent.received_at < until)
    return paginate(
        session,
        stmt,
        kind="events",
        sort_col=AutomationEvent.received_at,
        id_col=AutomationEvent.id,
        limit=limit,
        cursor=cursor,
    )
