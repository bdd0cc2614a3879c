"""Auto-archive (SPEC 11, seed 003's cases), on PostgreSQL and SQLite, plus two runs at once
against real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.chats import archive
from shared.chats.archive import ArchiveResult, archive_cutoff, auto_archive
from shared.infra.clock import FrozenClock
from shared.infra.db.engine import make_engine
from shared.infra.db.uow import Database
from shared.infra.queues import QUEUE_NOTIFICATIONS
from shared.models import AuditLog, Chat, ChatStatus, Notification
from shared.site_config import write_site_config
from tests.lifecycle.helpers import (
    CUTOFF_7,
    NOW,
    Collector,
    engine_of,
    family,
    owner,
    reload,
    units,
)

OLD = CUTOFF_7 - timedelta(days=10)
RECENT = NOW - timedelta(hours=1)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


def configure(s: Session, days: int = 7, retention: int = 30) -> None:
    write_site_config(s, NOW, None, auto_archive_days=days, chat_retention_days=retention)
    s.flush()


def run(
    s: Session,
    clock: FrozenClock,
    collector: Collector | None = None,
    *,
    batch_size: int = 1000,
    smtp_enabled: bool = False,
) -> ArchiveResult:
    return auto_archive(
        engine_of(s),
        units(s, collector),
        clock,
        smtp_enabled=smtp_enabled,
        batch_size=batch_size,
    )


def audits(s: Session) -> list[AuditLog]:
    s.expire_all()
    return list(s.scalars(select(AuditLog).where(AuditLog.action == "chat.auto_archive")))


def digests(s: Session, user_id: uuid.UUID | None = None) -> list[Notification]:
    s.expire_all()
    stmt = select(Notification).where(Notification.kind == "chat.auto_archive")
    if user_id is not None:
        stmt = stmt.where(Notification.user_id == user_id)
    return list(s.scalars(stmt))


def test_the_cutoff_is_utc_midnight_of_now_minus_days() -> None:
    assert archive_cutoff(NOW, 7) == CUTOFF_7
    assert archive_cutoff(NOW.replace(hour=0, minute=0), 7) == CUTOFF_7


def test_disabled_is_a_no_op(any_session: Session, clock: FrozenClock) -> None:
    user, org = owner(any_session, clock)
    old = family(any_session, clock, user, org, created_at=OLD)
    result = run(any_session, clock)  # auto_archive_days defaults to 0
    assert result.ran and result.days == 0 and result.roots == 0 and result.batches == 0
    assert not reload(any_session, old)[0].archived
    assert audits(any_session) == [] and digests(any_session) == []


def test_the_exact_boundary_at_the_cutoff(any_session: Session, clock: FrozenClock) -> None:
    configure(any_session)
    user, org = owner(any_session, clock)
    tick = timedelta(microseconds=1)
    at_cutoff = family(any_session, clock, user, org, created_at=OLD, messages=[CUTOFF_7])
    just_before = family(any_session, clock, user, org, created_at=OLD, messages=[CUTOFF_7 - tick])
    created_at_cutoff = family(any_session, clock, user, org, created_at=CUTOFF_7)
    created_just_before = family(any_session, clock, user, org, created_at=CUTOFF_7 - tick)
    result = run(any_session, clock)
    assert result.cutoff == CUTOFF_7 and result.roots == 2
    rows = reload(any_session, at_cutoff, just_before, created_at_cutoff, created_just_before)
    assert [c.archived for c in rows] == [False, True, False, True]
    assert rows[1].archived_at == NOW and rows[0].archived_at is None
    last = {a.resource_id: a.details["last_activity"] for a in audits(any_session)}
    assert last == {
        just_before.id: (CUTOFF_7 - tick).isoformat(),
        created_just_before.id: (CUTOFF_7 - tick).isoformat(),
    }


def test_deleted_messages_do_not_count_as_activity(
    any_session: Session, clock: FrozenClock
) -> None:
    configure(any_session)
    user, org = owner(any_session, clock)
    chat = family(any_session, clock, user, org, created_at=OLD, messages=[OLD], deleted=[RECENT])
    assert run(any_session, clock).roots == 1
    assert reload(any_session, chat)[0].archived
    [entry] = audits(any_session)
    assert entry.details == {"days": 7, "last_activity": OLD.isoformat()}


def test_a_childs_activity_keeps_the_root(any_session: Session, clock: FrozenClock) -> None:
    configure(any_session)
    user, org = owner(any_session, clock)
    busy = family(any_session, clock, user, org, created_at=OLD, children=[[OLD], [RECENT]])
    quiet = family(any_session, clock, user, org, created_at=OLD, children=[[OLD], [OLD]])
    result = run(any_session, clock)
    assert (result.roots, result.descendants) == (1, 2)
    any_session.expire_all()
    family_of = {
        root.id: any_session.scalars(select(Chat).where(Chat.root_chat_id == root.id)).all()
        for root in (busy, quiet)
    }
    assert not reload(any_session, busy)[0].archived
    assert not any(c.archived for c in family_of[busy.id])
    assert reload(any_session, quiet)[0].archived
    assert all(c.archived and c.archived_at == NOW for c in family_of[quiet.id])
    # one audit entry, for the root only
    assert [a.resource_id for a in audits(any_session)] == [quiet.id]


def test_pinned_chats_are_exempt(any_session: Session, clock: FrozenClock) -> None:
    configure(any_session)
    user, org = owner(any_session, clock)
    pinned = family(any_session, clock, user, org, created_at=OLD, pin_order=1)
    assert run(any_session, clock).roots == 0
    assert not reload(any_session, pinned)[0].archived


@pytest.mark.parametrize("status", [ChatStatus.PENDING, ChatStatus.RUNNING])
def test_each_active_status_is_exempt(
    any_session: Session, clock: FrozenClock, status: ChatStatus
) -> None:
    configure(any_session)
    user, org = owner(any_session, clock)
    active = family(any_session, clock, user, org, created_at=OLD, status=status)
    idle = [
        family(any_session, clock, user, org, created_at=OLD, status=s)
        for s in (ChatStatus.WAITING, ChatStatus.PAUSED, ChatStatus.COMPLETED, ChatStatus.ERROR)
    ]
    assert run(any_session, clock).roots == 4
    assert not reload(any_session, active)[0].archived
    assert all(c.archived for c in reload(any_session, *idle))


def test_several_owners_each_get_their_own_audit_entries_and_digests(
    any_session: Session, clock: FrozenClock
) -> None:
    configure(any_session)
    ada, ada_org = owner(any_session, clock)
    bob, bob_org = owner(any_session, clock)
    ada_chats = [
        family(any_session, clock, ada, ada_org, created_at=OLD, title=f"ada {i}") for i in range(2)
    ]
    bob_chat = family(any_session, clock, bob, bob_org, created_at=OLD, title="bob 0")
    collector = Collector()
    result = run(any_session, clock, collector, smtp_enabled=True)
    assert (result.roots, result.notified) == (3, 2)
    by_chat = {a.resource_id: a for a in audits(any_session)}
    assert set(by_chat) == {c.id for c in [*ada_chats, bob_chat]}
    for chat in ada_chats:
        entry = by_chat[chat.id]
        assert entry.actor_id is None and entry.organization_id == ada_org.id
        assert entry.resource_type == "chat" and entry.details["days"] == 7
    assert by_chat[bob_chat.id].organization_id == bob_org.id
    [ada_digest] = digests(any_session, ada.id)
    [bob_digest] = digests(any_session, bob.id)
    assert ada_digest.title == bob_digest.title == "Chats auto-archived after 7 days of inactivity"
    assert "ada 0" in ada_digest.body and "ada 1" in ada_digest.body
    assert "bob" not in ada_digest.body and "ada" not in bob_digest.body
    assert ada_digest.details["archived_count"] == 2 and bob_digest.details["archived_count"] == 1
    # the e-mails are published after the commit, one per digest, on the notifications queue
    assert sorted(m.args[0] for m in collector.messages) == sorted(
        str(n.id) for n in (ada_digest, bob_digest)
    )
    assert {m.queue for m in collector.messages} == {QUEUE_NOTIFICATIONS}
    assert {ada_digest.email_status, bob_digest.email_status} == {"pending"}


def test_a_rerun_archives_and_notifies_nothing(any_session: Session, clock: FrozenClock) -> None:
    configure(any_session)
    user, org = owner(any_session, clock)
    for _ in range(3):
        family(any_session, clock, user, org, created_at=OLD, children=[[OLD]])
    first = run(any_session, clock)
    assert (first.roots, first.descendants, first.notified) == (3, 3, 1)
    clock.advance(hours=1)
    second = run(any_session, clock)
    assert (second.roots, second.descendants, second.notified) == (0, 0, 0)
    assert len(audits(any_session)) == 3 and len(digests(any_session)) == 1
    # archived_at stays the first run's
    any_session.expire_all()
    stamps = any_session.scalars(select(Chat.archived_at).where(Chat.owner_id == user.id)).all()
    assert set(stamps) == {NOW}


def test_batch_pagination_with_more_than_one_batch(
    any_session: Session, clock: FrozenClock
) -> None:
    configure(any_session)
    user, org = owner(any_session, clock)
    # a kept chat between archivable ones: the keyset cursor moves past it
    chats = [
        family(any_session, clock, user, org, created_at=OLD + timedelta(minutes=i))
        for i in range(5)
    ]
    kept = family(
        any_session,
        clock,
        user,
        org,
        created_at=OLD + timedelta(minutes=2, seconds=30),
        messages=[RECENT],
    )
    result = run(any_session, clock, batch_size=2)
    assert result.roots == 5 and result.batches == 3
    assert all(c.archived for c in reload(any_session, *chats))
    assert not reload(any_session, kept)[0].archived
    # one digest for the run, however many batches
    [digest] = digests(any_session, user.id)
    assert digest.details["archived_count"] == 5


def test_the_digest_lists_25_titles_least_recently_active_first_then_and_m_more(
    any_session: Session, clock: FrozenClock
) -> None:
    configure(any_session)
    user, org = owner(any_session, clock)
    # created in one order, active in the reverse one: the digest follows activity
    for i in range(30):
        family(
            any_session,
            clock,
            user,
            org,
            created_at=OLD - timedelta(days=40) + timedelta(minutes=i),
            messages=[OLD - timedelta(hours=i)],
            title=f"chat {i:02d}",
        )
    assert run(any_session, clock, batch_size=7).roots == 30
    [digest] = digests(any_session, user.id)
    listed = [line[2:] for line in digest.body.splitlines() if line.startswith("- ")]
    assert listed == [f"chat {i:02d}" for i in range(29, 4, -1)]
    assert "and 5 more" in digest.body.splitlines()
    assert digest.details["more"] == 5 and len(digest.details["chats"]) == 25


@pytest.mark.parametrize(
    ("retention", "says", "never_says"),
    [
        (0, "kept indefinitely", "permanently deleted"),
        (14, "restore them within 14 days; after that they are permanently deleted", "kept"),
    ],
)
def test_the_digest_says_what_happens_next_for_retention_0_and_n(
    any_session: Session, clock: FrozenClock, retention: int, says: str, never_says: str
) -> None:
    configure(any_session, retention=retention)
    user, org = owner(any_session, clock)
    family(any_session, clock, user, org, created_at=OLD, title="lonely")
    assert run(any_session, clock).notified == 1
    [digest] = digests(any_session, user.id)
    assert says in digest.body and never_says not in digest.body
    assert "- lonely" in digest.body and "more" not in digest.body


# Two runs at once, against real PostgreSQL ----------------------------------------------------


def _seed_committed(url: str, clock: FrozenClock, owners: int, per_owner: int) -> list[Any]:
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            configure(s)
            users = []
            for o in range(owners):
                user, org = owner(s, clock)
                users.append(user.id)
                for i in range(per_owner):
                    family(s, clock, user, org, created_at=OLD, children=[[OLD]], title=f"{o}-{i}")
            s.commit()
        return users
    finally:
        engine.dispose()


def _at_once(url: str, clock: FrozenClock, run_one: Any) -> list[ArchiveResult]:
    engine = make_engine(url, pool_size=4)
    barrier = threading.Barrier(2)
    results: list[ArchiveResult] = []
    errors: list[BaseException] = []

    def go() -> None:
        try:
            barrier.wait()
            results.append(run_one(engine, Database(engine).unit))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    engine.dispose()
    assert not errors, errors
    return results


def _counts(url: str) -> tuple[int, int, int, int]:
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            archived = s.scalar(select(func.count()).where(Chat.archived.is_(True)))
            total = s.scalar(select(func.count()).select_from(Chat))
            entries = s.execute(
                select(AuditLog.resource_id, func.count())
                .where(AuditLog.action == "chat.auto_archive")
                .group_by(AuditLog.resource_id)
            ).all()
            assert all(n == 1 for _, n in entries), "a chat was archived twice"
            notes = s.scalar(select(func.count()).select_from(Notification))
            return int(archived or 0), int(total or 0), len(entries), int(notes or 0)
    finally:
        engine.dispose()


def test_two_runs_at_once_archive_each_chat_once_and_notify_each_owner_once(
    pg_committed: str, clock: FrozenClock
) -> None:
    _seed_committed(pg_committed, clock, owners=3, per_owner=40)
    results = _at_once(
        pg_committed,
        clock,
        lambda engine, unit: auto_archive(engine, unit, clock, smtp_enabled=False, batch_size=7),
    )
    assert sum(r.roots for r in results) == 120
    assert _counts(pg_committed) == (240, 240, 120, 3)


def test_two_unguarded_runs_at_once_still_archive_each_chat_once(
    pg_committed: str, clock: FrozenClock
) -> None:
    """Without the one-run guard (``archive._run``), the batches' ``FOR UPDATE SKIP LOCKED``
    and re-check alone keep every chat archived, and audited, exactly once."""
    _seed_committed(pg_committed, clock, owners=2, per_owner=150)
    results = _at_once(
        pg_committed,
        clock,
        lambda _engine, unit: archive._run(
            unit, clock, False, 5, None, None, archive.time.monotonic
        ),
    )
    assert sum(r.roots for r in results) == 300
    assert sum(r.descendants for r in results) == 300
    archived, total, audited, _notes = _counts(pg_committed)
    assert (archived, total, audited) == (600, 600, 300)
