"""Request and response schemas of the management API (pydantic v2).

The same classes validate requests and generate the OpenAPI document, so the two cannot
drift. Request models reject unknown fields; text fields reject NUL characters (PostgreSQL
cannot store them).

This is the one place where input is validated (issue 14): besides the JSON Schema rules,
request models run the domain's own rule functions (filters, label paths, cron schedules) and
hand the domain typed values (``domain()`` / ``changes()``). A rule a JSON Schema cannot
express raises the domain's :class:`~shared.errors.Invalid`, which pydantic lets through, so
the answer keeps its specific code (``invalid_filter``, ``invalid_schedule``). The CLI
validates its requests with the same models (:meth:`Body.check_json`).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Self, cast

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from shared.automations.service import (
    NAME_MAX,
    RATE_LIMIT_MAX,
    RATE_LIMIT_MIN,
    AutomationChanges,
    NewAutomation,
    unique_ids,
)
from shared.errors import Invalid
from shared.infra.clock import system_clock
from shared.infra.db.pagination import DEFAULT_LIMIT, MAX_LIMIT
from shared.models import (
    AutomationStatus,
    ChatStatus,
    EventStatus,
    MessageRole,
    OrgRole,
    SiteRole,
    TriggerType,
)
from shared.triggers.service import (
    MAX_PREVIOUS_VALID_SECONDS,
    SCHEDULE_MAX,
    NewTrigger,
    TriggerChanges,
    kind_error,
    validate_filter,
    validate_label_paths,
    validate_schedule,
)
from webhook_gateway.api.framework import validation_message

NO_NUL = r"^[^\x00]*$"


def _no_nul_json(value: Any) -> Any:
    """Reject NUL anywhere in a JSON value (keys too): PostgreSQL JSONB cannot hold it."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("strings must not contain NUL (\\u0000) characters")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def _whole_number(value: Any) -> Any:
    """JSON Schema counts 20.0 as an integer; accept it as 20 (but never ``true``)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Text = Annotated[str, Field(pattern=NO_NUL)]
#: stored without surrounding whitespace
Name = Annotated[
    str,
    Field(min_length=1, max_length=NAME_MAX, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$"),
    AfterValidator(str.strip),
]
LongText = Annotated[str, Field(max_length=100_000, pattern=NO_NUL)]
ShortText = Annotated[str, Field(max_length=10_000, pattern=NO_NUL)]
Ident = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
RateLimit = Annotated[
    int, Field(ge=RATE_LIMIT_MIN, le=RATE_LIMIT_MAX), BeforeValidator(_whole_number)
]
JsonObject = Annotated[dict[str, Any], AfterValidator(_no_nul_json)]
LabelPaths = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)],
        Annotated[str, Field(min_length=1, max_length=1000, pattern=NO_NUL)],
    ],
    Field(max_length=50),
]
#: stored without surrounding whitespace; parsed by the model (it depends on the trigger type)
Schedule = Annotated[
    str, Field(min_length=1, max_length=SCHEDULE_MAX, pattern=NO_NUL), AfterValidator(str.strip)
]
#: a set of ids, kept in the order given
McpServerIds = Annotated[list[Ident], Field(max_length=100), AfterValidator(unique_ids)]
ToolNames = Annotated[list[Ident], Field(max_length=500), AfterValidator(unique_ids)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Body(Request):
    """JSON request bodies: strict types (``true`` is not 1, ``"5"`` is not 5)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), strict=True)

    @classmethod
    def check_json(cls, data: Any) -> Self:
        """Validate ``data`` exactly as the API validates it as a JSON body; every error is an
        ``Invalid`` with the code, message and field the API would answer."""
        try:
            return cls.model_validate_json(json.dumps(data))
        except ValidationError as exc:
            code, message, field = validation_message(exc, "body")
            raise Invalid(message, code=code, field=field) from None


class Response(BaseModel):
    model_config = ConfigDict(protected_namespaces=())


# Errors ------------------------------------------------------------------------------------


#: the error statuses documented for reading and for writing operations
READ_ERRORS = (400, 401, 403, 404, 503)
WRITE_ERRORS = (400, 401, 403, 404, 413, 415, 503)


class Error(Response):
    """Every error: a stable machine code and a human message naming the bad field."""

    code: str = Field(examples=["validation_error"])
    message: str = Field(examples=["name: must not be empty"])
    field: str | None = None


# Users -------------------------------------------------------------------------------------


class OrganizationMembership(Response):
    id: uuid.UUID
    name: str
    role: OrgRole


class Me(Response):
    id: uuid.UUID
    email: str
    site_role: SiteRole
    organizations: list[OrganizationMembership]
    scopes: list[str]


# Automations -------------------------------------------------------------------------------


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
    created_at: datetime
    updated_at: datetime


class AutomationPage(Response):
    items: list[Automation]
    next_cursor: str | None


class PageQuery(Request):
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: (
        Annotated[
            str,
            Field(
                max_length=1000,
                pattern=r"^[A-Za-z0-9_-]*$",
                description="opaque: the next_cursor of the previous page",
            ),
        ]
        | None
    ) = None


class AutomationListQuery(PageQuery):
    organization_id: uuid.UUID | None = None
    status: AutomationStatus | None = None
    name: Annotated[str, Field(max_length=200, pattern=NO_NUL)] | None = None


# Triggers ----------------------------------------------------------------------------------


class TriggerCreate(Body):
    type: TriggerType
    cron_schedule: Schedule | None = None
    filter: JsonObject | None = None
    label_paths: LabelPaths | None = None

    @model_validator(mode="after")
    def _semantics(self) -> Self:
        """Paths, the schedule, and which fields the type allows (checked in this order)."""
        validate_label_paths(self.label_paths)
        if self.type is TriggerType.WEBHOOK:
            if self.cron_schedule is not None:
                raise kind_error("cron_schedule")
            validate_filter(self.filter)
        else:
            if self.filter:
                raise kind_error("filter")
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
        )


class TriggerUpdate(Body):
    """Only the fields given change; a null filter or label_paths clears it."""

    cron_schedule: Schedule = None  # type: ignore[assignment]
    filter: JsonObject | None = None
    label_paths: LabelPaths | None = None

    @model_validator(mode="after")
    def _semantics(self) -> Self:
        """The schedule and paths; whether the trigger may have a schedule or a filter depends
        on its stored type, which only the domain knows."""
        if "cron_schedule" in self.model_fields_set:
            validate_schedule(self.cron_schedule, system_clock.now())
        validate_filter(self.filter)
        validate_label_paths(self.label_paths)
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
        int, Field(ge=0, le=MAX_PREVIOUS_VALID_SECONDS), BeforeValidator(_whole_number)
    ] = 0


class NewSecret(Response):
    trigger_id: uuid.UUID
    webhook_url: str
    webhook_secret: str
    webhook_secret_standard: str
    previous_secret_expires_at: datetime | None


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
    payload: Annotated[Any, AfterValidator(_no_nul_json)]
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


# Chats -------------------------------------------------------------------------------------


class ChatListQuery(PageQuery):
    automation_id: uuid.UUID | None = None
    label: list[Annotated[str, Field(max_length=1000, pattern=r"^[^\x00:]+:[^\x00]*$")]] | None = (
        Field(None, description="key:value; repeat for several (all must match)")
    )
    archived: bool | None = None


class Chat(Response):
    id: uuid.UUID
    owner_id: uuid.UUID
    organization_id: uuid.UUID
    title: str
    status: ChatStatus
    labels: dict[str, Any]
    automation_id: uuid.UUID | None
    archived: bool
    parent_chat_id: uuid.UUID | None
    root_chat_id: uuid.UUID | None
    last_error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class ChatMessage(Response):
    id: uuid.UUID
    role: MessageRole
    content: str
    created_at: datetime
    event_id: uuid.UUID | None


class ChatDetail(Chat):
    messages: list[ChatMessage]


class ChatPage(Response):
    items: list[Chat]
    next_cursor: str | None
