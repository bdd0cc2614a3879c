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

from webhook_gateway.api.schemas.accounts import (
    Me,
    OrganizationMembership,
    Token,
    TokenListQuery,
    TokenPage,
    User,
    UserListQuery,
    UserPage,
    UserUpdate,
)
from webhook_gateway.api.schemas.automations import (
    Automation,
    AutomationCreate,
    AutomationListQuery,
    AutomationPage,
    AutomationUpdate,
    NewSecret,
    RegenerateSecret,
    Trigger,
    TriggerCreate,
    TriggerCreated,
    TriggerPage,
    TriggerUpdate,
)
from webhook_gateway.api.schemas.base import (
    NO_NUL,
    READ_ERRORS,
    WRITE_ERRORS,
    Body,
    Error,
    Ident,
    JsonObject,
    LabelPaths,
    LongText,
    McpServerIds,
    Name,
    PageQuery,
    RateLimit,
    Request,
    Response,
    Schedule,
    ShortText,
    Text,
    ToolNames,
    no_nul_json,
    whole_number,
)
from webhook_gateway.api.schemas.chats import (
    Chat,
    ChatDetail,
    ChatListQuery,
    ChatMessage,
    ChatPage,
)
from webhook_gateway.api.schemas.events import (
    BulkReplayRequest,
    BulkReplayResult,
    Event,
    EventListQuery,
    EventPage,
    ReplayAccepted,
    TestRequest,
    TestResult,
)

__all__ = [
    "NO_NUL",
    "READ_ERRORS",
    "WRITE_ERRORS",
    "Automation",
    "AutomationCreate",
    "AutomationListQuery",
    "AutomationPage",
    "AutomationUpdate",
    "Body",
    "BulkReplayRequest",
    "BulkReplayResult",
    "Chat",
    "ChatDetail",
    "ChatListQuery",
    "ChatMessage",
    "ChatPage",
    "Error",
    "Event",
    "EventListQuery",
    "EventPage",
    "Ident",
    "JsonObject",
    "LabelPaths",
    "LongText",
    "McpServerIds",
    "Me",
    "Name",
    "NewSecret",
    "OrganizationMembership",
    "PageQuery",
    "RateLimit",
    "RegenerateSecret",
    "ReplayAccepted",
    "Request",
    "Response",
    "Schedule",
    "ShortText",
    "TestRequest",
    "TestResult",
    "Text",
    "Token",
    "TokenListQuery",
    "TokenPage",
    "ToolNames",
    "Trigger",
    "TriggerCreate",
    "TriggerCreated",
    "TriggerPage",
    "TriggerUpdate",
    "User",
    "UserListQuery",
    "UserPage",
    "UserUpdate",
    "no_nul_json",
    "whole_number",
]
