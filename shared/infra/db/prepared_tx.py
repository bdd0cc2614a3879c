"""A PostgreSQL transaction of prepared statements in as few round trips as possible.

For the per-event task, whose transaction is three prepared statements: SQLAlchemy's
``engine.begin()`` costs about 95 µs of CPU per transaction (Connection and Transaction
objects, events, commit bookkeeping), and psycopg2 sends ``BEGIN`` and ``COMMIT`` as round
trips of their own. :func:`prepared_transaction` instead sets the pooled DBAPI connection to
autocommit and sends ``BEGIN`` in the same query string as the first statement, and ``COMMIT``
in the same one as the statement queued with :meth:`PreparedTransaction.execute_at_commit`:
five round trips become three.

Everything else stays SQLAlchemy's: the transaction runs on a SQLAlchemy ``Connection`` (left
in the state it came in), and errors are wrapped and dead connections invalidated exactly as
``conn.execute`` does (see :meth:`PreparedStatement.run`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from psycopg2 import extensions as pgext
from sqlalchemy.engine import Connection, Dialect

from shared.infra.db.prepared import PreparedResult, PreparedStatement, send

__all__ = ["PreparedTransaction", "prepared_transaction"]

_OPEN = (pgext.TRANSACTION_STATUS_INTRANS, pgext.TRANSACTION_STATUS_INERROR)


class PreparedTransaction:
    """One transaction on one connection; statements only through :meth:`execute` and
    :meth:`execute_at_commit`. Made by :func:`prepared_transaction`, which commits it when
    its block ends normally and rolls it back otherwise."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._begun = False
        self._at_commit: tuple[PreparedStatement, dict[str, Any]] | None = None

    @property
    def dialect(self) -> Dialect:
        return self.conn.dialect

    def execute(self, statement: PreparedStatement, params: dict[str, Any]) -> PreparedResult:
        return statement.run(self.conn, params, before=self._begin())

    def execute_at_commit(self, statement: PreparedStatement, params: dict[str, Any]) -> None:
        """Send ``statement`` with the ``COMMIT``, in one round trip: for the transaction's
        last statement, whose result nobody reads. An error in it surfaces from the block's
        end (the commit), and nothing of the transaction is kept. If the block raises before,
        it is never sent."""
        if self._at_commit is not None:
            raise RuntimeError("only one statement can go with the commit")
        self._at_commit = (statement, params)

    def commit(self) -> None:
        pending, self._at_commit = self._at_commit, None
        if pending is not None:
            statement, params = pending
            statement.run(self.conn, params, before=self._begin(), after=";COMMIT")
        elif self._begun:
            send(self.conn, "COMMIT", None)
        self._begun = False

    def _begin(self) -> str:
        """``BEGIN;`` for the transaction's first statement, else nothing. Counted as begun
        from then on, even if that statement fails: BEGIN may have run, rollback() looks."""
        begun, self._begun = self._begun, True
        return "" if begun else "BEGIN;"

    def rollback(self) -> None:
        """End whatever is open on the server. A connection that cannot even do that is
        invalidated (the pool replaces it)."""
        self._at_commit = None
        self._begun = False
        conn = self.conn
        if conn.invalidated or conn.closed:
            return
        dbapi: Any = conn.connection.dbapi_connection
        try:
            if dbapi is not None and dbapi.info.transaction_status in _OPEN:
                with dbapi.cursor() as cursor:
                    cursor.execute("ROLLBACK")
        except Exception as exc:
            conn.invalidate(exc)


@contextmanager
def prepared_transaction(conn: Connection) -> Iterator[PreparedTransaction]:
    """A :class:`PreparedTransaction` on ``conn`` (PostgreSQL, psycopg2, no SQLAlchemy
    transaction open on it): committed when the block ends normally, rolled back when it
    raises. The DBAPI connection is in autocommit mode during the block only."""
    dbapi: Any = conn.connection.dbapi_connection  # reconnects one that was invalidated
    dbapi.autocommit = True
    tx = PreparedTransaction(conn)
    try:
        yield tx
        tx.commit()
    except BaseException:
        tx.rollback()
        raise
    finally:
        if not conn.invalidated:
            try:
                dbapi.autocommit = False  # as the pool handed it out
            except Exception as exc:  # the connection broke meanwhile
                conn.invalidate(exc)
