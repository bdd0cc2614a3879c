"""The chat match on PostgreSQL: the GIN index on ``chats.labels`` serves it (with fresh or
analysed statistics, and as a prepared statement's generic plan), and what it returns is
unchanged, with and without server-side prepared statements."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shared.chats.matching import find_matching_chat, matching_chat_query
from shared.events import store_postgres
from shared.events.backends import open_store
from shared.events.options import PipelineOptions
from shared.events.pipeline import Outcome, process_event
from shared.infra.clock import FrozenClock
from shared.infra.db.engine import make_engine
from shared.infra.db.uow import Database
from shared.models import (
    Automation,
    AutomationStatus,
    AutomationTrigger,
    Chat,
    ChatScope,
    EventStatus,
    User,
)
from shared.models.tables import chats
from tests import factories as f

pytestmark = pytest.mark.postgres

CHATS = 3000
WANTED = {"repo": "acme/r-17", "kind": "User"}
INDEX = "ix_chats_labels"


def _owner_with_many_chats(session: Session, clock: FrozenClock) -> tuple[User, uuid.UUID]:
    """An owner holding ``CHATS`` root chats, newest first by index; returns the owner and
    the id of the one labelled ``WANTED``."""
    org = f.org(session, clock)
    owner = f.user(session, clock, org)
    now = clock.now()
    ids = [uuid.uuid4() for _ in range(CHATS)]
    rows: list[dict[str, Any]] = [
        {
            "id": ids[i],
            "owner_id": owner.id,
            "organization_id": org.id,
            "title": f"chat {i}",
            "status": "waiting",
            "labels": {"repo": f"acme/r-{i}", "kind": "User"},
            "archived": False,
            "pin_order": 0,
            "client_type": "api",
            "created_at": now - timedelta(seconds=i),
            "updated_at": now - timedelta(seconds=i),
        }
        for i in range(CHATS)
    ]
    session.connection().execute(insert(chats), rows)
    return owner, ids[int(WANTED["repo"].rsplit("-", 1)[1])]


def _last_statement(conn: Connection, run: Callable[[], Any]) -> tuple[str, Any]:
    """The SQL text and parameters ``run`` sent last, exactly as the driver received them."""
    sent: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:
        _conn, _cursor, statement, parameters, _context, _many = args
        sent.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", capture)
    try:
        run()
    finally:
        event.remove(conn, "before_cursor_execute", capture)
    return sent[-1]


def _explain(conn: Connection, run: Callable[[], Any]) -> str:
    statement, parameters = _last_statement(conn, run)
    return "\n".join(conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars())


def _statement_stats(conn: Connection, name: str) -> tuple[int, int]:
    row = conn.execute(
        text("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = :n"),
        {"n": name},
    ).one()
    return int(row[0]), int(row[1])


# --- the plan ---------------------------------------------------------------------------------


def test_match_uses_the_labels_index_before_and_after_analyze(
    pg_session: Session, clock: FrozenClock
) -> None:
    owner, wanted = _owner_with_many_chats(pg_session, clock)
    org_id = owner.memberships[0].organization_id
    conn = pg_session.connection()
    query = matching_chat_query(owner.id, org_id, WANTED)

    def run() -> None:
        assert conn.execute(query).scalar_one() == wanted

    # statistics as they are right after a bulk insert (nobody analysed these rows)
    before = _explain(conn, run)
    assert INDEX in before, before
    # ANALYZE in this transaction is rolled back with it
    conn.exec_driver_sql("ANALYZE chats")
    after = _explain(conn, run)
    assert INDEX in after, after
    # the owner's index walk (newest first, filtering labels) is what this shape avoids
    assert "ix_chats_owner_org_updated" not in after


@pytest.mark.parametrize("analyze", [False, True], ids=["fresh", "analyzed"])
def test_prepared_match_uses_the_labels_index_in_its_generic_plan(
    pg_session: Session, clock: FrozenClock, analyze: bool
) -> None:
    owner, wanted = _owner_with_many_chats(pg_session, clock)
    conn = pg_session.connection()
    if analyze:
        conn.exec_driver_sql("ANALYZE chats")
    # the pipeline's statement under a name of this test's own (pooled connections may have
    # prepared and planned the pipeline's name in earlier tests)
    ps = dataclasses.replace(
        store_postgres.CONTEXT_ORGANIZATION, name=f"test_match_{uuid.uuid4().hex[:12]}"
    )
    conn.exec_driver_sql(ps.prepare_sql())
    params = {
        "owner_id": owner.id,
        "organization_id": owner.memberships[0].organization_id,
        "labels": WANTED,
        "automation_id": uuid.uuid4(),
        "since": clock.now(),
    }

    def run() -> None:
        assert conn.execute(ps.execute_clause(), params).one().matched_chat_id == wanted

    try:
        for _ in range(6):  # PostgreSQL considers a generic plan from the sixth execution on
            run()
        generic, _custom = _statement_stats(conn, ps.name)
        assert generic >= 1  # it did switch to the generic plan

        plan = _explain(conn, run)  # runs it once, then EXPLAINs the very EXECUTE it sent
        assert _statement_stats(conn, ps.name)[0] == generic + 2  # both runs were generic
        assert "$1" in plan  # parameters, not values: a generic plan
        assert INDEX in plan, plan

        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        forced = _explain(conn, run)
        assert INDEX in forced, forced
    finally:
        conn.exec_driver_sql(f"DEALLOCATE {ps.name}")


def test_labels_index_is_path_ops_without_a_pending_list(pg_session: Session) -> None:
    indexdef = pg_session.execute(
        text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": INDEX}
    ).scalar_one()
    assert "USING gin (labels jsonb_path_ops)" in indexdef
    assert re.search(r"fastupdate\s*=\s*'?off'?", indexdef), indexdef


# --- behaviour -----------------------------------------------------------------------------------


def _chat(
    session: Session,
    clock: FrozenClock,
    owner: User,
    org_id: uuid.UUID,
    minutes: int,
    labels: dict[str, Any],
    **kw: Any,
) -> Chat:
    when = clock.now() - timedelta(hours=5) + timedelta(minutes=minutes)
    return f.chat(
        session, clock, owner, org_id, labels=labels, created_at=when, updated_at=when, **kw
    )


def test_find_matching_chat_among_many_and_what_it_never_returns(
    pg_session: Session, clock: FrozenClock
) -> None:
    owner, wanted = _owner_with_many_chats(pg_session, clock)
    org_id = owner.memberships[0].organization_id
    assert find_matching_chat(pg_session, owner.id, org_id, WANTED) == wanted
    # equal label sets only: a subset of the chat's labels is not a match
    assert find_matching_chat(pg_session, owner.id, org_id, {"repo": "acme/r-17"}) is None
    assert find_matching_chat(pg_session, owner.id, org_id, {"repo": "acme/r-x"}) is None
    assert find_matching_chat(pg_session, owner.id, org_id, {}) is None

    # newer chats with the same labels that must never be returned: archived, a child,
    # another owner's in the same organization, the owner's in another organization
    future = clock.now() + timedelta(hours=1)
    at = {"created_at": future, "updated_at": future}
    archived = f.chat(pg_session, clock, owner, org_id, labels=WANTED, archived=True, **at)
    f.chat(
        pg_session,
        clock,
        owner,
        org_id,
        labels=WANTED,
        parent_chat_id=wanted,
        root_chat_id=wanted,
        **at,
    )
    f.chat(pg_session, clock, f.user(pg_session, clock), org_id, labels=WANTED, **at)
    f.chat(pg_session, clock, owner, f.org(pg_session, clock).id, labels=WANTED, **at)
    assert find_matching_chat(pg_session, owner.id, org_id, WANTED) == wanted

    # the newest matching root chat wins; a chat with more labels is not a match
    earlier = future - timedelta(minutes=1)
    f.chat(
        pg_session,
        clock,
        owner,
        org_id,
        labels={**WANTED, "extra": "x"},
        created_at=earlier,
        updated_at=earlier,
    )
    assert find_matching_chat(pg_session, owner.id, org_id, WANTED) == wanted
    newer = f.chat(
        pg_session, clock, owner, org_id, labels=WANTED, created_at=earlier, updated_at=earlier
    )
    assert find_matching_chat(pg_session, owner.id, org_id, WANTED) == newer.id
    # un-archived, the archived one is the newest
    pg_session.execute(chats.update().where(chats.c.id == archived.id).values(archived=False))
    assert find_matching_chat(pg_session, owner.id, org_id, WANTED) == archived.id
    # only exact string values match
    assert find_matching_chat(pg_session, owner.id, org_id, {"repo": "acme/R-17"}) is None


def _scenario(session: Session, clock: FrozenClock) -> dict[str, Any]:
    """An active and a preview automation of one owner with chats to match, and their events
    (created in this order, received one second apart)."""
    auto = f.automation(session, clock, instructions="Triage.", max_chat_creates_per_hour=2)
    owner = session.get(User, auto.owner_id)
    assert owner is not None
    org_id = auto.organization_id
    # the preview automation matches in the organization scope: every chat of the owner
    preview = f.automation(
        session,
        clock,
        owner=owner,
        organization_id=org_id,
        status=AutomationStatus.PREVIEW,
        chat_scope=ChatScope.ORGANIZATION,
    )
    other = f.automation(session, clock, owner=owner, organization_id=org_id)
    paths = {"repo": "repository.full_name", "pr": "number"}
    trig = f.webhook_trigger(session, clock, auto, label_paths=paths)
    preview_trig = f.webhook_trigger(session, clock, preview, label_paths=paths)

    def chat(minutes: int, labels: dict[str, Any], **kw: Any) -> uuid.UUID:
        kw.setdefault("automation_id", auto.id)
        return _chat(
            session, clock, kw.pop("owner", owner), kw.pop("org", org_id), minutes, labels, **kw
        ).id

    pr1 = {"repo": "acme/api", "pr": "1"}
    chats_: dict[str, uuid.UUID] = {}
    chats_["older"] = older = chat(1, pr1)
    chats_["expected"] = chat(2, pr1)
    chat(3, pr1, archived=True)
    chat(4, pr1, parent_chat_id=older, root_chat_id=older)
    chat(5, {"repo": "acme/api", "pr": "2"}, owner=f.user(session, clock))
    chat(6, {"repo": "acme/api", "pr": "3"}, org=f.org(session, clock).id)
    chat(7, {"repo": "acme/api", "pr": 4})  # not a string
    chat(8, {**pr1, "extra": "x"})  # more labels: not equal
    # another automation's, the newest of all (10 hours after the others): outside the
    # automation scope, the first choice in the organization scope
    chats_["other automation"] = chat(600, pr1, automation_id=other.id)

    def doc(pr: int | None) -> dict[str, Any]:
        d: dict[str, Any] = {"repository": {"full_name": "acme/api"}}
        if pr is not None:
            d["number"] = pr
        return d

    plan: list[tuple[Automation, AutomationTrigger, dict[str, Any]]] = [
        (auto, trig, doc(1)),  # continues "expected"
        (auto, trig, doc(2)),  # only another owner's chat: creates
        (auto, trig, doc(2)),  # continues the chat the previous one created
        (auto, trig, doc(3)),  # only another organization's chat: creates
        (auto, trig, doc(4)),  # only a non-string label: would create, over the limit
        (auto, trig, doc(None)),  # only {"repo": ...}: no equal chat, over the limit
        (preview, preview_trig, doc(1)),  # preview (organization scope): match recorded only
        (preview, preview_trig, doc(9)),  # preview, no match
        (preview, preview_trig, {"x": 1}),  # preview, no labels
    ]
    events: list[uuid.UUID] = []
    for i, (a, t, payload) in enumerate(plan):
        when = clock.now() - timedelta(minutes=30) + timedelta(seconds=i)
        events.append(
            f.event(session, clock, a, trigger_id=t.id, payload=payload, received_at=when).id
        )
    return {"chats": chats_, "events": events}


SCENARIO_STATUSES = [
    EventStatus.CONTINUED,
    EventStatus.CREATED,
    EventStatus.CONTINUED,
    EventStatus.CREATED,
    EventStatus.RATE_LIMITED,
    EventStatus.RATE_LIMITED,
    EventStatus.PREVIEW,
    EventStatus.PREVIEW,
    EventStatus.PREVIEW,
]


def _run(
    session: Session | Engine,
    events: list[uuid.UUID],
    prepared: bool,
    names: dict[uuid.UUID, str] | None = None,
) -> list[tuple[Any, ...]]:
    """Process ``events`` in order; outcomes with chat ids made comparable across runs
    (a chat created by the n-th event reads ``("created by", n)``, one in ``names`` its
    name). On an engine each event is its own committed unit of work, as in the worker."""
    clock = FrozenClock(datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    options = PipelineOptions(prepared_statements=prepared)
    created: dict[uuid.UUID, tuple[str, int]] = {}
    results: list[tuple[Any, ...]] = []
    for n, event_id in enumerate(events):
        clock.advance(seconds=1)
        outcome: Outcome
        if isinstance(session, Session):
            outcome = process_event(
                open_store(session.connection(), options), clock, event_id, options
            )
        else:
            with Database(session).unit() as uow:
                outcome = process_event(
                    open_store(uow.connection, options), clock, event_id, options
                )
        chat: Any = outcome.chat_id
        chat = (names or {}).get(chat, chat)
        if outcome.status is EventStatus.CREATED and chat is not None:
            created[chat] = ("created by", n)
        chat = created.get(chat, chat)
        results.append(
            (
                outcome.status,
                outcome.applied,
                chat,
                outcome.error,
                outcome.filter_matched,
                outcome.resolved_labels,
            )
        )
    return results


@pytest.mark.parametrize("order", ["plain first", "prepared first"])
def test_process_event_outcomes_are_the_same_with_and_without_prepared_statements(
    pg_session: Session, clock: FrozenClock, order: str
) -> None:
    scenario = _scenario(pg_session, clock)
    pg_session.flush()
    runs: dict[bool, list[tuple[Any, ...]]] = {}
    for prepared in (False, True) if order == "plain first" else (True, False):
        savepoint = pg_session.begin_nested()
        runs[prepared] = _run(pg_session, scenario["events"], prepared)
        savepoint.rollback()
        pg_session.expire_all()
    assert runs[True] == runs[False]

    expected = scenario["chats"]["expected"]
    full = {"repo": "acme/api", "pr": "1"}
    assert [r[0] for r in runs[True]] == SCENARIO_STATUSES
    chats_ = [r[2] for r in runs[True]]
    assert chats_[0] == expected
    assert chats_[1] == chats_[2] == ("created by", 1)
    assert chats_[3] == ("created by", 3)
    assert chats_[4] is None and "chat creation rate limit" in str(runs[True][4][3])
    # {"repo": "acme/api"} alone equals no chat's labels
    assert chats_[5] is None and "chat creation rate limit" in str(runs[True][5][3])
    # preview in the organization scope: the newest equal chat of any of the owner's
    # automations
    assert chats_[6] == scenario["chats"]["other automation"]
    assert chats_[7] is None and chats_[8] is None
    assert runs[True][0][5] == full
    assert runs[True][8][5] == {}


def test_the_workers_units_of_work_give_the_same_outcomes(
    pg_committed: str, clock: FrozenClock
) -> None:
    """The scenario twice on a committed database, one unit of work per event as the worker
    runs them: with plain statements, and with the prepared ones."""
    engine = make_engine(pg_committed, pool_size=1, max_overflow=0, pool_pre_ping=False)
    try:
        runs = []
        for prepared in (False, True):
            with Session(engine) as session, session.begin():
                scenario = _scenario(session, clock)
            names = {chat_id: name for name, chat_id in scenario["chats"].items()}
            runs.append(_run(engine, scenario["events"], prepared, names))
        assert runs[0] == runs[1]
        assert [r[0] for r in runs[1]] == SCENARIO_STATUSES
        assert runs[1][0][2] == "expected" and runs[1][3][2] == ("created by", 3)
    finally:
        engine.dispose()


def test_a_generic_plan_made_while_chats_was_small_still_uses_the_labels_index(
    pg_session: Session, clock: FrozenClock
) -> None:
    """A prepared statement's generic plan lives as long as the connection: the pipeline's
    transactions turn sequential scans off so that a plan made on a near-empty ``chats``
    table is an index lookup too, not a scan that grows with the table."""
    auto = f.automation(pg_session, clock, max_chat_creates_per_hour=1000)
    trig = f.webhook_trigger(pg_session, clock, auto, label_paths={"repo": "repository.name"})
    events = [
        f.event(
            pg_session, clock, auto, trigger_id=trig.id, payload={"repository": {"name": f"r{i}"}}
        ).id
        for i in range(8)
    ]
    options = PipelineOptions(prepared_statements=True)
    for event_id in events:  # six or more executions: PostgreSQL settles on a generic plan
        store = open_store(pg_session.connection(), options)
        assert process_event(store, clock, event_id, options).status is EventStatus.CREATED
    conn = pg_session.connection()
    name = store_postgres.CONTEXT.name
    generic, _ = _statement_stats(conn, name)
    assert generic >= 1
    owner = pg_session.get(User, auto.owner_id)
    assert owner is not None
    _owner_with_many_chats(pg_session, clock)  # the table grows; the cached plan stays
    plan = "\n".join(
        conn.exec_driver_sql(
            f"EXPLAIN EXECUTE {name}(%s, %s, %s, %s, %s)",
            (
                '{"repo": "r3"}',
                str(owner.id),
                str(auto.organization_id),
                str(auto.id),
                clock.now() - timedelta(hours=1),
            ),
        ).scalars()
    )
    assert _statement_stats(conn, name)[0] > generic  # EXPLAIN used the cached generic plan
    assert INDEX in plan, plan
    assert "Seq Scan on chats" not in plan, plan
