"""``shared.infra.db.prepared.PreparedStatement`` on a real, migrated PostgreSQL database.

Each test gets its own engine (no pre-ping, like the worker's) and uses statement names of
its own, so what is prepared on one test's connections never leaks into another's.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Integer, bindparam, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from shared.events import statements
from shared.infra.clock import FrozenClock
from shared.infra.db.engine import make_engine
from shared.infra.db.prepared import PreparedStatement
from shared.models import ChatStatus, ClientType, EventStatus, User
from shared.models.tables import chats, events
from tests import factories as f
from tests.harness.services import terminate_backend

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    eng = make_engine(pg_url, pool_size=2, max_overflow=2, pool_pre_ping=False)
    yield eng
    eng.dispose()


def _name(what: str) -> str:
    return f"test_{what}_{uuid.uuid4().hex[:12]}"


def _by_id() -> Any:
    return select(events.c.id, events.c.status).where(events.c.id == bindparam("event_id"))


def _pid(conn: Connection) -> int:
    return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _prepared_here(conn: Connection, name: str) -> tuple[int, int]:
    """(rows in pg_prepared_statements named ``name``, plans executed from them) on ``conn``'s
    server session."""
    row = conn.execute(
        text(
            "SELECT count(*), coalesce(sum(generic_plans + custom_plans), 0) "
            "FROM pg_prepared_statements WHERE name = :name"
        ),
        {"name": name},
    ).one()
    return int(row[0]), int(row[1])


def _seed(conn: Connection, clock: FrozenClock) -> dict[str, Any]:
    """An automation with a trigger and two events, and its owner with one chat."""
    session = Session(bind=conn, join_transaction_mode="create_savepoint")
    auto = f.automation(session, clock)
    trig = f.webhook_trigger(session, clock, auto)
    owner = session.get(User, auto.owner_id)
    assert owner is not None
    chat = f.chat(session, clock, owner, auto.organization_id, labels={"repo": "api"})
    first = f.event(
        session,
        clock,
        auto,
        trigger_id=trig.id,
        payload={"action": "opened", "pr": {"number": 7, "draft": False}, "tags": ["a", None]},
        received_at=clock.now() - timedelta(minutes=5),
    )
    second = f.event(
        session,
        clock,
        auto,
        trigger_id=trig.id,
        payload=["a", 1, 2.5],
        status=EventStatus.CREATED,
        created_chat_id=chat.id,
        delivery_id="d-2",
    )
    seeded = {
        "automation_id": auto.id,
        "organization_id": auto.organization_id,
        "owner_id": auto.owner_id,
        "events": (first.id, second.id),
        "chat_id": chat.id,
    }
    session.commit()  # releases the session's savepoint: the rows stay in conn's transaction
    session.close()
    return seeded


# --- same rows and types as conn.execute --------------------------------------------------


def test_select_returns_the_same_rows_and_python_types(engine: Engine, clock: FrozenClock) -> None:
    stmt = (
        select(
            events.c.id,
            events.c.status,
            events.c.payload,
            events.c.received_at,
            events.c.trigger_id,
            events.c.delivery_id,
            events.c.occurrences,
            events.c.processed_at,
        )
        .where(
            events.c.automation_id == bindparam("automation_id"),
            events.c.received_at >= bindparam("since"),
        )
        .order_by(events.c.received_at)
    )
    ps = PreparedStatement(_name("select"), stmt)
    with engine.connect() as conn, conn.begin() as trans:
        seeded = _seed(conn, clock)
        params = {
            "automation_id": seeded["automation_id"],
            "since": clock.now() - timedelta(hours=1),
        }
        expected = conn.execute(stmt, params).all()
        got = ps(conn, params).all()
        again = ps(conn, params).all()  # EXECUTE of the already prepared statement

        assert [row.id for row in expected] == list(seeded["events"])
        assert got == expected == again
        for row_got, row_expected in zip(got, expected, strict=True):
            assert [type(v) for v in row_got] == [type(v) for v in row_expected]
        first, second = got
        assert list(ps(conn, params).keys()) == list(conn.execute(stmt, params).keys())
        assert isinstance(first.id, uuid.UUID) and isinstance(first.trigger_id, uuid.UUID)
        assert first.status is EventStatus.PENDING and second.status is EventStatus.CREATED
        assert first.payload == {
            "action": "opened",
            "pr": {"number": 7, "draft": False},
            "tags": ["a", None],
        }
        assert isinstance(first.payload, dict)
        assert second.payload == ["a", 1, 2.5]
        assert first.received_at == clock.now() - timedelta(minutes=5)
        assert first.received_at.tzinfo is not None
        assert second.delivery_id == "d-2" and first.delivery_id is None
        assert first.processed_at is None and first.occurrences == 1
        # a narrower parameter value is really bound, not baked in
        narrower = {**params, "since": clock.now() - timedelta(minutes=1)}
        assert [r.id for r in ps(conn, narrower)] == [seeded["events"][1]]
        assert ps(conn, {**params, "automation_id": uuid.uuid4()}).all() == []
        trans.rollback()


def _chat_values(seeded: dict[str, Any], clock: FrozenClock, chat_id: uuid.UUID) -> dict[str, Any]:
    return {
        "new_id": chat_id,
        "new_owner_id": seeded["owner_id"],
        "new_organization_id": seeded["organization_id"],
        "new_title": "a chat",
        "new_status": ChatStatus.PENDING,
        "new_labels": {"repo": "acme/api", "pr": "7", "nested": {"x": [1, 2]}},
        "new_automation_id": seeded["automation_id"],
        "new_client_type": ClientType.API,
        "new_created_at": clock.now(),
        "new_updated_at": clock.now() + timedelta(seconds=1),
    }


_INSERT_CHAT = chats.insert().values(
    id=bindparam("new_id"),
    owner_id=bindparam("new_owner_id"),
    organization_id=bindparam("new_organization_id"),
    title=bindparam("new_title"),
    status=bindparam("new_status"),
    labels=bindparam("new_labels"),
    automation_id=bindparam("new_automation_id"),
    archived=False,
    pin_order=0,
    client_type=bindparam("new_client_type"),
    created_at=bindparam("new_created_at"),
    updated_at=bindparam("new_updated_at"),
)


def _chat_row(conn: Connection, chat_id: uuid.UUID) -> dict[str, Any]:
    row = conn.execute(select(chats).where(chats.c.id == chat_id)).mappings().one()
    return {k: v for k, v in row.items() if k != "id"}


def test_insert_writes_the_same_row_as_conn_execute(engine: Engine, clock: FrozenClock) -> None:
    ps = PreparedStatement(_name("insert"), _INSERT_CHAT)
    assert "VALUES ($1::UUID" in ps.prepare_sql and "false" in ps.prepare_sql
    with engine.connect() as conn, conn.begin() as trans:
        seeded = _seed(conn, clock)
        plain_id, prepared_id = uuid.uuid4(), uuid.uuid4()
        plain = conn.execute(_INSERT_CHAT, _chat_values(seeded, clock, plain_id))
        prepared = ps(conn, _chat_values(seeded, clock, prepared_id))
        assert prepared.rowcount == plain.rowcount == 1
        stored = _chat_row(conn, prepared_id)
        assert stored == _chat_row(conn, plain_id)
        assert stored["status"] is ChatStatus.PENDING
        assert stored["labels"] == {"repo": "acme/api", "pr": "7", "nested": {"x": [1, 2]}}
        assert stored["created_at"] == clock.now() and stored["created_at"].tzinfo is not None
        assert stored["archived"] is False and stored["pin_order"] == 0
        trans.rollback()


def test_update_changes_the_same_rows_as_conn_execute(engine: Engine, clock: FrozenClock) -> None:
    stmt = (
        update(chats)
        .where(chats.c.id == bindparam("chat_id"), chats.c.archived.is_(False))
        .values(
            status=bindparam("new_status"),
            labels=bindparam("new_labels"),
            updated_at=bindparam("new_updated_at"),
            pin_order=3,  # a constant: written into the prepared text
        )
    )
    ps = PreparedStatement(_name("update"), stmt)
    assert "pin_order=3" in ps.prepare_sql
    with engine.connect() as conn, conn.begin() as trans:
        seeded = _seed(conn, clock)
        twin = uuid.uuid4()
        conn.execute(_INSERT_CHAT, _chat_values(seeded, clock, twin))
        values = {
            "new_status": ChatStatus.RUNNING,
            "new_labels": {"k": "v"},
            "new_updated_at": clock.now() + timedelta(hours=2),
        }
        plain = conn.execute(stmt, {"chat_id": twin, **values})
        prepared = ps(conn, {"chat_id": seeded["chat_id"], **values})
        assert prepared.rowcount == plain.rowcount == 1
        stored = _chat_row(conn, seeded["chat_id"])
        other = _chat_row(conn, twin)
        for key in ("status", "labels", "updated_at", "pin_order"):
            assert stored[key] == other[key], key
        assert stored["status"] is ChatStatus.RUNNING and stored["labels"] == {"k": "v"}
        assert stored["updated_at"] == clock.now() + timedelta(hours=2)
        assert stored["pin_order"] == 3
        # nothing matches: 0 rows either way
        missing = {"chat_id": uuid.uuid4(), **values}
        assert ps(conn, missing).rowcount == conn.execute(stmt, missing).rowcount == 0
        trans.rollback()


def test_a_none_constant_is_written_like_conn_execute(engine: Engine, clock: FrozenClock) -> None:
    stmt = update(chats).where(chats.c.id == bindparam("chat_id")).values(last_error=None)
    ps = PreparedStatement(_name("none_constant"), stmt)
    with engine.connect() as conn, conn.begin() as trans:
        seeded = _seed(conn, clock)
        twin = uuid.uuid4()
        conn.execute(_INSERT_CHAT, _chat_values(seeded, clock, twin))
        conn.execute(update(chats).values(last_error={"message": "boom"}))
        conn.execute(stmt, {"chat_id": twin})
        assert ps(conn, {"chat_id": seeded["chat_id"]}).rowcount == 1
        stored = _chat_row(conn, seeded["chat_id"])["last_error"]
        assert stored == _chat_row(conn, twin)["last_error"]
        trans.rollback()


# --- prepared once per connection -----------------------------------------------------------


def test_prepared_once_per_connection_and_again_on_another(engine: Engine) -> None:
    ps = PreparedStatement(_name("once"), _by_id())
    params = {"event_id": uuid.uuid4()}
    with engine.connect() as first:
        assert _prepared_here(first, ps.name) == (0, 0)
        assert ps(first, params).all() == []
        assert ps(first, params).all() == []
        # one PREPARE (a second one of the same name would have failed), two EXECUTEs
        assert _prepared_here(first, ps.name) == (1, 2)
        with engine.connect() as second:
            assert _pid(second) != _pid(first)
            assert _prepared_here(second, ps.name) == (0, 0)
            assert ps(second, params).all() == []
            assert _prepared_here(second, ps.name) == (1, 1)
        assert _prepared_here(first, ps.name) == (1, 2)
    # checked out again from the pool: still prepared there, not PREPAREd a second time
    pids: set[int] = set()
    for _ in range(4):
        with engine.connect() as conn:
            ps(conn, params).all()
            pids.add(_pid(conn))
            assert _prepared_here(conn, ps.name)[0] == 1
    assert len(pids) <= 2  # the two pooled connections, reused


def test_rollback_after_the_first_use_keeps_it_usable(engine: Engine) -> None:
    ps = PreparedStatement(_name("rollback"), _by_id())
    params = {"event_id": uuid.uuid4()}
    with engine.connect() as conn:
        with conn.begin() as trans:
            assert ps(conn, params).all() == []
            trans.rollback()
        assert _prepared_here(conn, ps.name)[0] == 1
        conn.rollback()
        # also after a transaction that failed
        conn.begin()
        ps(conn, params).all()
        with pytest.raises(DBAPIError):
            conn.exec_driver_sql("SELECT 1 / 0")
        conn.rollback()
        assert ps(conn, params).all() == []
        assert _prepared_here(conn, ps.name) == (1, 3)
        conn.commit()


# --- invalidated connections -------------------------------------------------------------------


def test_prepared_again_after_conn_invalidate(engine: Engine) -> None:
    ps = PreparedStatement(_name("invalidate"), _by_id())
    params = {"event_id": uuid.uuid4()}
    with engine.connect() as conn:
        ps(conn, params).all()
        old = _pid(conn)
        conn.invalidate()
        conn.rollback()
        # the same Connection reconnects on its next use: a new session, prepared again
        assert ps(conn, params).all() == []
        assert _pid(conn) != old
        assert _prepared_here(conn, ps.name) == (1, 1)
        conn.invalidate()
    with engine.connect() as conn:
        assert ps(conn, params).all() == []
        assert _prepared_here(conn, ps.name) == (1, 1)


def test_prepared_again_after_the_backend_was_terminated(engine: Engine, pg_url: str) -> None:
    ps = PreparedStatement(_name("terminated"), _by_id())
    params = {"event_id": uuid.uuid4()}
    with engine.connect() as conn:
        ps(conn, params).all()
        dead = _pid(conn)
    terminate_backend(pg_url, dead)
    with engine.connect() as conn:
        # the pool hands out the dead connection (no pre-ping); EXECUTE fails on it and
        # SQLAlchemy invalidates it
        with pytest.raises(DBAPIError) as failure:
            ps(conn, params)
        assert failure.value.connection_invalidated
    with engine.connect() as conn:
        assert _pid(conn) != dead
        assert ps(conn, params).all() == []
        assert _prepared_here(conn, ps.name) == (1, 1)


def test_first_use_on_a_dead_connection_fails_like_conn_execute(
    engine: Engine, pg_url: str
) -> None:
    ps = PreparedStatement(_name("dead_first_use"), _by_id())
    params = {"event_id": uuid.uuid4()}
    with engine.connect() as conn:
        dead = _pid(conn)
    terminate_backend(pg_url, dead)
    with engine.connect() as conn:
        with pytest.raises(DBAPIError) as failure:
            ps(conn, params)  # its first use on this connection: PREPARE, then EXECUTE
        assert failure.value.connection_invalidated
    with engine.connect() as conn:
        assert ps(conn, params).all() == []


# --- what is written into the prepared text -------------------------------------------------


def test_a_named_bind_with_a_value_is_a_default_the_caller_may_override(engine: Engine) -> None:
    stmt = select(bindparam("x", 5, type_=Integer) + 0)
    ps = PreparedStatement(_name("named_default"), stmt)
    assert "$1" in ps.prepare_sql  # not written into the text
    with engine.connect() as conn:
        assert ps(conn, {}).scalar() == conn.execute(stmt).scalar() == 5
        assert ps(conn, {"x": 7}).scalar() == conn.execute(stmt, {"x": 7}).scalar() == 7


def test_an_empty_in_list_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty list of constants"):
        PreparedStatement("test_empty_in", select(events.c.id).where(events.c.status.in_([])))


def test_constants_are_inlined_and_only_real_parameters_remain() -> None:
    stmt = (
        select(events.c.id)
        .where(
            events.c.automation_id == bindparam("automation_id"),
            events.c.status.in_([EventStatus.CREATED, EventStatus.CONTINUED]),
            events.c.occurrences >= 2,
        )
        .order_by(events.c.received_at.desc())
        .limit(1)
    )
    ps = PreparedStatement("test_inline", stmt)
    sql = ps.prepare_sql
    assert sql.startswith("PREPARE test_inline AS SELECT")
    assert "LIMIT 1" in sql
    assert "IN ('created', 'continued')" in sql
    assert ">= 2" in sql
    assert "__[POSTCOMPILE" not in sql
    assert "$1" in sql and "$2" not in sql  # automation_id is the only parameter


def test_inlined_constants_select_the_same_rows(engine: Engine, clock: FrozenClock) -> None:
    stmt = (
        select(events.c.id)
        .where(
            events.c.automation_id == bindparam("automation_id"),
            events.c.status.in_([EventStatus.CREATED, EventStatus.CONTINUED]),
        )
        .limit(1)
    )
    ps = PreparedStatement(_name("inlined"), stmt)
    with engine.connect() as conn, conn.begin() as trans:
        seeded = _seed(conn, clock)
        params = {"automation_id": seeded["automation_id"]}
        assert ps(conn, params).all() == conn.execute(stmt, params).all()
        assert ps(conn, params).scalar_one() == seeded["events"][1]  # the created one
        trans.rollback()


def test_in_over_a_parameter_is_refused() -> None:
    stmt = select(events.c.id).where(
        events.c.status.in_(bindparam("statuses", expanding=True)),
    )
    with pytest.raises(ValueError, match="statuses"):
        PreparedStatement("test_expanding", stmt)


@pytest.mark.parametrize(
    "name", ["", "Upper", "1st", "with-dash", "with space", "x; DROP TABLE chats", "é"]
)
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        PreparedStatement(name, _by_id())


# --- the pipeline's statements ----------------------------------------------------------------


@pytest.mark.parametrize("ps", list(statements._PREPARED.values()), ids=lambda ps: ps.name)
def test_every_pipeline_statement_prepares_on_the_migrated_schema(
    engine: Engine, ps: PreparedStatement
) -> None:
    assert "__[POSTCOMPILE" not in ps.prepare_sql
    with engine.connect() as conn, conn.begin() as trans:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(ps.prepare_sql)  # raw: the text is not interpolated
        finally:
            cursor.close()
        types = conn.execute(
            text("SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = :n"),
            {"n": ps.name},
        ).scalar_one()
        # PostgreSQL could infer every parameter's type (EXECUTE binds each as its own)
        assert "unknown" not in types
        assert len(types) == len(set(re.findall(r"\$(\d+)", ps.prepare_sql)))
        conn.exec_driver_sql(f"DEALLOCATE {ps.name}")
        trans.rollback()
