"""The pipeline's event store on PostgreSQL: three statements per event.

The statements are SQL text written here, with named parameters. They are shaped for few
round trips:

* ``load``: event row lock + automation + trigger + the per-automation advisory lock (and the
  transaction-local ``enable_seqscan``/``synchronous_commit``/``plan_cache_mode`` switches:
  the statements after it use their generic plan, planned once per connection, instead of
  PostgreSQL's cost-based choice, which kept re-planning when custom plans looked cheaper)
  in one statement; in
  the ``organization`` chat scope also a lock on the owner and organization, taken after the
  automation's (always in that order, so no deadlock), so that two automations feeding one
  conversation cannot both create its chat;
* ``context``: rate-limit counts + chat match in one statement;
* ``finish_*``: the chat writes as data-modifying CTEs of the final event ``UPDATE``.

With ``AUTOMATIONS_DB_PREPARED_STATEMENTS`` on (the default) each statement is ``PREPARE``d
once per database connection, from the same text with positional parameters, and run with
``EXECUTE``: PostgreSQL then plans these multi-CTE statements once per connection instead of
once per event (planning costs more than executing them, docs/performance.md). Which
statements a connection has prepared is kept in the connection's ``info`` dictionary, which
SQLAlchemy clears when it replaces the DBAPI connection. Turn the setting off behind a pooler
in transaction mode (PgBouncer): the same text then runs as plain statements.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Connection, Integer, String, TextClause, bindparam
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB

from shared.events.locks import LOCK_NAMESPACE
from shared.events.options import PipelineOptions
from shared.events.store import Context, Decision, LoadedEvent, scope_automation_id
from shared.models.enums import ChatScope, ChatStatus, ClientType, EventStatus, MessageRole
from shared.models.tables import automations, chats, events, triggers

#: JSON whose Python ``None`` is SQL NULL (the model type stores it as JSON ``null``).
NULLABLE_JSONB = JSONB(none_as_null=True)

_PARAM = re.compile(r"(?<![:\w]):(\w+)")


@dataclass(frozen=True)
class Statement:
    """One statement: its text with ``:name`` parameters, their SQL and SQLAlchemy types, and
    the types of its result columns."""

    name: str
    text: str
    params: dict[str, tuple[str, Any]]
    columns: dict[str, Any]

    def plain(self) -> TextClause:
        return self._typed(sql_text(self.text))

    def prepare_sql(self) -> str:
        """``PREPARE`` of the same text, parameters numbered in order of first use."""
        order = list(dict.fromkeys(_PARAM.findall(self.text)))
        assert set(order) == set(self.params), (self.name, order)
        body = _PARAM.sub(lambda m: f"${order.index(m.group(1)) + 1}", self.text)
        types = ", ".join(self.params[n][0] for n in order)
        return f"PREPARE {self.name} ({types}) AS {body}"

    def execute_clause(self) -> TextClause:
        order = list(dict.fromkeys(_PARAM.findall(self.text)))
        args = ", ".join(f":{n}" for n in order)
        return self._typed(sql_text(f"EXECUTE {self.name} ({args})"))

    def _typed(self, clause: TextClause) -> TextClause:
        clause = clause.bindparams(*(bindparam(n, type_=t) for n, (_, t) in self.params.items()))
        return clause.columns(**self.columns) if self.columns else clause  # type: ignore[return-value]


_UUID = ("uuid", events.c.id.type)
_TS = ("timestamptz", events.c.received_at.type)

LOAD = Statement(
    "automations_pipeline_load_v3",
    f"""
WITH locked_event AS (
  SELECT id, status, automation_id, trigger_id, received_at, payload, pending_payload,
         event_type, headers
  FROM automation_events WHERE id = :event_id FOR UPDATE
)
SELECT e.id, e.status, e.automation_id, e.trigger_id, e.received_at, e.payload,
       e.pending_payload, e.event_type, e.headers, a.status AS automation_status, a.name,
       a.owner_id, a.organization_id, a.instructions, a.model_config_id,
       a.max_chat_creates_per_hour, a.max_messages_per_hour, a.chat_scope,
       t.type AS trigger_type, t.filter, t.label_paths, t.event_types, t.message_template,
       CASE WHEN e.status = '{EventStatus.PENDING.value}' THEN pg_advisory_xact_lock(
         hashtextextended(e.automation_id::text, {LOCK_NAMESPACE})) END AS automation_locked,
       CASE WHEN e.status = '{EventStatus.PENDING.value}'
                 AND a.chat_scope = '{ChatScope.ORGANIZATION.value}'
            THEN pg_advisory_xact_lock(hashtextextended(
              a.owner_id::text || '/' || a.organization_id::text, {LOCK_NAMESPACE})) END
         AS scope_locked,
       set_config('enable_seqscan', 'off', true) AS index_scans_only,
       set_config('plan_cache_mode', 'force_generic_plan', true) AS generic_plans,
       CASE WHEN :async_commit THEN set_config('synchronous_commit', 'off', true) END
         AS commit_mode
FROM locked_event e
JOIN automations a ON a.id = e.automation_id
LEFT JOIN automation_triggers t ON t.id = e.trigger_id
""",
    {"event_id": _UUID, "async_commit": ("boolean", Boolean())},
    {
        "id": events.c.id.type,
        "automation_id": events.c.automation_id.type,
        "trigger_id": events.c.trigger_id.type,
        "received_at": events.c.received_at.type,
        "owner_id": automations.c.owner_id.type,
        "organization_id": automations.c.organization_id.type,
        "model_config_id": automations.c.model_config_id.type,
        "filter": triggers.c.filter.type,
        "label_paths": triggers.c.label_paths.type,
        "event_types": triggers.c.event_types.type,
        "headers": events.c.headers.type,
    },
)

# The rate-limit part reads the partial index on (automation_id, received_at) of created and
# continued events: its condition is written out so that generic plans can use it. The chat
# candidates come from a subquery that only tests containment (the GIN index on labels),
# fenced with OFFSET 0 so PostgreSQL plans it on its own (shared.chats.matching); equal
# labels only, within the chat scope. One statement per scope, not one with an
# ``:x IS NULL OR ...`` condition: custom plans fold that condition away and look cheaper, so
# PostgreSQL would never settle on the generic plan that saves planning each event. NULL
# labels (the event resolved none) match nothing; NULL ``since`` (preview) counts nothing.
_CONTEXT = """
SELECT count(*) AS messages,
       count(*) FILTER (WHERE status = '{created}') AS creates,
       (SELECT c.id FROM (
          SELECT id, updated_at, owner_id, organization_id, automation_id, archived,
                 parent_chat_id
          FROM chats WHERE labels @> :labels AND labels = :labels OFFSET 0) AS c
        WHERE c.owner_id = :owner_id AND c.organization_id = :organization_id
          AND c.archived IS false AND c.parent_chat_id IS NULL{scope}
        ORDER BY c.updated_at DESC LIMIT 1) AS matched_chat_id
FROM automation_events
WHERE automation_id = :automation_id
  AND status IN ('{created}', '{continued}')
  AND received_at >= :since
"""
_CONTEXT_PARAMS: dict[str, tuple[str, Any]] = {
    "labels": ("jsonb", NULLABLE_JSONB),
    "owner_id": _UUID,
    "organization_id": _UUID,
    "automation_id": _UUID,
    "since": _TS,
}
_CONTEXT_COLUMNS = {"messages": Integer(), "creates": Integer(), "matched_chat_id": chats.c.id.type}


def _context(name: str, scope: str) -> Statement:
    text = _CONTEXT.format(
        created=EventStatus.CREATED.value, continued=EventStatus.CONTINUED.value, scope=scope
    )
    return Statement(name, text, _CONTEXT_PARAMS, _CONTEXT_COLUMNS)


#: chats of the event's own automation only (``chat_scope = automation``)
CONTEXT = _context(
    "automations_pipeline_context_v3", "\n          AND c.automation_id = :automation_id"
)
#: any chat of the owner in the organization (``chat_scope = organization``)
CONTEXT_ORGANIZATION = _context("automations_pipeline_context_org_v3", "")

_FINISH_EVENT = """
UPDATE automation_events SET status = :status, filter_matched = :filter_matched,
       resolved_labels = :resolved_labels, matched_chat_id = :matched_chat_id,
       created_chat_id = :created_chat_id, error = :error, processed_at = :now,
       pending_payload = NULL
WHERE id = :event_id
"""
_FINISH_PARAMS: dict[str, tuple[str, Any]] = {
    "status": ("event_status", String()),
    "filter_matched": ("boolean", Boolean()),
    "resolved_labels": ("jsonb", NULLABLE_JSONB),
    "matched_chat_id": _UUID,
    "created_chat_id": _UUID,
    "error": ("text", String()),
    "now": _TS,
    "event_id": _UUID,
}
_NEW_MESSAGE = f"""
new_message AS (
  INSERT INTO chat_messages (id, chat_id, role, content, created_at, deleted, event_id)
  VALUES (:message_id, :chat_id, '{MessageRole.USER.value}', :content, :now, false, :event_id)
)"""
_MESSAGE_PARAMS: dict[str, tuple[str, Any]] = {
    "message_id": _UUID,
    "chat_id": _UUID,
    "content": ("text", String()),
}

#: a continued chat becomes ``pending`` (run_chat is published after commit) unless a runner
#: holds it (its turn's fenced commit sees the message: a follow-up turn) or it is paused;
#: from ``error`` its retry state is cleared (shared.chats.messages has the same rule)
_KEEPS_STATUS = f"('{ChatStatus.RUNNING.value}', '{ChatStatus.PAUSED.value}')"

FINISH = Statement("automations_pipeline_finish_v3", _FINISH_EVENT, _FINISH_PARAMS, {})
FINISH_CREATE = Statement(
    "automations_pipeline_finish_create_v4",
    f"""
WITH new_chat AS (
  INSERT INTO chats (id, owner_id, organization_id, title, status, labels, automation_id,
                     model_config_id, archived, pin_order, client_type, created_at, updated_at,
                     queued_at)
  VALUES (:chat_id, :owner_id, :organization_id, :title, '{ChatStatus.PENDING.value}', :labels,
          :automation_id, :model_config_id, false, 0, '{ClientType.API.value}', :now, :now,
          :now)
), {_NEW_MESSAGE}
{_FINISH_EVENT}""",
    {
        **_FINISH_PARAMS,
        **_MESSAGE_PARAMS,
        "owner_id": _UUID,
        "organization_id": _UUID,
        "title": ("text", String()),
        "labels": ("jsonb", JSONB()),
        "automation_id": _UUID,
        "model_config_id": _UUID,
    },
    {},
)
FINISH_CONTINUE = Statement(
    "automations_pipeline_finish_continue_v4",
    f"""
WITH touched AS (
  UPDATE chats SET status = CASE WHEN status IN {_KEEPS_STATUS} THEN status
                                ELSE '{ChatStatus.PENDING.value}' END,
                   queued_at = CASE WHEN status IN {_KEEPS_STATUS} THEN queued_at ELSE :now END,
                   retry = CASE WHEN status = '{ChatStatus.ERROR.value}' THEN NULL ELSE retry END,
                   retry_at = CASE WHEN status = '{ChatStatus.ERROR.value}' THEN NULL
                                   ELSE retry_at END,
                   updated_at = :now
  WHERE id = :chat_id
), {_NEW_MESSAGE}
{_FINISH_EVENT}""",
    {**_FINISH_PARAMS, **_MESSAGE_PARAMS},
    {},
)

_ALL = (LOAD, CONTEXT, CONTEXT_ORGANIZATION, FINISH, FINISH_CREATE, FINISH_CONTINUE)
_PLAIN = {s.name: s.plain() for s in _ALL}
_EXECUTE = {s.name: s.execute_clause() for s in _ALL}
_PREPARE = {s.name: s.prepare_sql() for s in _ALL}
_INFO_KEY = "automations_prepared"


class PostgresEventStore:
    def __init__(self, conn: Connection, options: PipelineOptions) -> None:
        self.conn = conn
        self.options = options

    def _run(self, stmt: Statement, params: dict[str, Any]) -> Any:
        if not self.options.prepared_statements:
            return self.conn.execute(_PLAIN[stmt.name], params)
        prepared: set[str] = self.conn.info.setdefault(_INFO_KEY, set())
        if stmt.name not in prepared:
            self.conn.exec_driver_sql(_PREPARE[stmt.name])
            prepared.add(stmt.name)
        return self.conn.execute(_EXECUTE[stmt.name], params)

    def load(self, event_id: uuid.UUID) -> LoadedEvent | None:
        params = {"event_id": event_id, "async_commit": not self.options.synchronous_commit}
        return self._run(LOAD, params).first()  # type: ignore[no-any-return]

    def context(
        self, event: LoadedEvent, labels: dict[str, str], since: datetime | None
    ) -> Context:
        scoped = scope_automation_id(event) is not None
        row = self._run(
            CONTEXT if scoped else CONTEXT_ORGANIZATION,
            {
                "labels": labels or None,
                "owner_id": event.owner_id,
                "organization_id": event.organization_id,
                "automation_id": event.automation_id,
                "since": since,
            },
        ).one()
        return Context(int(row.messages), int(row.creates), row.matched_chat_id)

    def finish(self, decision: Decision) -> None:
        params: dict[str, Any] = {
            "status": decision.status.value,
            "filter_matched": decision.filter_matched,
            "resolved_labels": decision.labels,
            "matched_chat_id": decision.matched_chat_id,
            "created_chat_id": decision.created_chat_id,
            "error": decision.error,
            "now": decision.processed_at,
            "event_id": decision.event_id,
        }
        stmt = FINISH
        if decision.message is not None:
            params.update(
                message_id=decision.message.id,
                chat_id=decision.message.chat_id,
                content=decision.message.content,
            )
            stmt = FINISH_CONTINUE
        if decision.new_chat is not None:
            chat = decision.new_chat
            params.update(
                owner_id=chat.owner_id,
                organization_id=chat.organization_id,
                title=chat.title,
                labels=chat.labels,
                automation_id=chat.automation_id,
                model_config_id=chat.model_config_id,
            )
            stmt = FINISH_CREATE
        self._run(stmt, params)
