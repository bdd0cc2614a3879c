"""All tables. Importing this module registers every model on ``shared.infra.db.base.metadata``."""

from shared.models.automation import Automation, AutomationEvent, AutomationTrigger, ModelConfig
from shared.models.chat import Chat, ChatMessage, Notification, UsageRecord
from shared.models.enums import (
    AutomationStatus,
    ChatScope,
    ChatStatus,
    ClientType,
    EventStatus,
    KeyStatus,
    MessageRole,
    OrgRole,
    SiteRole,
    TriggerType,
)
from shared.models.identity import ApiKey, Organization, OrganizationMember, User
from shared.models.site import AuditLog, EncryptionKey, SiteConfig

__all__ = [
    "ApiKey",
    "AuditLog",
    "Automation",
    "AutomationEvent",
    "AutomationStatus",
    "AutomationTrigger",
    "Chat",
    "ChatMessage",
    "ChatScope",
    "ChatStatus",
    "ClientType",
    "EncryptionKey",
    "EventStatus",
    "KeyStatus",
    "MessageRole",
    "ModelConfig",
    "Notification",
    "OrgRole",
    "Organization",
    "OrganizationMember",
    "SiteConfig",
    "SiteRole",
    "TriggerType",
    "UsageRecord",
    "User",
]
