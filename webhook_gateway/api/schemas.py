"""Request and response schemas of the management API (pydantic v2).

The same classes validate requests and generate the OpenAPI document, so the two cannot
drift. Request models reject unknown fields; text fields reject NUL characters (PostgreSQL
cannot store them).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

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
from shared.triggers.service import MAX_PREVIOUS_VALID_SECONDS

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
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$")]
LongText = Annotated[str, Field(max_length=100_000, pattern=NO_NUL)]
ShortText = Annotated[str, Field(max_length=10_000, pattern=NO_NUL)]
Ident = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
RateLimit = Annotated[int, Field(ge=1, le=1000), BeforeValidator(_whole_number)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_no_nul_json)]
LabelPaths = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)],
        Annotated[str, Field(min_length=1, max_length=1000, pattern=NO_NUL)],
    ],
    Field(max_length=50),
]
Schedule = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Body(Request):
    """JSON request bodies: strict types (``true`` is not 1, ``"5"`` is not 5)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), strict=True)


class Response(BaseModel):
    model_config = ConfigDict(protected_namespaces=())


# Errors ------------------------------------------------------------------------------------


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
    mcp_server_ids: Annotated[list[Ident], Field(max_length=100)] = []
    allowed_tools: Annotated[list[Ident], Field(max_length=500)] = []
    max_chat_creates_per_hour: RateLimit = 10
    max_messages_per_hour: RateLimit = 60


class AutomationUpdate(Body):
    """Only the fields given change (absent ≠ null; only model_config_id may be null)."""

    # A ``None`` default is never validated: it only marks the field as absent.
    name: Name = None  # type: ignore[assignment]
    description: ShortText = None  # type: ignore[assignment]
    instructions: LongText = None  # type: ignore[assignment]
    model_config_id: uuid.UUID | None = None
    mcp_server_ids: Annotated[list[Ident], Field(max_length=100)] = None  # type: ignore[assignment]
    allowed_tools: Annotated[list[Ident], Field(max_length=500)] = None  # type: ignore[assignment]
    max_chat_creates_per_hour: RateLimit = None  # type: ignore[assignment]
    max_messages_per_hour: RateLimit = None  # type: ignore[assignment]
    status: AutomationStatus = None  # type: ignore[assignment]


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


class TriggerUpdate(Body):
    """Only the fields given change; a null filter or label_paths clears it."""

    cron_schedule: Schedule = None  # type: ignore[assignment]
    filter: JsonObject | None = None
    label_paths: LabelPaths | None = None


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
