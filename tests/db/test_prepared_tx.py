"""``shared.infra.db.prepared_tx``: a transaction of prepared statements with ``BEGIN`` and
``COMMIT`` sent together with its first and last statement, on a real PostgreSQL database.

Each test has a table of its own (committed, dropped afterwards) and an engine of its own
without pre-ping, like the worker's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2.extensions
import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, Text, bindparam, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from shared.infra.db.engine import make_engine
from shared.infra.db.prepared import PreparedStatement
from shared.infra.db.prepared_tx import PreparedTransaction, prepared_transaction
from tests.harness.services import terminate_backend

pytestmark = pytest.mark.postgres


class _Counting(psycopg2.extensions.cursor):
    """Records every query string sent: one ``execute`` is one round trip."""

    sent: list[str] = []

    def execute(self, query: Any, vars: Any = None) -> Any:
        type(self).sent.append(str(query))
        return super().execute(query, vars)


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    eng = make_engine(pg_url, pool_size=1, max_overflow=0, pool_pre_ping=False)
    yield eng
    eng.dispose()


@pytest.fixture
def table(engine: Engine) -> Iterator[Table]:
    name = f"test_ptx_{uuid.uuid4().hex[:10]}"
    t = Table(name, MetaData(), Column("id", Integer, primary_key=True), Column("v", Text))
    t.create(engine)
    yield t
    t.drop(engine)


@contextmanager
def _tx(engine: Engine) -> Iterator[PreparedTransaction]:
    with engine.connect() as conn, prepared_transaction(conn) as tx:
        yield tx


def _statements(t: Table) -> tuple[PreparedStatement, PreparedStatement, PreparedStatement]:
    tag = uuid.uuid4().hex[:10]
    insert = PreparedStatement(
        f"test_ptx_ins_{tag}", t.insert().values(id=bindparam("id"), v=bindparam("v"))
    )
    read = PreparedStatement(
        f"test_ptx_sel_{tag}", select(t.c.id, t.c.v).where(t.c.id == bindparam("id"))
    )
    count = PreparedStatement(f"test_ptx_cnt_{tag}", select(text("count(*)")).select_from(t))
    return insert, read, count


def _rows(engine: Engine, t: Table) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [(r.id, r.v) for r in conn.execute(select(t).order_by(t.c.id))]


def _counting(engine: Engine) -> list[str]:
    """Count what the pooled connection sends from now on (pool of one)."""
    with engine.connect() as conn:
        dbapi: Any = conn.connection.dbapi_connection
        dbapi.cursor_factory = _Counting
    _Counting.sent = []
    return _Counting.sent


def _backend_pid(tx: PreparedTransaction) -> int:
    dbapi: Any = tx.conn.connection.dbapi_connection
    return int(dbapi.get_backend_pid())  # no round trip


def _assert_back_in_the_pool_idle(engine: Engine) -> None:
    with engine.connect() as conn:
        dbapi: Any = conn.connection.dbapi_connection
        assert dbapi.autocommit is False
        assert dbapi.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        assert conn.execute(text("SELECT 1")).scalar_one() == 1


def test_begin_and_commit_travel_with_the_first_and_last_statement(
    engine: Engine, table: Table
) -> None:
    insert, read, _ = _statements(table)
    with _tx(engine) as tx:  # first use: PREPAREs
        tx.execute(insert, {"id": 1, "v": "a"})
        tx.execute_at_commit(insert, {"id": 2, "v": "b"})
        assert tx.execute(read, {"id": 1}).one() == (1, "a")
    sent = _counting(engine)
    with _tx(engine) as tx:
        got = tx.execute(read, {"id": 2}).one()
        assert (got.id, got.v) == (2, "b")
        tx.execute(insert, {"id": 3, "v": "c"})
        tx.execute_at_commit(insert, {"id": 4, "v": "d"})
        assert len(sent) == 2  # the last one waits for the commit
    assert [s.split(" ")[0] for s in sent] == ["BEGIN;EXECUTE", "EXECUTE", "EXECUTE"]
    assert sent[-1].endswith(";COMMIT")
    assert _rows(engine, table) == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    _assert_back_in_the_pool_idle(engine)


def test_without_a_statement_at_commit_commit_is_its_own_round_trip(
    engine: Engine, table: Table
) -> None:
    insert, _, count = _statements(table)
    with _tx(engine) as tx:  # first use: PREPAREs
        assert tx.execute(count, {}).scalar() == 0
        tx.execute(insert, {"id": 0, "v": "z"})
    sent = _counting(engine)
    with _tx(engine) as tx:
        tx.execute(insert, {"id": 1, "v": "a"})
    assert sent[0].startswith("BEGIN;EXECUTE") and sent[1:] == ["COMMIT"]
    with _tx(engine) as tx:
        tx.execute_at_commit(insert, {"id": 2, "v": "b"})  # the only statement
    assert sent[2].startswith("BEGIN;EXECUTE") and sent[2].endswith(";COMMIT")
    with _tx(engine):
        pass
    assert len(sent) == 3  # an empty block sends nothing
    assert _rows(engine, table) == [(0, "z"), (1, "a"), (2, "b")]
    _assert_back_in_the_pool_idle(engine)


def test_an_error_in_the_block_rolls_back_and_never_sends_the_last_statement(
    engine: Engine, table: Table
) -> None:
    insert, _, _ = _statements(table)
    with pytest.raises(ZeroDivisionError), _tx(engine) as tx:
        tx.execute(insert, {"id": 1, "v": "a"})
        tx.execute_at_commit(insert, {"id": 2, "v": "b"})
        raise ZeroDivisionError
    assert _rows(engine, table) == []
    _assert_back_in_the_pool_idle(engine)


def test_a_failing_statement_rolls_back_the_whole_transaction(engine: Engine, table: Table) -> None:
    insert, _, _ = _statements(table)
    # wrapped like conn.execute's errors
    with pytest.raises(IntegrityError), _tx(engine) as tx:
        tx.execute(insert, {"id": 1, "v": "a"})
        tx.execute(insert, {"id": 1, "v": "again"})
    assert _rows(engine, table) == []
    _assert_back_in_the_pool_idle(engine)


def test_a_failing_last_statement_fails_the_commit_and_keeps_nothing(
    engine: Engine, table: Table
) -> None:
    insert, _, _ = _statements(table)
    with pytest.raises(IntegrityError), _tx(engine) as tx:
        tx.execute(insert, {"id": 1, "v": "a"})
        tx.execute_at_commit(insert, {"id": 1, "v": "duplicate"})
    assert _rows(engine, table) == []
    _assert_back_in_the_pool_idle(engine)
    # and the same statements work on it afterwards
    with _tx(engine) as tx:
        tx.execute(insert, {"id": 1, "v": "a"})
        tx.execute_at_commit(insert, {"id": 2, "v": "b"})
    assert _rows(engine, table) == [(1, "a"), (2, "b")]


def test_only_one_statement_can_go_with_the_commit(engine: Engine, table: Table) -> None:
    insert, _, _ = _statements(table)
    with pytest.raises(RuntimeError, match="only one"), _tx(engine) as tx:
        tx.execute_at_commit(insert, {"id": 1, "v": "a"})
        tx.execute_at_commit(insert, {"id": 2, "v": "b"})
    assert _rows(engine, table) == []


def test_a_dead_connection_is_invalidated_and_replaced(
    engine: Engine, table: Table, pg_url: str
) -> None:
    insert, read, _ = _statements(table)
    with _tx(engine) as tx:
        tx.execute(insert, {"id": 1, "v": "a"})
        pid = _backend_pid(tx)
    terminate_backend(pg_url, pid)
    with pytest.raises(DBAPIError) as failure, _tx(engine) as tx:
        tx.execute(read, {"id": 1})
    assert failure.value.connection_invalidated
    # the pool connects anew, and the statements are prepared again on the new session
    with _tx(engine) as tx:
        assert tx.execute(read, {"id": 1}).one() == (1, "a")
        assert _backend_pid(tx) != pid
    _assert_back_in_the_pool_idle(engine)
