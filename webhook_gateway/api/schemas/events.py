"""Events and replay."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    Field,
    model_validator,
)

from shared.events.replay import MAX_BULK
from shared.models import (
    EventStatus,
)
from shared.triggers.service import (
    validate_filter,
    validate_label_paths,
)
from webhook_gateway.api.schemas.automations import EventType
from webhook_gateway.api.schemas.base import (
    Body,
    JsonObject,
    LabelPaths,
    PageQuery,
    Response,
    UtcDatetime,
    no_nul_json,
)

# Events ------------------------------------------------------------------------------------


class Event(Response):
    id: uuid.UUID
    automation_id: uuid.UUID
    trigger_id: uuid.UUID | None
    received_at: datetime
    delivery_id: str | None
    event_type: str | None = Field(description="the sender's event type (X-GitHub-Event, …)")
    headers: dict[str, Any] | None = Field(description="request headers, secrets removed")
    replay_of: uuid.UUID | None = Field(description="the event this one replays")
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
    since: UtcDatetime | None = Field(None, description="received at or after (inclusive)")
    until: UtcDatetime | None = Field(None, description="received before (exclusive)")


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
    event_type: EventType | None = Field(
        None, description="the sender's event type, checked against the trigger's event_types"
    )

    @model_validator(mode="after")
    def _semantics(self) -> Self:
        """A supplied filter or label paths must be valid as if they were saved."""
        validate_filter(self.filter)
        validate_label_paths(self.label_paths)
        return self


class TestResult(Response):
    filter_matched: bool
    event_type_matched: bool | None = Field(
        description="null when no event_type was given or the trigger accepts every type"
    )
    resolved_labels: dict[str, Any]
    existing_chat_id: uuid.UUID | None
    would_create_new_chat: bool


# Replay ------------------------------------------------------------------------------------


class ReplayAccepted(Response):
    event_id: uuid.UUID = Field(description="the new event (replay_of: the original)")


class BulkReplayRequest(Body):
    """The event list's filters; the oldest matching events are replayed first."""

    status: list[EventStatus] | None = None
    trigger_id: uuid.UUID | None = None
    since: UtcDatetime | None = Field(None, description="received at or after (inclusive)")
    until: UtcDatetime | None = Field(None, description="received before (exclusive)")
    dry_run: bool = Field(False, description="only count what would be replayed")


class BulkReplayResult(Response):
    dry_run: bool
    matched: int = Field(description="replayable events matching the filters")
    skipped: int = Field(
        description="matching events that cannot be replayed (truncated payload, trigger deleted)"
    )
    replayed: int = Field(description=f"new events (at most {MAX_BULK} a call)")
    event_ids: list[uuid.UUID]
