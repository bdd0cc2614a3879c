"""Picks the pipeline's event store for a connection's database."""

from __future__ import annotations

from sqlalchemy import Connection

from shared.events.options import PipelineOptions
from shared.events.store import EventStore
from shared.events.store_postgres import PostgresEventStore
from shared.events.store_sqlite import SqliteEventStore


def open_store(conn: Connection, options: PipelineOptions) -> EventStore:
    """The store for this connection's database (the one place that picks a backend)."""
    if conn.dialect.name == "postgresql":
        return PostgresEventStore(conn, options)
    return SqliteEventStore(conn)
