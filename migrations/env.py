"""Alembic environment. The URL comes from the caller (``shared.infra.db.migrate``) or settings."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import pool

import shared.models  # noqa: F401  (registers every table)
from shared.infra.db.base import UTCDateTime, metadata
from shared.infra.db.engine import make_engine

config = context.config


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return str(url)
    from shared.infra.config import load_settings

    return load_settings().effective_database_url


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _options(dialect_name: str) -> dict[str, Any]:
    return {
        "target_metadata": metadata,
        "render_item": _render_item,
        "compare_type": True,
        # SQLite cannot ALTER constraints in place; batch mode recreates the table.
        "render_as_batch": dialect_name == "sqlite",
    }


def run_migrations_offline() -> None:
    url = _url()
    context.configure(url=url, literal_binds=True, **_options(url.split(":", 1)[0]))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **_options(connection.dialect.name))
        with context.begin_transaction():
            context.run_migrations()
        return
    # On SQLite with foreign keys off: altering a table rebuilds it (copy, DROP, rename), and
    # an enforced DROP of ``users`` would cascade into every automation, chat and event. The
    # keys are checked once the migrations ran, inside their transaction.
    engine = make_engine(_url(), poolclass=pool.NullPool, sqlite_foreign_keys=False)
    with engine.connect() as conn:
        context.configure(connection=conn, **_options(conn.dialect.name))
        with context.begin_transaction():
            context.run_migrations()
            if conn.dialect.name == "sqlite":
                _check_foreign_keys(conn)
    engine.dispose()


def _check_foreign_keys(conn: Any) -> None:
    """Fail the migration (rolling it back) if it left a row pointing nowhere."""
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"migration left {len(broken)} broken foreign keys: {broken[:5]}")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
