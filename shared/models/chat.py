from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.infra.db.base import Base, enum_type, new_id, partial_index
from shared.models.enums import ChatStatus, ClientType, MessageRole

#: chat columns referencing another row that are NULL for most chats (partial indexes)
NULLABLE_REFERENCES = ("parent_chat_id", "root_chat_id", "model_config_id")


class Chat(Base):
    __tablename__ = "chats"
    __table_args__ = (
        # jsonb_path_ops: one entry per label key/value pair, so `labels @> :labels` (the only
        # operator used on labels) is one small lookup. fastupdate off: new entries go into
        # the index at once instead of a pending list that every lookup scans linearly and
        # that makes the planner fall back to scanning the owner's chats.
        Index(
            "ix_chats_labels",
            "labels",
            postgresql_using="gin",
            postgresql_ops={"labels": "jsonb_path_ops"},
            postgresql_with={"fastupdate": "off"},
        ),
        Index("ix_chats_automation_id", "automation_id"),
        Index(
            "ix_chats_owner_org_updated",
            "owner_id",
            "organization_id",
            "updated_at",
        ),
        # Only where set (sub-chats, chats with a model configuration): the lookups they
        # serve (a parent's sub-chats, the foreign keys' ON DELETE) are by value, and every
        # chat insert and every non-HOT chat update (an event continuing it moves updated_at)
        # would otherwise add a NULL entry to each.
        *(
            partial_index(f"ix_chats_{column}", column, where=f"{column} IS NOT NULL")
            for column in NULLABLE_REFERENCES
        ),
        Index("ix_chats_status", "status"),
        # chat retention: archived chats by the time they were archived
        partial_index("ix_chats_archived_at", "archived_at", where="archived_at IS NOT NULL"),
        # auto-archive candidates: unarchived, unpinned root chats (SPEC 11)
        partial_index(
            "ix_chats_auto_archive_candidates",
            "created_at",
            where="archived = false AND pin_order = 0 AND parent_chat_id IS NULL",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[ChatStatus] = mapped_column(
        enum_type(ChatStatus, "chat_status"), default=ChatStatus.WAITING
    )
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    automation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("automations.id", ondelete="SET NULL")
    )
    model_config_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("model_configs.id", ondelete="SET NULL")
    )
    archived: Mapped[bool] = mapped_column(default=False)
    #: when it was archived (by hand or by auto-archive); chat retention counts from it
    archived_at: Mapped[datetime | None]
    pin_order: Mapped[int] = mapped_column(Integer, default=0)
    parent_chat_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("chats.id", ondelete="CASCADE")
    )
    root_chat_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("chats.id", ondelete="CASCADE")
    )
    client_type: Mapped[ClientType] = mapped_column(
        enum_type(ClientType, "chat_client_type"), default=ClientType.API
    )
    #: SPEC 9 ``{message, kind, provider, retryable, status_code, detail}`` of the last failure
    last_error: Mapped[dict[str, Any] | None]
    #: the runner holding the chat while ``running`` (a fresh id per claim: the fence)
    runner_id: Mapped[str | None] = mapped_column(String(64))
    #: the holder's last sign of life; a ``running`` chat older than the stale age is reclaimed
    heartbeat_at: Mapped[datetime | None]
    #: a ``pending`` chat waiting out a retry is not claimed before this
    retry_at: Mapped[datetime | None]
    #: the retry in progress ``{attempt, kind, delay_ms, retrying_at}``, null when none
    retry: Mapped[dict[str, Any] | None]
    #: when ``run_chat`` was last published for it (a pending chat unclaimed for long is
    #: published again: a lost publish)
    queued_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_chat_created", "chat_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    chat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    role: Mapped[MessageRole] = mapped_column(enum_type(MessageRole, "chat_message_role"))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    deleted: Mapped[bool] = mapped_column(default=False)
    deleted_at: Mapped[datetime | None]
    #: the automation event that appended this message (no FK: events are purged, messages stay)
    event_id: Mapped[uuid.UUID | None]
    #: assistant messages: the model that answered, its token counts and why it stopped
    model: Mapped[str | None] = mapped_column(String(200))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    finish_reason: Mapped[str | None] = mapped_column(String(50))


class UsageRecord(Base):
    """Tokens one turn used (SPEC 9 "Usage"). A ledger of its own, not the chat's messages:
    usage must be summed and limited after the chat is deleted (retention)."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_organization_created", "organization_id", "created_at"),
        Index(
            "ix_usage_records_organization_user_created", "organization_id", "user_id", "created_at"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    #: the chat's owner (null once the user is deleted: the organization's sum keeps it)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: no foreign keys below: the chat, automation and model config may be deleted later
    automation_id: Mapped[uuid.UUID | None]
    chat_id: Mapped[uuid.UUID | None]
    model_config_id: Mapped[uuid.UUID | None]
    model: Mapped[str] = mapped_column(String(200))
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class Notification(Base):
    """A message to one user (SPEC 11 "Notifications"): listed and marked read through the
    API, and e-mailed once when SMTP is configured."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_created", "user_id", "created_at"),
        partial_index(
            "ix_notifications_email_pending", "created_at", where="email_status = 'pending'"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: what it is about, e.g. ``chat.auto_archive``
    kind: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    #: structured details for clients (e.g. the archived chats' ids)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None]
    #: ``none`` (no SMTP configured when created), ``pending``, ``sent`` or ``failed``
    email_status: Mapped[str] = mapped_column(String(20), default="none", server_default="none")
    email_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    emailed_at: Mapped[datetime | None]
