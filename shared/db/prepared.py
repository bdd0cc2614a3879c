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
from typing import Any

from sqlalchemy import bindparam, column, text
from sqlalchemy.dialects.postgresql import psycopg2 as pg_psycopg2
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import CompileError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, TextClause
from sqlalchemy.sql.selectable import TextualSelect

__all__ = ["PreparedStatement"]

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

        # EXECUTE name(:p, :q, …): each parameter typed as in the original statement
        arguments = f"({', '.join(f':{key}' for key in order)})" if order else ""
        clause = text(f"EXECUTE {name}{arguments}").bindparams(
            *(
                bindparam(key, binds[key].value, type_=binds[key].type)
                if not binds[key].required
                else bindparam(key, type_=binds[key].type)
                for key in dict.fromkeys(order)
            )
        )
        self._execute: TextClause | TextualSelect = clause
        selected = getattr(statement, "selected_columns", None)
        if selected is not None and len(selected):
            # matched positionally: EXECUTE returns the prepared SELECT's columns
            self._execute = clause.columns(
                *(column(key, c.type) for key, c in zip(selected.keys(), selected, strict=True))
            )

    def __call__(self, conn: Connection, params: dict[str, Any]) -> CursorResult[Any]:
        """Execute on ``conn`` (preparing it there first if this connection has not yet)."""
        prepared: set[str] = conn.connection.info.setdefault(_INFO_KEY, set())
        if self.name not in prepared:
            # Through SQLAlchemy, so that a dead connection is detected, invalidated and
            # reported like any statement's failure; no_parameters: the text is not
            # interpolated. PREPARE is not transactional, so a later rollback keeps it; the
            # info dict is cleared when the pool replaces the connection, so a new session
            # is prepared again.
            conn.exec_driver_sql(self.prepare_sql, execution_options={"no_parameters": True})
            prepared.add(self.name)
        return conn.execute(self._execute, params)
