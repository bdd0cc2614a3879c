"""The pipeline's event store on SQLite (embedded mode): plain statements, one by one.

The engine begins every transaction with ``BEGIN IMMEDIATE`` (shared.infra.db.engine), so
the transaction holds the database's only write lock from its first statement: that lock is
the per-automation lock of SPEC 5 here. In-process, there are no round trips to save.
Statements are module-level constants so SQLAlchemy's compiled cache serves them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, bindparam, case, func, null, select, update

from shared.chats.matching import find_matching_chat
from shared.events.store import Context, Decision, LoadedEvent, scope_automation_id
from shared.models.enums import ChatStatus, ClientType, EventStatus, MessageRole
from shared.models.tables import automations, chat_messages, chats, events, triggers

#: JSON whose Python ``None`` is SQL NULL (the model type stores it as JSON ``null``).
_NULLABLE_JSON = JSON(none_as_null=True)


def _p(table: Any, *names: str) -> dict[str, Any]:
    return {n: bindparam(n, type_=table.c[n].type) for n in names}


_LOAD = (
    select(
        events.c.id,
        events.c.status,
        events.c.automation_id,
        events.c.trigger_id,
        events.c.received_at,
        events.c.payload,
        events.c.pending_payload,
        events.c.event_type,
        events.c.headers,
        automations.c.status.label("automation_status"),
        automations.c.name,
        automations.c.owner_id,
        automations.c.organization_id,
        automations.c.instructions,
        automations.c.model_config_id,
        automations.c.max_chat_creates_per_hour,
        automations.c.max_messages_per_hour,
        automations.c.chat_scope,
        triggers.c.type.label("trigger_type"),
        triggers.c.filter,
        triggers.c.label_paths,
        triggers.c.event_types,
        triggers.c.message_template,
    )
    .select_from(
        events.join(automations, automations.c.id == events.c.automation_id).outerjoin(
            triggers, triggers.c.id == events.c.trigger_id
        )
    )
    .where(events.c.id == bindparam("event_id"))
)
_COUNTS = select(
    func.count(),
    func.coalesce(func.sum(case((events.c.status == EventStatus.CREATED, 1), else_=0)), 0),
).where(
    events.c.automation_id == bindparam("automation_id"),
    events.c.status.in_((EventStatus.CREATED, EventStatus.CONTINUED)),
    events.c.received_at >= bindparam("since", type_=events.c.received_at.type),
)
_FINISH = (
    update(events)
    .where(events.c.id == bindparam("event_id"))
    .values(
        **_p(events, "status", "filter_matched", "matched_chat_id", "created_chat_id", "error"),
        processed_at=bindparam("now", type_=events.c.processed_at.type),
        resolved_labels=bindparam("resolved_labels", type_=_NULLABLE_JSON),
        pending_payload=null(),
    )
)
_INSERT_CHAT = chats.insert().values(
    **_p(
        chats,
        "id",
        "owner_id",
        "organization_id",
        "title",
        "status",
        "labels",
        "automation_id",
        "model_config_id",
        "archived",
        "pin_order",
        "client_type",
        "created_at",
        "updated_at",
        "queued_at",
    )
)
#: a continued chat becomes ``pending`` unless a runner holds it (its turn's commit sees the
#: message: a follow-up turn) or it is paused; from ``error`` its retry state is cleared
_KEEPS_STATUS = (ChatStatus.RUNNING, ChatStatus.PAUSED)
_NOW = bindparam("updated_at", type_=chats.c.updated_at.type)
_TOUCH_CHAT = (
    update(chats)
    .where(chats.c.id == bindparam("chat_id", type_=chats.c.id.type))
    .values(
        status=case(
            (chats.c.status.in_(_KEEPS_STATUS), chats.c.status),
            else_=bindparam("status", type_=chats.c.status.type),
        ),
        queued_at=case((chats.c.status.in_(_KEEPS_STATUS), chats.c.queued_at), else_=_NOW),
        retry=case((chats.c.status == ChatStatus.ERROR, null()), else_=chats.c.retry),
        retry_at=case((chats.c.status == ChatStatus.ERROR, null()), else_=chats.c.retry_at),
        updated_at=_NOW,
    )
)
_INSERT_MESSAGE = chat_messages.insert().values(
    **_p(chat_messages, "id", "chat_id", "role", "content", "created_at", "deleted", "event_id")
)


class SqliteEventStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def load(self, event_id: uuid.UUID) -> LoadedEvent | None:
        return self.conn.execute(_LOAD, {"event_id": event_id}).first()  # type: ignore[return-value]

    def context(
        self, event: LoadedEvent, labels: dict[str, str], since: datetime | None
    ) -> Context:
        messages = creates = 0
        if since is not None:
            row = self.conn.execute(
                _COUNTS, {"automation_id": event.automation_id, "since": since}
            ).one()
            messages, creates = int(row[0]), int(row[1])
        matched = find_matching_chat(
            self.conn,
            event.owner_id,
            event.organization_id,
            labels,
            scope_automation_id(event),
        )
        return Context(messages, creates, matched)

    def finish(self, decision: Decision) -> None:
        now = decision.processed_at
        chat = decision.new_chat
        if chat is not None:
            self.conn.execute(
                _INSERT_CHAT,
                {
                    "id": chat.id,
                    "owner_id": chat.owner_id,
                    "organization_id": chat.organization_id,
                    "title": chat.title,
                    "status": ChatStatus.PENDING,
                    "labels": chat.labels,
                    "automation_id": chat.automation_id,
                    "model_config_id": chat.model_config_id,
                    "archived": False,
                    "pin_order": 0,
                    "client_type": ClientType.API,
                    "created_at": now,
                    "updated_at": now,
                    "queued_at": now,
                },
            )
        message = decision.message
        if message is not None:
            if chat is None:
                self.conn.execute(
                    _TOUCH_CHAT,
                    {"chat_id": message.chat_id, "status": ChatStatus.PENDING, "updated_at": now},
                )
            self.conn.execute(
                _INSERT_MESSAGE,
                {
                    "id": message.id,
                    "chat_id": message.chat_id,
                    "role": MessageRole.USER,
                    "content": message.content,
                    "created_at": now,
                    "deleted": False,
                    "event_id": decision.event_id,
                },
            )
        self.conn.execute(
            _FINISH,
            {
                "event_id": decision.event_id,
                "status": decision.status,
                "filter_matched": decision.filter_matched,
                "matched_chat_id": decision.matched_chat_id,
                "created_chat_id": decision.created_chat_id,
                "error": decision.error,
                "now": now,
                "resolved_labels": decision.labels,
            },
        )
