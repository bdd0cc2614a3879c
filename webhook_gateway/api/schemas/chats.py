"""Chats and their messages."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
)

from shared.models import (
    ChatStatus,
    MessageRole,
)
from webhook_gateway.api.schemas.base import (
    NO_NUL,
    Body,
    LongText,
    PageQuery,
    Response,
    whole_number,
)

# Chats -------------------------------------------------------------------------------------


class ChatListQuery(PageQuery):
    automation_id: uuid.UUID | None = None
    label: list[Annotated[str, Field(max_length=1000, pattern=r"^[^\x00:]+:[^\x00]*$")]] | None = (
        Field(None, description="key:value; repeat for several (all must match)")
    )
    archived: bool | None = None
    status: list[ChatStatus] | None = Field(None, description="repeat for several (any matches)")
    pinned: bool | None = Field(None, description="true: pin_order > 0; false: unpinned")
    q: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)] | None = Field(
        None, description="the title contains this (case-insensitive)"
    )


#: the largest pin_order (0 = not pinned; pinned chats sort by it, ascending)
PIN_ORDER_MAX = 1_000_000
PinOrder = Annotated[int, Field(ge=0, le=PIN_ORDER_MAX), BeforeValidator(whole_number)]
ChatTitle = Annotated[
    str, Field(min_length=1, max_length=500, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$")
]


class ChatUpdate(Body):
    """Only the fields given change (none may be null). `archived` cascades to the chat's
    descendants; `paused` pauses (`true`) or resumes (`false`) the chat; `pin_order` 0 unpins."""

    # A ``None`` default is never validated: it only marks the field as absent.
    title: ChatTitle = None  # type: ignore[assignment]
    archived: bool = None  # type: ignore[assignment]
    pin_order: PinOrder = None  # type: ignore[assignment]
    paused: bool = None  # type: ignore[assignment]


class ChatError(Response):
    """SPEC 9's structured error of a failed turn."""

    message: str = ""
    kind: str = Field(
        "generic",
        description="overloaded | usage_limit | auth | rate_limit | timeout | startup_timeout "
        "| config | generic",
    )
    provider: str | None = None
    retryable: bool = False
    status_code: int | None = None
    detail: str | None = None


class ChatRetry(Response):
    attempt: int = Field(description="the attempt that failed (1-based)")
    kind: str
    delay_ms: int
    retrying_at: datetime


class Chat(Response):
    id: uuid.UUID
    owner_id: uuid.UUID
    organization_id: uuid.UUID
    title: str
    status: ChatStatus
    labels: dict[str, Any]
    automation_id: uuid.UUID | None
    archived: bool
    archived_at: datetime | None = Field(None, description="when it was archived")
    pin_order: int = Field(0, description="0: not pinned")
    parent_chat_id: uuid.UUID | None
    root_chat_id: uuid.UUID | None
    model_config_id: uuid.UUID | None
    last_error: ChatError | None = Field(
        None, description="the last failure; cleared when a turn succeeds"
    )
    retry: ChatRetry | None = Field(
        None, description="the retry in progress while the chat waits out a failed attempt"
    )
    created_at: datetime
    updated_at: datetime


class ChatMessage(Response):
    id: uuid.UUID
    role: MessageRole
    content: str
    created_at: datetime
    event_id: uuid.UUID | None
    model: str | None = Field(None, description="assistant messages: the model that answered")
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None


class ChatMessageCreate(Body):
    content: Annotated[LongText, Field(min_length=1)]


class ChatDetail(Chat):
    messages: list[ChatMessage]


class ChatPage(Response):
    items: list[Chat]
    next_cursor: str | None
