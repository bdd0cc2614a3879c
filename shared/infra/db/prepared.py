"""Server-side prepared statements on PostgreSQL, for the few statements on a hot path.

psycopg2 sends every statement as text, so PostgreSQL parses and plans it on every
execution; for the pipeline's multi-CTE statements planning costs more than executing
(0.2-0.6 ms each). A :class:`PreparedStatement` is ``PREPARE``-d once per database
connection (lazily, on its first use there) and then run as ``EXECUTE name(…)``, which reuses
the plan. After five executions PostgreSQL switches to a generic plan when it is not worse.

Bind and result types are those of the SQLAlchemy statement it was built from, so callers pass
the same parameters and read the same rows as with ``conn.execute(statement)``.

Not for PgBouncer in transaction pooling mode: a prepared statement lives in one server
session, and such a pooler hands each transaction a different one (``EXECUTE`` then fails
with "prepared statement does not exist"). ``AUTOMATIONS_DB_PREPARED_STATEMENTS=false``
turns them off; callers then execute the SQLAlchemy statement itself.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql import psycopg2 as pg_psycopg2
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import (
    CompileError,
    InvalidRequestError,
    MultipleResultsFound,
    NoResultFound,
)
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

__all__ = ["PreparedResult", "PreparedStatement"]

#: Compiles with ``$1, $2, …`` placeholders, the form ``PREPARE`` takes.
_DOLLAR_DIALECT = pg_psycopg2.dialect(paramstyle="numeric_dollar")
#: key under which a connection's ``info`` remembers what is prepared on it
_INFO_KEY = "automations.prepared"
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_DOLLAR = re.compile(r"\$(\d+)")
_POSTCOMPILE = re.compile(r"__\[POSTCOMPILE_(\w+)\]")


class PreparedStatement:
    """One SQLAlchemy Core statement as a named prepared statement (PostgreSQL only)."""

    def __init__(self, name: str, statement: ClauseElement) -> None:
        if not _NAME.match(name):
            raise ValueError(f"not a valid prepared statement name: {name!r}")
        compiled = statement.compile(dialect=_DOLLAR_DIALECT)
        assert isinstance(compiled, SQLCompiler)
        if compiled.positiontup is None:  # pragma: no cover - the dialect is positional
            raise ValueError("statement did not compile to positional parameters")
        binds = compiled.binds

        # Constants the statement carries (anonymous binds: literals, LIMIT 1, IN lists of
        # enum values) are written into the prepared text: a generic plan must see them, e.g.
        # to prove that a partial index's predicate holds or that the LIMIT is 1. The rest
        # remain $n, renumbered in order: named parameters (a value given to a named
        # bindparam is a default the caller may override) and constants that have no SQL
        # literal form (None, which a JSON column stores as 'null', and values a type cannot
        # render), which EXECUTE then passes with their value.
        numbered = [key for key in compiled.positiontup if not binds[key].expanding]
        order: list[str] = []

        def inlined(key: str) -> str | None:
            bind = binds[key]
            if not bind.unique or bind.value is None or callable(bind.value):
                return None
            try:
                return compiled.render_literal_value(bind.value, bind.type)
            except CompileError:
                return None

        def dollar(match: re.Match[str]) -> str:
            key = numbered[int(match.group(1)) - 1]
            literal = inlined(key)
            if literal is not None:
                return literal
            order.append(key)
            return f"${len(order)}"

        def expanded(match: re.Match[str]) -> str:
            key = match.group(1)
            values = binds[key].value
            if not binds[key].unique or not values:
                raise ValueError(f"{name}: IN over {key!r} must be a non-empty list of constants")
            return ", ".join(compiled.render_literal_value(v, binds[key].type) for v in values)

        sql = _POSTCOMPILE.sub(expanded, compiled.string)
        sql = _DOLLAR.sub(dollar, sql)
        self.name = name
        self.prepare_sql = f"PREPARE {name} AS {sql}"

        # EXECUTE name(%(p)s, %(q)s, …): run on the DBAPI cursor, the parameters typed (bind
        # processors) as in the original statement and the result columns read as its columns
        keys = tuple(dict.fromkeys(order))
        arguments = f"({', '.join(f'%({key})s' for key in order)})" if order else ""
        self.execute_sql = f"EXECUTE {name}{arguments}"
        self._binds = tuple(
            _Bind(key, binds[key].type, not binds[key].required, binds[key].value) for key in keys
        )
        selected = getattr(statement, "selected_columns", None)
        columns = list(selected) if selected is not None else []
        self._keys = tuple(selected.keys()) if selected is not None else ()
        self._column_types = tuple(c.type for c in columns)
        self._row: Any = namedtuple("Row", self._keys, rename=True) if self._keys else None  # type: ignore[misc]
        self._processors: _Processors | None = None

    def __call__(self, conn: Connection, params: dict[str, Any]) -> PreparedResult:
        """Execute in ``conn``'s transaction (begun here if it has none, as
        ``conn.execute`` would), preparing it on that connection first if needed."""
        if not conn.in_transaction():
            conn.begin()
        return self.run(conn, params)

    def render(self, dialect: Dialect, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The ``EXECUTE`` text and the DBAPI parameters :meth:`run` sends for ``params``."""
        binds, _ = self._processors_for(dialect, None)
        args: dict[str, Any] = {}
        for bind, process in zip(self._binds, binds, strict=True):
            if bind.key in params:
                value = params[bind.key]
            elif bind.optional:
                value = bind.default
            else:
                raise InvalidRequestError(
                    f"{self.name}: a value is required for bind parameter {bind.key!r}"
                )
            args[bind.key] = process(value) if process is not None else value
        return self.execute_sql, args

    def run(
        self, conn: Connection, params: dict[str, Any], *, before: str = "", after: str = ""
    ) -> PreparedResult:
        """``EXECUTE`` on ``conn``'s DBAPI connection, whatever transaction state it is in;
        ``before`` and ``after`` are statements sent in the same round trip (``BEGIN;``,
        ``;COMMIT``). Errors are SQLAlchemy's, raised as ``conn.execute`` raises them (a
        connection found dead is invalidated)."""
        fairy = conn.connection
        prepared: set[str] = fairy.info.setdefault(_INFO_KEY, set())
        if self.name not in prepared:
            # Alone: when a statement sent with it fails, whether PREPARE succeeded would be
            # unknown. It is not transactional: a later rollback keeps it; the info dict is
            # cleared when the pool replaces the connection, so a new session prepares again.
            send(conn, self.prepare_sql, None)
            prepared.add(self.name)
        sql, args = self.render(conn.dialect, params)
        description, rows, rowcount = send(conn, f"{before}{sql}{after}", args or None)
        _, results = self._processors_for(conn.dialect, description)
        make = self._row._make if self._row is not None else tuple
        if results:  # processed and made into named rows in one pass
            rows = [
                make(
                    process(value) if process is not None else value
                    for process, value in zip(results, row, strict=True)
                )
                for row in rows
            ]
        elif self._row is not None:
            rows = [make(row) for row in rows]
        return PreparedResult(rows, self._keys, rowcount)

    def _processors_for(self, dialect: Dialect, description: Any) -> _Processors:
        cached = self._processors
        if cached is not None and (description is None or cached[1] is not None):
            return cached
        binds = tuple(
            bind.type.dialect_impl(dialect).bind_processor(dialect) for bind in self._binds
        )
        results: tuple[Any, ...] | None = None
        if description is not None and self._column_types:
            processors = tuple(
                type_.dialect_impl(dialect).result_processor(dialect, column[1])
                for type_, column in zip(self._column_types, description, strict=True)
            )
            results = processors if any(p is not None for p in processors) else ()
        self._processors = (binds, results)
        return self._processors


_Processors = tuple[tuple[Any, ...], "tuple[Any, ...] | None"]


@dataclass(frozen=True)
class _Bind:
    key: str
    type: Any
    optional: bool
    default: Any


def send(conn: Connection, sql: str, args: dict[str, Any] | None) -> tuple[Any, list[Any], int]:
    """One round trip on ``conn``'s DBAPI connection: (description, rows, rowcount)."""
    cursor = None
    try:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(sql, args)
        description = cursor.description
        rows: list[Any] = list(cursor.fetchall()) if description is not None else []
        rowcount = cursor.rowcount
        cursor.close()
    except Exception as exc:
        # wraps it, invalidates a dead connection (and the pool's older ones), re-raises
        conn._handle_dbapi_exception(exc, sql, args or {}, cursor, None)
    return description, rows, rowcount


class PreparedResult:
    """The rows of one ``EXECUTE``, read like SQLAlchemy's result: rows are named tuples with
    the statement's column keys, values typed as ``conn.execute`` would have them."""

    __slots__ = ("_keys", "_rows", "rowcount")

    def __init__(self, rows: list[Any], keys: tuple[str, ...], rowcount: int) -> None:
        self._rows = rows
        self._keys = keys
        self.rowcount = rowcount

    def keys(self) -> list[str]:
        return list(self._keys)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return list(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            if not self._rows:
                raise NoResultFound("No row was found when one was required")
            raise MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self._rows[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]
