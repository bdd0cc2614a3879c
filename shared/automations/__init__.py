"""Management of automations, triggers, events and chats: plain functions over a session,
a clock and the calling :class:`shared.authz.Principal`. The HTTP views only translate.

Every function checks authorization itself (scopes → 403, invisible resources → 404) and
raises :class:`shared.automations.errors.DomainError` subclasses with a stable ``code`` and a
message that names the offending field.
"""

from shared.automations.automations import (
    create_automation,
    delete_automation,
    get_automation,
    list_automations,
    update_automation,
)
from shared.automations.chats import get_chat, list_chats, parse_label_filters
from shared.automations.dry_run import test_automation
from shared.automations.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from shared.automations.events import list_events
from shared.automations.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from shared.automations.triggers import (
    MAX_PREVIOUS_VALID_SECONDS,
    CreatedTrigger,
    create_trigger,
    delete_trigger,
    get_trigger,
    list_triggers,
    regenerate_secret,
    update_trigger,
    webhook_path,
)

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "MAX_PREVIOUS_VALID_SECONDS",
    "Conflict",
    "CreatedTrigger",
    "DomainError",
    "Forbidden",
    "Invalid",
    "NotFound",
    "Page",
    "create_automation",
    "create_trigger",
    "delete_automation",
    "delete_trigger",
    "get_automation",
    "get_chat",
    "get_trigger",
    "list_automations",
    "list_chats",
    "list_events",
    "list_triggers",
    "parse_label_filters",
    "regenerate_secret",
    "test_automation",
    "update_automation",
    "update_trigger",
    "webhook_path",
]
