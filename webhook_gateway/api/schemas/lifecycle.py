"""Site config, the audit log and notifications (SPEC 11)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from shared.site_config import MAX_DAYS
from webhook_gateway.api.schemas.base import (
    NO_NUL,
    Body,
    PageQuery,
    Response,
    UtcDatetime,
    whole_number,
)

# Site config -------------------------------------------------------------------------------

#: JSON Schema counts 20.0 as an integer: accepted as 20 (1.5, "20" and true are not)
Days = Annotated[int, Field(ge=0, le=MAX_DAYS), BeforeValidator(whole_number)]


class SiteConfig(Response):
    auto_archive_days: int = Field(
        description="archive root chats inactive for this many days (0: never)"
    )
    chat_retention_days: int = Field(
        description="delete archived chats this many days after archiving (0: keep forever)"
    )


class SiteConfigUpdate(Body):
    """Only the fields given change; each is a whole number of days, 0 to 3650."""

    # A ``None`` default is never validated: it only marks the field as absent.
    auto_archive_days: Days = None  # type: ignore[assignment]
    chat_retention_days: Days = None  # type: ignore[assignment]


# Audit log ---------------------------------------------------------------------------------

AuditText = Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL)]


class AuditLogQuery(PageQuery):
    action: AuditText | None = Field(None, description="e.g. chat.archive (exact)")
    resource_type: AuditText | None = Field(None, description="e.g. chat, automation")
    resource_id: uuid.UUID | None = None
    organization_id: uuid.UUID | None = None
    since: UtcDatetime | None = Field(None, description="created at or after (inclusive)")


class AuditLogEntry(Response):
    id: uuid.UUID
    created_at: datetime
    actor_id: uuid.UUID | None = Field(description="null for the system (jobs)")
    organization_id: uuid.UUID | None
    action: str
    resource_type: str
    resource_id: uuid.UUID | None
    details: dict[str, Any]


class AuditLogPage(Response):
    items: list[AuditLogEntry]
    next_cursor: str | None


# Notifications -----------------------------------------------------------------------------


class NotificationListQuery(PageQuery):
    unread: bool | None = Field(None, description="true: only unread ones")


class Notification(Response):
    id: uuid.UUID
    kind: str
    title: str
    body: str
    details: dict[str, Any]
    created_at: datetime
    read_at: datetime | None
    email_status: str = Field(description="none | pending | sent | failed")


class NotificationPage(Response):
    items: list[Notification]
    next_cursor: str | None
