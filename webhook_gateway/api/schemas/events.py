"""Events and replay."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    model_validator,
)

from shared.models import (
    EventStatus,
)
from shared.triggers.service import (
    validate_filter,
    validate_label_paths,
)
from webhook_gateway.api.schemas.base import (
    Body,
    JsonObject,
    LabelPaths,
    PageQuery,
    Response,
    no_nul_json,
)

# Events ------------------------------------------------------------------------------------


class Event(Response):
    id: uuid.UUID
    automation_id: uuid.UUID
    trigger_id: uuid.UUID | None
    received_at: datetime
    delivery_id: str | None
    payload: Any
    filter_matched: bool | None
    resolved_labels: dict[str, Any] | None
    matched_chat_id: uuid.UUID | None
    created_chat_id: uuid.UUID | None
    status: EventStatus
    error: str | None
    occurrences: int
    processed_at: datetime | None


class EventPage(Response):
    items: list[Event]
    next_cursor: str | None


class EventListQuery(PageQuery):
    status: list[EventStatus] | None = None
    trigger_id: uuid.UUID | None = None
    since: AwareDatetime | None = Field(None, description="received at or after (inclusive)")
    until: AwareDatetime | None = Field(None, description="received before (exclusive)")


# Dry run -----------------------------------------------------------------------------------


class TestRequest(Body):
    payload: Annotated[Any, AfterValidator(no_nul_json)]
    trigger_id: uuid.UUID | None = Field(
        None,
        description="use this trigger's filter and label paths (default: the oldest webhook "
        "trigger's) where none are supplied",
    )
    filter: JsonObject | None = None
    label_paths: LabelPaths | None = None

    @model_validator(mode="after")
    def _semantics(self) -> Self:
        """A supplied filter or label paths must be valid as if they were saved."""
        validate_filter(self.filter)
        validate_label_paths(self.label_paths)
        return self


class TestResult(Response):
    filter_matched: bool
    resolved_labels: dict[str, Any]
    existing_chat_id: uuid.UUID | None
    would_create_new_chat: bool
