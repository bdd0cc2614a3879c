"""Benchmark: auto-archive of 100,000 inactive chat families, and chat retention deleting
100,000 chats holding 1,000,000 messages (SPEC 11 "Scale").

Run: ``.venv/bin/python bench/lifecycle.py [--families 100000] [--active 10000]
[--delete-chats 100000] [--messages-per-chat 10] [--owners 100] [--batch-size 1000]``.

Creates (drops first) its own PostgreSQL database ``bench_lifecycle`` next to the test database
(``AUTOMATIONS_TEST_DATABASE_URL`` or a throwaway server), migrates it and COPYs:

* ``--families`` archivable families over ``--owners`` owners: a root created 60 days ago with
  two messages and one sub-chat with one message, all 40+ days old; and ``--active`` families
  that must stay (a recent message in the sub-chat, or pinned, or running);
* ``--delete-chats`` chats archived 60 days ago (half roots, half their sub-chats) holding
  ``--messages-per-chat`` messages each, and events pointing at a tenth of them.

Then runs ``shared.chats.archive.auto_archive`` (auto_archive_days 30) and
``shared.chats.retention.delete_expired_chats`` (chat_retention_days 30) with batches of
``--batch-size`` roots, and reports rows per second, the longest transaction (target < 1 s),
and the plan of the candidate query (``EXPLAIN``).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from typing import Any

import psycopg2
from sqlalchemy import Engine, Select, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from shared.chats import archive
from shared.chats.archive import archive_cutoff, auto_archive
from shared.chats.retention import delete_expired_chats
from shared.infra.clock import FrozenClock
from shared.infra.db.engine import make_engine
from shared.infra.db.uow import Database
from shared.models import AutomationEvent, Chat, ChatMessage, Notification, User
from shared.site_config import write_site_config
from tests import factories
from tests.harness.services import find_postgres, fresh_pg_database

DB_NAME = "bench_lifecycle"
LONGEST_TRANSACTION_TARGET_S = 1.0
CHAT_COLUMNS = (
    "id, owner_id, organization_id, title, status, labels, archived, archived_at, pin_order, "
    "parent_chat_id, root_chat_id, client_type, created_at, updated_at"
)
MESSAGE_COLUMNS = "id, chat_id, role, content, created_at, deleted"
NULL = "\\N"  # COPY's null


def _chat(
    buf: io.StringIO,
    cid: uuid.UUID,
    owner: tuple[uuid.UUID, uuid.UUID],
    created: datetime,
    *,
    status: str = "completed",
    archived_at: datetime | None = None,
    pin_order: int = 0,
    parent: uuid.UUID | None = None,
) -> None:
    archived = archived_at.isoformat() if archived_at else NULL
    ref = str(parent) if parent else NULL
    buf.write(
        f"{cid}\t{owner[0]}\t{owner[1]}\tchat {cid.hex[:8]}\t{status}\t{{}}\t"
        f"{'t' if archived_at else 'f'}\t{archived}\t{pin_order}\t{ref}\t{ref}\tapi\t"
        f"{created.isoformat()}\t{created.isoformat()}\n"
    )


def _message(buf: io.StringIO, chat_id: uuid.UUID, at: datetime) -> None:
    buf.write(f"{uuid.uuid4()}\t{chat_id}\tuser\thello there\t{at.isoformat()}\tf\n")


def _copy(cur: object, table: str, columns: str, buf: io.StringIO) -> None:
    buf.seek(0)
    cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN", buf)  # type: ignore[attr-defined]


def seed(db_url: str, clock: FrozenClock, args: argparse.Namespace) -> uuid.UUID:
    """Returns an automation id (the events' owner)."""
    engine = make_engine(db_url)
    with Session(engine) as s:
        write_site_config(s, clock.now(), None, auto_archive_days=30, chat_retention_days=30)
        org = factories.org(s, clock)
        owners = [(factories.user(s, clock, org).id, org.id) for _ in range(args.owners)]
        auto = factories.automation(s, clock, owner=s.get(User, owners[0][0]))
        s.commit()
        auto_id = auto.id
    engine.dispose()
    now = clock.now()
    old = now - timedelta(days=60)
    dsn = make_url(db_url).render_as_string(hide_password=False)
    conn = psycopg2.connect(dsn.replace("postgresql+psycopg2://", "postgresql://", 1))
    chunk = 20_000
    with conn, conn.cursor() as cur:
        total = args.families + args.active
        for start in range(0, total, chunk):
            chats, messages = io.StringIO(), io.StringIO()
            for i in range(start, min(start + chunk, total)):
                owner = owners[i % len(owners)]
                root, child = uuid.uuid4(), uuid.uuid4()
                created = old + timedelta(seconds=i)
                kind = None if i < args.families else (i - args.families) % 3
                _chat(
                    chats,
                    root,
                    owner,
                    created,
                    status="running" if kind == 2 else "completed",
                    pin_order=1 if kind == 1 else 0,
                )
                _chat(chats, child, owner, created, parent=root)
                at = now - timedelta(days=40, seconds=i)
                _message(messages, root, at)
                _message(messages, root, at + timedelta(seconds=1))
                _message(messages, child, now - timedelta(hours=1) if kind == 0 else at)
            _copy(cur, "chats", CHAT_COLUMNS, chats)
            _copy(cur, "chat_messages", MESSAGE_COLUMNS, messages)
        expired = now - timedelta(days=60)
        for start in range(0, args.delete_chats, chunk):
            chats, messages, events = io.StringIO(), io.StringIO(), io.StringIO()
            for i in range(start, min(start + chunk, args.delete_chats), 2):
                owner = owners[i % len(owners)]
                root, child = uuid.uuid4(), uuid.uuid4()
                _chat(chats, root, owner, old, archived_at=expired)
                _chat(chats, child, owner, old, archived_at=expired, parent=root)
                for cid in (root, child):
                    for m in range(args.messages_per_chat):
                        _message(messages, cid, old + timedelta(seconds=m))
                if i % 20 == 0:
                    events.write(
                        f"{uuid.uuid4()}\t{auto_id}\t{old.isoformat()}\t{{}}\tcreated\t"
                        f"{root}\t1\t0\n"
                    )
            _copy(cur, "chats", CHAT_COLUMNS, chats)
            _copy(cur, "chat_messages", MESSAGE_COLUMNS, messages)
            _copy(
                cur,
                "automation_events",
                "id, automation_id, received_at, payload, status, created_chat_id, "
                "occurrences, publish_attempts",
                events,
            )
        cur.execute("ANALYZE")
    conn.close()
    return auto_id


def explain(db_url: str, clock: FrozenClock) -> str:
    """The plan of one batch's candidate query (without its lock)."""
    c = archive.chats
    cutoff = archive_cutoff(clock.now(), 30)
    stmt = (
        select(c.c.id, c.c.created_at)
        .where(*archive._candidate_conditions(c, cutoff))
        .order_by(c.c.created_at, c.c.id)
        .limit(1000)
    )
    engine = make_engine(db_url)
    with engine.connect() as conn:
        sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = conn.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}")).scalars()
        lines = "\n".join(plan)
    engine.dispose()
    return lines


def count(engine: Engine, stmt: Select[Any]) -> int:
    with Session(engine) as s:
        n: Any = s.scalar(stmt)
        return int(n or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", type=int, default=100_000)
    parser.add_argument("--active", type=int, default=10_000)
    parser.add_argument("--delete-chats", type=int, default=100_000)
    parser.add_argument("--messages-per-chat", type=int, default=10)
    parser.add_argument("--owners", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()

    pg = find_postgres()
    if pg.url is None:
        print(f"needs PostgreSQL: {pg.reason}")
        return 2
    db_url = fresh_pg_database(pg.url, DB_NAME, migrated=True)
    clock = FrozenClock(datetime.now(UTC))
    started = time.perf_counter()
    seed(db_url, clock, args)
    print(f"seeded in {time.perf_counter() - started:.1f} s")
    print("candidate query plan (one batch):")
    print("  " + explain(db_url, clock).replace("\n", "\n  "))

    engine = make_engine(db_url)
    units = Database(engine).unit
    started = time.perf_counter()
    arc = auto_archive(engine, units, clock, smtp_enabled=False, batch_size=args.batch_size)
    arc_s = time.perf_counter() - started
    arc_rows = arc.roots + arc.descendants
    print(
        f"auto-archive: {arc.roots:,} roots + {arc.descendants:,} sub-chats archived in "
        f"{arc.batches} batches, {arc.notified} digests; {arc_s:.1f} s "
        f"({arc_rows / arc_s:,.0f} chats/s); longest transaction "
        f"{arc.longest_batch_seconds * 1000:.0f} ms"
    )

    messages_before = count(engine, select(func.count()).select_from(ChatMessage))
    started = time.perf_counter()
    ret = delete_expired_chats(engine, units, clock, batch_size=args.batch_size)
    ret_s = time.perf_counter() - started
    print(
        f"chat retention: {ret.chats:,} chats ({ret.sub_chats:,} sub-chats) and "
        f"{ret.messages:,} messages deleted in {ret.batches} batches; {ret_s:.1f} s "
        f"({ret.chats / ret_s:,.0f} chats/s, {(ret.chats + ret.messages) / ret_s:,.0f} rows/s); "
        f"longest transaction {ret.longest_batch_seconds * 1000:.0f} ms"
    )
    left_messages = count(engine, select(func.count()).select_from(ChatMessage))
    kept_events = count(
        engine,
        select(func.count())
        .select_from(AutomationEvent)
        .where(AutomationEvent.created_chat_id.is_(None), AutomationEvent.status == "created"),
    )
    active_left = count(
        engine, select(func.count()).select_from(Chat).where(Chat.archived.is_(False))
    )
    digests = count(engine, select(func.count()).select_from(Notification))
    engine.dispose()
    checks = [
        ("every archivable family archived", (arc.roots, arc.descendants) == (args.families,) * 2),
        ("the active families kept", active_left == 2 * args.active),
        ("one digest per owner", digests == args.owners),
        (
            "every expired chat and its messages deleted",
            ret.chats == args.delete_chats
            and messages_before - left_messages == args.delete_chats * args.messages_per_chat
            and ret.messages == args.delete_chats * args.messages_per_chat,
        ),
        ("the events kept, with a null chat", kept_events == args.delete_chats // 20),
        (
            f"longest transaction < {LONGEST_TRANSACTION_TARGET_S:.0f} s",
            max(arc.longest_batch_seconds, ret.longest_batch_seconds)
            < LONGEST_TRANSACTION_TARGET_S,
        ),
    ]
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
