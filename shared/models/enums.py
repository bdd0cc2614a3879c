from __future__ import annotations

import enum


class AutomationStatus(enum.StrEnum):
    DISABLED = "disabled"
    PREVIEW = "preview"
    ACTIVE = "active"


class TriggerType(enum.StrEnum):
    WEBHOOK = "webhook"
    CRON = "cron"


class ChatScope(enum.StrEnum):
    """Which chats an automation's events may continue (SPEC 5 step 4)."""

    AUTOMATION = "automation"
    ORGANIZATION = "organization"


class EventStatus(enum.StrEnum):
    PENDING = "pending"
    FILTERED = "filtered"
    PREVIEW = "preview"
    CREATED = "created"
    CONTINUED = "continued"
    RATE_LIMITED = "rate_limited"
    ERROR = "error"


class ChatStatus(enum.StrEnum):
    WAITING = "waiting"
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ERROR = "error"


class ClientType(enum.StrEnum):
    UI = "ui"
    API = "api"


class MessageRole(enum.StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class SiteRole(enum.StrEnum):
    MEMBER = "member"
    SITE_ADMIN = "site-admin"


class OrgRole(enum.StrEnum):
    MEMBER = "member"
    ORG_ADMIN = "org-admin"


class KeyStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
