"""Engines and sessions for both backends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from shared.infra.config import Settings
from shared.infra.db import jsonio

#: seconds after which a pooled PostgreSQL connection is replaced (idle-timeout proxies,
#: server-side memory growth of long sessions)
POOL_RECYCLE_SECONDS = 1800


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 5,
    sqlite_foreign_keys: bool = True,
    **kw: Any,
) -> Engine:
    """An engine for ``url``. ``sqlite_foreign_keys=False`` is for schema migrations only:
    SQLite rebuilds a table to alter it (copy, DROP, rename), and with foreign keys enforced
    the DROP cascades into every table that references it (SQLite's own procedure for
    altering tables turns them off, then checks them)."""
    kw.setdefault("json_serializer", jsonio.dumps)
    kw.setdefault("json_deserializer", jsonio.loads)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kw)
        _configure_sqlite(engine, foreign_keys=sqlite_foreign_keys)
        return engine
    if "poolclass" not in kw:
        kw.update(pool_size=pool_size, max_overflow=max_overflow, pool_recycle=POOL_RECYCLE_SECONDS)
    kw.setdefault("pool_pre_ping", True)
    return create_engine(
        url,
        connect_args={"connect_timeout": 5, "application_name": "chat-automations"},
        **kw,
    )


def engine_from_settings(settings: Settings, **kw: Any) -> Engine:
    return make_engine(
        settings.effective_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        **kw,
    )


def _configure_sqlite(engine: Engine, *, foreign_keys: bool = True) -> None:
    """WAL, foreign keys, and BEGIN IMMEDIATE so a write transaction holds the single-writer
    lock from its first statement; that lock is what serialises the pipeline on SQLite."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
