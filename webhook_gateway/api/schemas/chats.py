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
