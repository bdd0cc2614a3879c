"""The pipeline's SQL, built once.

Every statement is a module-level constant with named bind parameters. SQLAlchemy memoises a
statement object's cache key, so executing the same object again skips building the
expression tree and computing its key (which costs more than the database round trip for
statements of this size). On PostgreSQL the statements are shaped for few round trips:

* ``LOAD_PG``: event row lock + automation + trigger + per-automation advisory lock (+ the
  transaction-local ``synchronous_commit`` switch) in one statement;
* ``CONTEXT_PG_*``: rate-limit counts + chat match in one statement;
* ``FINISH_*_PG``: the chat writes as data-modifying CTEs of the final event UPDATE.

SQLite gets plain statements executed one by one (in-process: no round trips to save).

On PostgreSQL :func:`execute` runs them as server-side prepared statements (planned once per
connection) unless ``AUTOMATIONS_DB_PREPARED_STATEMENTS`` is off; the worker then runs the
event's transaction as a :class:`~shared.infra.db.prepared_tx.PreparedTransaction` (``BEGIN`` and
``COMMIT`` sent with the first and the last statement).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, bindparam, case, func, null, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.sql import Executable, Select, Update

from shared.chats.matching import matching_chat_query
from shared.events.locks import automation_lock
from shared.infra.db.prepared import PreparedResult, PreparedStatement
from shared.infra.db.prepared_tx import PreparedTransaction
from shared.models.enums import EventStatus
from shared.models.tables import automations, chat_messages, chats, events, triggers

#: JSON whose Python ``None`` is SQL NULL (the model type stores it as JSON ``null``).
NULLABLE_JSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _p(table: Any, prefix: str, *names: str) -> dict[str, Any]:
    """Named, typed bind parameters for ``names`` of ``table``, prefixed so that statements
    combined into one never share a parameter name."""
    return {n: bindparam(f"{prefix}_{n}", type_=table.c[n].type) for n in names}


# --- load ------------------------------------------------------------------------------

_EVENT_COLS = (
    "id",
    "status",
    "automation_id",
    "trigger_id",
    "received_at",
    "payload",
    "pending_payload",
)


def _load(ev: Any, extra: tuple[Any, ...] = ()) -> Select[Any]:
    return select(
        *(ev.c[name] for name in _EVENT_COLS),
        automations.c.status.label("automation_status"),
        automations.c.name,
        automations.c.owner_id,
        automations.c.organization_id,
        automations.c.instructions,
        automations.c.model_config_id,
        automations.c.max_chat_creates_per_hour,
        automations.c.max_messages_per_hour,
        triggers.c.type.label("trigger_type"),
        triggers.c.filter,
        triggers.c.label_paths,
        *extra,
    ).select_from(
        ev.join(automations, automations.c.id == ev.c.automation_id).outerjoin(
            triggers, triggers.c.id == ev.c.trigger_id
        )
    )


#: SQLite: the engine's ``BEGIN IMMEDIATE`` already holds the database's only write lock.
LOAD_SQLITE = _load(events).where(events.c.id == bindparam("event_id"))

# PostgreSQL: the row comes out of a FOR UPDATE CTE (locked first), then the outer projection
# takes the advisory lock keyed on its automation.
_locked = (
    select(*(events.c[name] for name in _EVENT_COLS))
    .where(events.c.id == bindparam("event_id"))
    .with_for_update()
    .cte("locked_event")
)
_lock = automation_lock(_locked.c.automation_id).label("automation_locked")
# Every later statement of the transaction is an index lookup (primary keys, the rate-limit
# partial index, the GIN index on chat labels). Prepared statements keep the generic plan
# made on their sixth execution for the life of the connection; made while ``chats`` was
# small, that plan would scan the table, and keep scanning it as it grows. With sequential
# scans off for the transaction (transaction-local, like the commit mode) it cannot.
_index_scans_only = func.set_config("enable_seqscan", "off", True).label("index_scans_only")
LOAD_PG_SYNC = _load(_locked, (_lock, _index_scans_only))
LOAD_PG_ASYNC = _load(
    _locked,
    (
        _lock,
        _index_scans_only,
        func.set_config("synchronous_commit", "off", True).label("async_commit"),
    ),
)

# --- context: rate-limit counts and chat match ----------------------------------------------

_RATE_WHERE = (
    events.c.automation_id == bindparam("automation_id"),
    events.c.status.in_((EventStatus.CREATED, EventStatus.CONTINUED)),
    events.c.received_at >= bindparam("since", type_=events.c.received_at.type),
)
_MATCH_PG = matching_chat_query(
    bindparam("owner_id", type_=chats.c.owner_id.type),
    bindparam("organization_id", type_=chats.c.organization_id.type),
    bindparam("labels", type_=JSONB),
).scalar_subquery()
_COUNTS = (func.count(), func.count().filter(events.c.status == EventStatus.CREATED))

CONTEXT_PG_COUNTS_MATCH = select(*_COUNTS, _MATCH_PG).where(*_RATE_WHERE)
CONTEXT_PG_COUNTS = select(*_COUNTS).where(*_RATE_WHERE)
CONTEXT_PG_MATCH = select(_MATCH_PG)
COUNTS_SQLITE = select(
    func.count(),
    func.coalesce(func.sum(case((events.c.status == EventStatus.CREATED, 1), else_=0)), 0),
).where(*_RATE_WHERE)

# --- outcome writes -------------------------------------------------------------------------

FINISH = (
    update(events)
    .where(events.c.id == bindparam("event_id"))
    .values(
        **_p(
            events,
            "ev",
            "status",
            "filter_matched",
            "matched_chat_id",
            "created_chat_id",
            "error",
            "processed_at",
        ),
        resolved_labels=bindparam("ev_resolved_labels", type_=NULLABLE_JSON),
        pending_payload=null(),
    )
)

INSERT_CHAT = chats.insert().values(
    **_p(
        chats,
        "chat",
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
    )
)
TOUCH_CHAT = (
    update(chats)
    .where(chats.c.id == bindparam("touch_id", type_=chats.c.id.type))
    .values(**_p(chats, "touch", "status", "updated_at"))
)
INSERT_MESSAGE = chat_messages.insert().values(
    **_p(
        chat_messages,
        "msg",
        "id",
        "chat_id",
        "role",
        "content",
        "created_at",
        "deleted",
        "event_id",
    )
)


def _combined(*writes: Any) -> Update:
    stmt = FINISH
    for i, write in enumerate(writes):
        stmt = stmt.add_cte(write.cte(f"write_{i}"))
    return stmt


FINISH_CREATE_PG = _combined(INSERT_CHAT, INSERT_MESSAGE)
FINISH_CONTINUE_PG = _combined(TOUCH_CHAT, INSERT_MESSAGE)


_PREPARED: dict[Any, PreparedStatement] = {
    stmt: PreparedStatement(f"automations_pipeline_{name}", stmt)
    for name, stmt in (
        ("load_sync", LOAD_PG_SYNC),
        ("load_async", LOAD_PG_ASYNC),
        ("context_counts_match", CONTEXT_PG_COUNTS_MATCH),
        ("context_counts", CONTEXT_PG_COUNTS),
        ("context_match", CONTEXT_PG_MATCH),
        ("finish", FINISH),
        ("finish_create", FINISH_CREATE_PG),
        ("finish_continue", FINISH_CONTINUE_PG),
    )
}


#: what the pipeline's statements run on: a SQLAlchemy connection (both databases), or on
#: PostgreSQL with prepared statements the worker's :class:`PreparedTransaction`
Executor = Connection | PreparedTransaction


def execute(
    conn: Executor, stmt: Executable, params: dict[str, Any], prepared: bool
) -> CursorResult[Any] | PreparedResult:
    """``conn.execute(stmt, params)``, as a prepared statement where that applies."""
    if isinstance(conn, PreparedTransaction):
        return conn.execute(_PREPARED[stmt], params)
    if prepared and conn.dialect.name == "postgresql":
        ps = _PREPARED.get(stmt)
        if ps is not None:
            return ps(conn, params)
    return conn.execute(stmt, params)


def execute_last(conn: Executor, stmt: Executable, params: dict[str, Any], prepared: bool) -> None:
    """:func:`execute` for the transaction's last statement, whose result nobody reads: a
    :class:`PreparedTransaction` sends it together with its ``COMMIT``."""
    if isinstance(conn, PreparedTransaction):
        conn.execute_at_commit(_PREPARED[stmt], params)
    else:
        execute(conn, stmt, params, prepared)
