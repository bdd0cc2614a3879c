"""Audit log entries for changes made through the API or the admin CLI (never secrets)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from shared.infra.clock import Clock
from shared.models import AuditLog

__all__ = ["record"]


def record(
    session: Session,
    clock: Clock,
    *,
    actor_id: uuid.UUID | None,
    organization_id: uuid.UUID | None,
    action: str,
    resource_type: str,
    resource_id: uuid.UUID | None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    entry = AuditLog(
        created_at=clock.now(),
        actor_id=actor_id,
        organization_id=organization_id,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        details=details or {},
    )
    session.add(entry)
    return entry
