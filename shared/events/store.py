"""The pipeline's storage interface: what SPEC 5 reads and writes, per backend.

:func:`shared.events.pipeline.process_event` is written against :class:`EventStore` only, so
it reads as the SPEC, step by step, without backend branches. Two implementations:

* :class:`~shared.events.store_postgres.PostgresEventStore`: three statements per event (load
  with the row and automation locks; rate-limit counts and chat match; the outcome's writes as
  one statement), optionally as server-side prepared statements;
* :class:`~shared.events.store_sqlite.SqliteEventStore`: plain statements one by one under the
  database's single write lock (``BEGIN IMMEDIATE``).

A store lives for one transaction (the caller's unit of work) and never commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.models.enums import ChatScope, EventStatus


class LoadedEvent(Protocol):
    """The event row with its automation's and trigger's columns (a result row)."""

    id: uuid.UUID
    status: str
    automation_id: uuid.UUID
    trigger_id: uuid.UUID | None
    received_at: datetime
    payload: Any
    pending_payload: Any
    event_type: str | None
    headers: Any
    automation_status: str
    name: str
    owner_id: uuid.UUID
    organization_id: uuid.UUID
    instructions: str | None
    model_config_id: uuid.UUID | None
    max_chat_creates_per_hour: int
    max_messages_per_hour: int
    chat_scope: str
    trigger_type: str | None
    filter: Any
    label_paths: Any
    event_types: Any
    message_template: str | None


def scope_automation_id(event: LoadedEvent) -> uuid.UUID | None:
    """The automation a chat match is limited to: the event's own in the ``automation``
    scope, none (any chat of the owner in the organization) in the ``organization`` scope."""
    if event.chat_scope == ChatScope.ORGANIZATION:
        return None
    return event.automation_id


@dataclass(frozen=True)
class Context:
    """Under the automation lock: the rate-limit counts of the window and the matched chat."""

    messages: int
    creates: int
    matched_chat_id: uuid.UUID | None


@dataclass(frozen=True)
class NewChat:
    id: uuid.UUID
    owner_id: uuid.UUID
    organization_id: uuid.UUID
    automation_id: uuid.UUID
    model_config_id: uuid.UUID | None
    title: str
    labels: dict[str, str]


@dataclass(frozen=True)
class NewMessage:
    """The user message an event adds to the chat it creates or continues."""

    id: uuid.UUID
    chat_id: uuid.UUID
    content: str


@dataclass(frozen=True)
class Decision:
    """The outcome of one event, to be written in one go.

    With ``new_chat`` the chat is created; with ``message`` and no ``new_chat`` the matched
    chat is continued (set ``pending``, touched); the message is added either way.
    """

    event_id: uuid.UUID
    status: EventStatus
    processed_at: datetime
    filter_matched: bool | None = None
    labels: dict[str, str] | None = None
    matched_chat_id: uuid.UUID | None = None
    error: str | None = None
    new_chat: NewChat | None = None
    message: NewMessage | None = None

    @property
    def created_chat_id(self) -> uuid.UUID | None:
        return self.new_chat.id if self.new_chat is not None else None


class EventStore(Protocol):
    def load(self, event_id: uuid.UUID) -> LoadedEvent | None:
        """The event, row-locked; if it is ``pending``, its automation's pipeline lock is
        held too for the rest of the transaction. None when the event does not exist."""

    def context(
        self, event: LoadedEvent, labels: dict[str, str], since: datetime | None
    ) -> Context:
        """Counts of ``created``/``continued`` events since ``since`` (zero when None) and the
        chat the labels match. Runs after the lock was granted, so it sees every outcome
        committed before."""

    def finish(self, decision: Decision) -> None:
        """Write the decision: the event's final row and any chat and message writes."""
