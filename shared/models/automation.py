from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.infra.db.base import Base, enum_type, new_id, partial_index
from shared.models.enums import AutomationStatus, ChatScope, EventStatus, TriggerType

#: a webhook trigger's default ``replay_window_seconds`` (one day)
REPLAY_WINDOW_DEFAULT_SECONDS = 86_400
#: the longest replay window a trigger may have (30 days)
REPLAY_WINDOW_MAX_SECONDS = 30 * 86_400


#: the model providers a model config may name (SPEC 9)
MODEL_PROVIDERS = ("openai", "anthropic")


class ModelConfig(Base):
    """A model endpoint a chat runs against (SPEC 9): ``openai`` is any OpenAI-compatible
    chat-completions endpoint, ``anthropic`` the Messages API. ``api_key`` is encrypted at rest
    like webhook secrets (``api_key_key_id``: the digest of the key that encrypted it)."""

    __tablename__ = "model_configs"
    __table_args__ = (
        UniqueConstraint("organization_id", "name"),
        CheckConstraint("provider IN ('openai', 'anthropic')", name="provider_known"),
        CheckConstraint("temperature BETWEEN 0 AND 2", name="temperature_range"),
        CheckConstraint("max_output_tokens BETWEEN 1 AND 1000000", name="max_output_tokens_range"),
        CheckConstraint("context_window BETWEEN 1 AND 100000000", name="context_window_range"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(100), default="openai", server_default="openai")
    base_url: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(200))
    api_key: Mapped[str | None] = mapped_column(Text)
    api_key_key_id: Mapped[str | None] = mapped_column(String(64))
    max_output_tokens: Mapped[int | None] = mapped_column(Integer)
    temperature: Mapped[float | None] = mapped_column(Float)
    context_window: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Automation(Base):
    __tablename__ = "automations"
    __table_args__ = (
        UniqueConstraint("owner_id", "organization_id", "name"),
        CheckConstraint(
            "max_chat_creates_per_hour BETWEEN 1 AND 1000", name="max_chat_creates_per_hour_range"
        ),
        CheckConstraint(
            "max_messages_per_hour BETWEEN 1 AND 1000", name="max_messages_per_hour_range"
        ),
        Index("ix_automations_organization_id", "organization_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    instructions: Mapped[str] = mapped_column(Text, default="")
    model_config_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("model_configs.id", ondelete="SET NULL"), index=True
    )
    mcp_server_ids: Mapped[list[Any]] = mapped_column(default=list)
    allowed_tools: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[AutomationStatus] = mapped_column(
        enum_type(AutomationStatus, "automation_status"), default=AutomationStatus.DISABLED
    )
    max_chat_creates_per_hour: Mapped[int] = mapped_column(Integer, default=10)
    max_messages_per_hour: Mapped[int] = mapped_column(Integer, default=60)
    #: which chats an event may continue: this automation's own, or any of the owner's
    #: chats in the organization (SPEC 5 step 4)
    chat_scope: Mapped[ChatScope] = mapped_column(
        enum_type(ChatScope, "chat_scope"),
        default=ChatScope.AUTOMATION,
        server_default=ChatScope.AUTOMATION.value,
    )
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    triggers: Mapped[list[AutomationTrigger]] = relationship(
        back_populates="automation", passive_deletes=True
    )


class AutomationTrigger(Base):
    __tablename__ = "automation_triggers"
    __table_args__ = (
        CheckConstraint(
            "(type != 'webhook') OR (webhook_secret IS NOT NULL AND cron_schedule IS NULL"
            " AND next_fire_at IS NULL)",
            name="webhook_fields",
        ),
        CheckConstraint(
            "(type != 'cron') OR (cron_schedule IS NOT NULL AND webhook_secret IS NULL"
            " AND webhook_secret_key_id IS NULL AND previous_webhook_secret IS NULL)",
            name="cron_fields",
        ),
        CheckConstraint(
            "(previous_webhook_secret IS NULL) = (previous_secret_expires_at IS NULL)",
            name="previous_secret_expiry",
        ),
        CheckConstraint(
            f"replay_window_seconds BETWEEN 0 AND {REPLAY_WINDOW_MAX_SECONDS}",
            name="replay_window_range",
        ),
        Index("ix_automation_triggers_automation_id", "automation_id"),
        Index("ix_automation_triggers_next_fire_at", "next_fire_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    automation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("automations.id", ondelete="CASCADE")
    )
    type: Mapped[TriggerType] = mapped_column(enum_type(TriggerType, "trigger_type"))
    webhook_secret: Mapped[str | None] = mapped_column(Text)
    webhook_secret_key_id: Mapped[str | None] = mapped_column(String(64))
    previous_webhook_secret: Mapped[str | None] = mapped_column(Text)
    previous_webhook_secret_key_id: Mapped[str | None] = mapped_column(String(64))
    previous_secret_expires_at: Mapped[datetime | None]
    cron_schedule: Mapped[str | None] = mapped_column(String(200))
    last_triggered_at: Mapped[datetime | None]
    next_fire_at: Mapped[datetime | None]
    filter: Mapped[dict[str, Any]] = mapped_column(default=dict)
    label_paths: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: webhook triggers: the sender's event types accepted (empty: all; SPEC 4.2.1)
    event_types: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    #: sandboxed Jinja2 replacing the payload part of the chat message (SPEC 5 step 7)
    message_template: Mapped[str | None] = mapped_column(Text)
    #: webhook triggers: a byte-identical body verified by a GitHub-style signature (which
    #: signs no delivery id) within this many seconds of the first is a duplicate; 0: off
    replay_window_seconds: Mapped[int] = mapped_column(
        Integer,
        default=REPLAY_WINDOW_DEFAULT_SECONDS,
        server_default=str(REPLAY_WINDOW_DEFAULT_SECONDS),
    )
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    automation: Mapped[Automation] = relationship(back_populates="triggers")


class AutomationEvent(Base):
    """Append-only audit trail of every trigger firing; also the rate-limit data source."""

    __tablename__ = "automation_events"
    __table_args__ = (
        UniqueConstraint("trigger_id", "delivery_id"),
        # No "created/continued has a chat" CHECK (dropped in 0010): chat retention deletes
        # chats, and the events that pointed at them keep their status with a null reference.
        CheckConstraint("matched_chat_id IS NULL OR created_chat_id IS NULL", name="one_chat_id"),
        CheckConstraint("occurrences >= 1", name="occurrences_positive"),
        Index("ix_automation_events_automation_received", "automation_id", "received_at"),
        Index("ix_automation_events_received_at", "received_at"),
        partial_index(
            "ix_automation_events_rate_limit",
            "automation_id",
            "received_at",
            where="status IN ('created', 'continued')",
        ),
        partial_index("ix_automation_events_pending", "received_at", where="status = 'pending'"),
        partial_index("ix_automation_events_replay_of", "replay_of", where="replay_of IS NOT NULL"),
        # the replay-window look-up of a GitHub-style delivery (only those rows carry a hash)
        partial_index(
            "ix_automation_events_body_sha256",
            "trigger_id",
            "body_sha256",
            "received_at",
            where="body_sha256 IS NOT NULL",
        ),
        # For ON DELETE SET NULL of a chat and the events of a chat. Partial: most events
        # reference no chat, or only one of the two, and an index entry is written for each
        # event insert and each (never HOT) status update. Lookups by trigger_id use the
        # unique (trigger_id, delivery_id) index.
        partial_index(
            "ix_automation_events_matched_chat_id",
            "matched_chat_id",
            where="matched_chat_id IS NOT NULL",
        ),
        partial_index(
            "ix_automation_events_created_chat_id",
            "created_chat_id",
            where="created_chat_id IS NOT NULL",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    automation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("automations.id", ondelete="CASCADE")
    )
    trigger_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("automation_triggers.id", ondelete="SET NULL")
    )
    received_at: Mapped[datetime]
    delivery_id: Mapped[str | None] = mapped_column(String(200))
    #: the sender's event type (``X-GitHub-Event`` and the like; SPEC 4.2.1)
    event_type: Mapped[str | None] = mapped_column(String(200))
    #: the request headers, lower-cased, without secrets
    headers: Mapped[dict[str, Any] | None]
    #: hex SHA-256 of the raw body, only for GitHub-style deliveries to a trigger with a
    #: replay window (the window's duplicate look-up)
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    #: the event this one replays (SPEC 5, Replay)
    replay_of: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("automation_events.id", ondelete="SET NULL")
    )
    payload: Mapped[dict[str, Any]]
    #: the whole body while the event is pending, only when ``payload`` had to be truncated
    #: (SPEC 4.4: filters and labels see the whole body); cleared once processed.
    pending_payload: Mapped[dict[str, Any] | None]
    filter_matched: Mapped[bool | None]
    resolved_labels: Mapped[dict[str, Any] | None]
    matched_chat_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("chats.id", ondelete="SET NULL")
    )
    created_chat_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("chats.id", ondelete="SET NULL")
    )
    status: Mapped[EventStatus] = mapped_column(
        enum_type(EventStatus, "event_status"), default=EventStatus.PENDING
    )
    error: Mapped[str | None] = mapped_column(Text)
    #: how many identical occurrences this row stands for (bad-signature floods are folded).
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    #: sweeper bookkeeping: how often the event was (re)published and when last.
    publish_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_published_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
