"""Chats and their messages."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    Field,
)

from shared.models import (
    ChatStatus,
    MessageRole,
)
from webhook_gateway.api.schemas.base import (
    Body,
    LongText,
    PageQuery,
    Response,
)

# Chats -------------------------------------------------------------------------------------


class ChatListQuery(PageQuery):
    automation_id: uuid.UUID | None = None
    label: list[Annotated[str, Field(max_length=1000, pattern=r"^[^\x00:]+:[^\x00]*$")]] | None = (
        Field(None, description="key:value; repeat for several (all must match)")
    )
    archived: bool | None = None


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
