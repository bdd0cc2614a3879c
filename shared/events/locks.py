"""The per-automation lock of SPEC 5."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Text, cast, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

#: seed of ``hashtextextended``: a namespace so the keys cannot collide with the small
#: constant keys other jobs (cron dispatch, purge) lock on.
LOCK_NAMESPACE = 0x6175746F6D617465  # "automate"


def automation_lock_key(automation_id: Any) -> ColumnElement[int]:
    """SQL expression of the signed 64-bit advisory-lock key of one automation.

    Computed by PostgreSQL (``hashtextextended(id::text, namespace)``) so the pipeline can
    take the lock inside the statement that loads the event, without an extra round trip.
    """
    return func.hashtextextended(cast(automation_id, Text), LOCK_NAMESPACE)


def automation_lock(automation_id: Any) -> ColumnElement[Any]:
    """``pg_advisory_xact_lock(<key>)``: held until the transaction ends; released after the
    commit's rows are visible, so the next holder counts them."""
    return func.pg_advisory_xact_lock(automation_lock_key(automation_id))


def lock_automation(conn: Connection, automation_id: uuid.UUID) -> None:
    """Take the pipeline's lock of one automation for the rest of the transaction, e.g. from
    a management operation that must not interleave with event processing. No-op on SQLite,
    whose ``BEGIN IMMEDIATE`` already holds the database's only write lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(automation_lock(automation_id)))
