from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, Text
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
    last_error: Mapped[dict[str, Any] | None]
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
