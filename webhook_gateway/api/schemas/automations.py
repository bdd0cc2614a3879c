"""Automations, triggers and the dry run."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Self, cast

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    model_validator,
)

from shared.automations.service import (
    AutomationChanges,
    NewAutomation,
    unique_ids,
)
from shared.events.templates import validate_template
from shared.infra.clock import system_clock
from shared.models import (
    AutomationStatus,
    ChatScope,
    TriggerType,
)
from shared.triggers.service import (
    MAX_PREVIOUS_VALID_SECONDS,
    REPLAY_WINDOW_DEFAULT_SECONDS,
    REPLAY_WINDOW_MAX_SECONDS,
    NewTrigger,
    TriggerChanges,
    kind_error,
    validate_filter,
    validate_label_paths,
    validate_schedule,
)
from webhook_gateway.api.schemas.base import (
    NO_NUL,
    Body,
    JsonObject,
    LabelPaths,
    LongText,
    McpServerIds,
    Name,
    PageQuery,
    RateLimit,
    Response,
    Schedule,
    ShortText,
    ToolNames,
    whole_number,
)

# Automations -------------------------------------------------------------------------------


#: longest message template accepted (characters)
TEMPLATE_MAX_CHARS = 20_000
EventType = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
#: a set of event types, kept in the order given; empty: every type
EventTypes = Annotated[list[EventType], Field(max_length=100), AfterValidator(unique_ids)]
Template = Annotated[str, Field(max_length=TEMPLATE_MAX_CHARS, pattern=NO_NUL)]


class AutomationCreate(Body):
    organization_id: uuid.UUID
    name: Name
    description: ShortText = ""
    instructions: LongText = ""
    model_config_id: uuid.UUID | None = None
    mcp_server_ids: McpServerIds = []
    allowed_tools: ToolNames = []
    max_chat_creates_per_hour: RateLimit = 10
    max_messages_per_hour: RateLimit = 60
    chat_scope: ChatScope = Field(
        ChatScope.AUTOMATION,
        description="which chats an event may continue: only this automation's "
        "(`automation`) or any of the owner's in the organization (`organization`)",
    )

    def domain(self) -> NewAutomation:
        """The validated values, as the domain's input."""
        data = self.model_dump()
        data["mcp_server_ids"] = tuple(data["mcp_server_ids"])
        data["allowed_tools"] = tuple(data["allowed_tools"])
        return NewAutomation(**data)


class AutomationUpdate(Body):
    """Only the fields given change (absent ≠ null; only model_config_id may be null)."""

    # A ``None`` default is never validated: it only marks the field as absent.
    name: Name = None  # type: ignore[assignment]
    description: ShortText = None  # type: ignore[assignment]
    instructions: LongText = None  # type: ignore[assignment]
    model_config_id: uuid.UUID | None = None
    mcp_server_ids: McpServerIds = None  # type: ignore[assignment]
    allowed_tools: ToolNames = None  # type: ignore[assignment]
    max_chat_creates_per_hour: RateLimit = None  # type: ignore[assignment]
    max_messages_per_hour: RateLimit = None  # type: ignore[assignment]
    chat_scope: ChatScope = None  # type: ignore[assignment]
    status: AutomationStatus = None  # type: ignore[assignment]

    def changes(self) -> AutomationChanges:
        """The fields given (and only those)."""
        return cast(AutomationChanges, self.model_dump(include=self.model_fields_set))


class Automation(Response):
    id: uuid.UUID
    owner_id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    description: str
    instructions: str
    model_config_id: uuid.UUID | None
    mcp_server_ids: list[str]
    allowed_tools: list[str]
    status: AutomationStatus
    max_chat_creates_per_hour: int
    max_messages_per_hour: int
    chat_scope: ChatScope
    created_at: datetime
    updated_at: datetime


class AutomationPage(Response):
    items: list[Automation]
    next_cursor: str | None


class AutomationListQuery(PageQuery):
    organization_id: uuid.UUID | None = None
    status: AutomationStatus | None = None
    name: Annotated[str, Field(max_length=200, pattern=NO_NUL)] | None = Field(
        None,
        description="exact name, compared in its saved (NFKC-normalized, stripped) form; a "
        "name saved before names were normalized also matches the text as given",
    )


# Triggers ----------------------------------------------------------------------------------

#: webhook triggers' replay window in whole seconds (0: off)
ReplayWindow = Annotated[
    int,
    Field(
        ge=0,
        le=REPLAY_WINDOW_MAX_SECONDS,
        description="webhook triggers: a body already received within this many seconds, "
        "signed GitHub-style (X-Hub-Signature-256, which signs no delivery id), is answered "
        "as a duplicate of the first; 0 turns this off (Standard Webhooks requests are "
        "deduplicated by their signed webhook-id instead)",
    ),
    BeforeValidator(whole_number),
]


class TriggerCreate(Body):
    type: TriggerType
    cron_schedule: Schedule | None = None
    filter: JsonObject | None = None
    label_paths: LabelPaths | None = None
    event_types: EventTypes | None = None
    message_template: Template | None = None
    replay_window_seconds: ReplayWindow | None = None

    @model_validator(mode="after")
    def _semantics(self) -> Self:
        """Paths, the template, the schedule, and which fields the type allows (checked in
        this order)."""
        validate_label_paths(self.label_paths)
        if self.message_template is not None:
            validate_template(self.message_template)
        if self.type is TriggerType.WEBHOOK:
            if self.cron_schedule is not None:
                raise kind_error("cron_schedule")
            validate_filter(self.filter)
        else:
            if self.filter:
                raise kind_error("filter")
            if self.event_types:
                raise kind_error("event_types")
            if self.replay_window_seconds:
                raise kind_error("replay_window_seconds")
            # The request has no clock of its own: the wall clock anchors the "fires within
            # five years" check (the domain schedules with its injected clock).
            validate_schedule(self.cron_schedule, system_clock.now())
        return self

    def domain(self) -> NewTrigger:
        """The validated values, as the domain's input (no filter or labels: empty)."""
        return NewTrigger(
            type=self.type,
            cron_schedule=self.cron_schedule,
            filter=dict(self.filter or {}),
            label_paths=dict(self.label_paths or {}),
            event_types=tuple(self.event_types or ()),
            message_template=self.message_template or None,
            replay_window_seconds=(
                REPLAY_WINDOW_DEFAULT_SECONDS
                if self.replay_window_seconds is None
                else self.replay_window_seconds
            ),
        )


class TriggerUpdate(Body):
    """Only the fields given change; a null filter or label_paths clears it."""

    cron_schedule: Schedule = None  # type: ignore[assignment]
    filter: JsonObject | None = None
    label_paths: LabelPaths | None = None
    event_types: EventTypes | None = None
    message_template: Template | None = Field(None, description="null or empty: no template")
    replay_window_seconds: ReplayWindow = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _semantics(self) -> Self:
        """The schedule, paths and template; whether the trigger may have a schedule, a
        filter or event types depends on its stored type, which only the domain knows."""
        if "cron_schedule" in self.model_fields_set:
            validate_schedule(self.cron_schedule, system_clock.now())
        validate_filter(self.filter)
        validate_label_paths(self.label_paths)
        if self.message_template:
            validate_template(self.message_template)
        return self

    def changes(self) -> TriggerChanges:
        """The fields given (and only those); null clears a filter or the label paths."""
        changes: TriggerChanges = {}
        if "cron_schedule" in self.model_fields_set:
            changes["cron_schedule"] = self.cron_schedule
        if "filter" in self.model_fields_set:
            changes["filter"] = dict(self.filter or {})
        if "label_paths" in self.model_fields_set:
            changes["label_paths"] = dict(self.label_paths or {})
        if "event_types" in self.model_fields_set:
            changes["event_types"] = list(self.event_types or ())
        if "message_template" in self.model_fields_set:
            changes["message_template"] = self.message_template or None
        if "replay_window_seconds" in self.model_fields_set:
            changes["replay_window_seconds"] = self.replay_window_seconds
        return changes


class Trigger(Response):
    id: uuid.UUID
    automation_id: uuid.UUID
    type: TriggerType
    webhook_url: str | None = Field(description="where senders POST (webhook triggers)")
    cron_schedule: str | None
    next_fire_at: datetime | None
    last_triggered_at: datetime | None
    filter: dict[str, Any]
    label_paths: dict[str, Any]
    event_types: list[str]
    message_template: str | None
    replay_window_seconds: int | None = Field(
        description="webhook triggers: seconds within which a GitHub-style delivery of a "
        "body already received is a duplicate (0: off); null for cron triggers"
    )
    previous_secret_expires_at: datetime | None = Field(
        description="while set and in the future, the previous secret still verifies"
    )
    created_at: datetime
    updated_at: datetime


class TriggerCreated(Trigger):
    webhook_secret: str | None = Field(
        description="64 hex characters; HMAC key for GitHub-style senders. Shown only once."
    )
    webhook_secret_standard: str | None = Field(
        description="whsec_ + base64 of the same 32 bytes, for Standard Webhooks libraries. "
        "Shown only once."
    )


class TriggerPage(Response):
    items: list[Trigger]
    next_cursor: str | None


class RegenerateSecret(Body):
    previous_valid_for_seconds: Annotated[
        int, Field(ge=0, le=MAX_PREVIOUS_VALID_SECONDS), BeforeValidator(whole_number)
    ] = 0


class NewSecret(Response):
    trigger_id: uuid.UUID
    webhook_url: str
    webhook_secret: str
    webhook_secret_standard: str
    previous_secret_expires_at: datetime | None
