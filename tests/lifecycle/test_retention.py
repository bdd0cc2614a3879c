"""Chat retention (SPEC 11) and the site config it reads, on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from shared.chats.retention import RetentionResult, delete_expired_chats
from shared.errors import Invalid
from shared.infra.clock import FrozenClock
from shared.models import AuditLog, AutomationEvent, Chat, ChatMessage, EventStatus
from shared.site_config import SiteSettings, read_site_config, write_site_config
from tests import factories
from tests.lifecycle.helpers import NOW, engine_of, family, owner, reload, units

OLD = NOW - timedelta(days=100)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


def run(s: Session, clock: FrozenClock, *, batch_size: int = 1000) -> RetentionResult:
    return delete_expired_chats(engine_of(s), units(s), clock, batch_size=batch_size)


def archive(s: Session, *chats: Chat, days_ago: float) -> None:
    """Archive ``chats`` and their descendants ``days_ago`` days before NOW."""
    when = NOW - timedelta(days=days_ago)
    for chat in chats:
        s.execute(
            Chat.__table__.update()  # type: ignore[attr-defined]
            .where((Chat.id == chat.id) | (Chat.root_chat_id == chat.id))
            .values(archived=True, archived_at=when)
        )
    s.flush()


def count(s: Session, model: type, *where: ColumnElement[bool]) -> int:
    s.expire_all()
    n: Any = s.scalar(select(func.count()).select_from(model).where(*where))
    return int(n or 0)


# Site config ----------------------------------------------------------------------------------


def test_site_config_defaults_and_writes(any_session: Session) -> None:
    assert read_site_config(any_session) == SiteSettings(
        auto_archive_days=0, chat_retention_days=30
    )
    user, _ = owner(any_session, FrozenClock(NOW))
    new = write_site_config(any_session, NOW, user.id, auto_archive_days=90)
    assert new == SiteSettings(90, 30) == read_site_config(any_session)
    new = write_site_config(any_session, NOW, None, chat_retention_days=0)
    assert new == SiteSettings(90, 0) == read_site_config(any_session)
    entries = any_session.scalars(
        select(AuditLog).where(AuditLog.action == "site_config.update").order_by(AuditLog.id)
    ).all()
    details = sorted((e.actor_id == user.id, e.details["new"], e.details["old"]) for e in entries)
    assert details == [
        (False, {"chat_retention_days": 0}, {"chat_retention_days": 30}),
        (True, {"auto_archive_days": 90}, {"auto_archive_days": 0}),
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("auto_archive_days", -1),
        ("auto_archive_days", 4000),
        ("chat_retention_days", 3651),
        ("chat_retention_days", "x"),
    ],
)
def test_site_config_refuses_out_of_range_values_naming_the_field(
    any_session: Session, field: str, value: object
) -> None:
    with pytest.raises(Invalid) as err:
        write_site_config(any_session, NOW, None, **{field: value})  # type: ignore[arg-type]
    assert err.value.field == field
    assert read_site_config(any_session) == SiteSettings()


# Retention ------------------------------------------------------------------------------------


def test_retention_0_keeps_archived_chats_forever(any_session: Session, clock: FrozenClock) -> None:
    write_site_config(any_session, NOW, None, chat_retention_days=0)
    user, org = owner(any_session, clock)
    chat = family(any_session, clock, user, org, created_at=OLD)
    archive(any_session, chat, days_ago=3000)
    result = run(any_session, clock)
    assert result.ran and result.days == 0 and result.chats == 0
    assert reload(any_session, chat)[0].archived


def test_retention_deletes_expired_archived_chats_with_descendants_and_messages_and_keeps_events(
    any_session: Session, clock: FrozenClock
) -> None:
    write_site_config(any_session, NOW, None, chat_retention_days=30)
    user, org = owner(any_session, clock)
    expired = family(
        any_session, clock, user, org, created_at=OLD, messages=[OLD] * 3, children=[[OLD] * 2]
    )
    [child] = any_session.scalars(select(Chat).where(Chat.root_chat_id == expired.id)).all()
    grandchild = factories.chat(
        any_session, clock, user, org.id, parent_chat_id=child.id, root_chat_id=expired.id
    )
    factories.message(any_session, clock, grandchild)
    recent = family(any_session, clock, user, org, created_at=OLD, messages=[OLD])
    live = family(any_session, clock, user, org, created_at=OLD, messages=[OLD])
    archive(any_session, expired, days_ago=31)
    archive(any_session, recent, days_ago=29)
    auto = factories.automation(any_session, clock, owner=user, organization_id=org.id)
    created = factories.event(
        any_session, clock, auto, status=EventStatus.CREATED, created_chat_id=expired.id
    )
    continued = factories.event(
        any_session, clock, auto, status=EventStatus.CONTINUED, matched_chat_id=child.id
    )
    family_ids = [expired.id, child.id, grandchild.id]
    kept_ids = [recent.id, live.id]
    result = run(any_session, clock)
    assert (result.chats, result.sub_chats, result.messages) == (3, 2, 6)
    assert count(any_session, Chat, Chat.id.in_(family_ids)) == 0
    assert count(any_session, Chat, Chat.id.in_(kept_ids)) == 2
    assert count(any_session, ChatMessage, ChatMessage.chat_id.in_(family_ids)) == 0
    assert count(any_session, ChatMessage) == 2
    rows = {
        e.id: e
        for e in any_session.scalars(
            select(AutomationEvent).where(AutomationEvent.id.in_([created.id, continued.id]))
        )
    }
    assert rows[created.id].status == EventStatus.CREATED
    assert rows[created.id].created_chat_id is None
    assert rows[continued.id].status == EventStatus.CONTINUED
    assert rows[continued.id].matched_chat_id is None
    # a rerun deletes nothing
    assert run(any_session, clock).chats == 0


def test_retention_works_in_batches(any_session: Session, clock: FrozenClock) -> None:
    write_site_config(any_session, NOW, None, chat_retention_days=7)
    user, org = owner(any_session, clock)
    chats = [
        family(any_session, clock, user, org, created_at=OLD, messages=[OLD]) for _ in range(5)
    ]
    for i, chat in enumerate(chats):
        archive(any_session, chat, days_ago=8 + i)
    ids = [c.id for c in chats]
    result = run(any_session, clock, batch_size=2)
    assert (result.chats, result.messages, result.batches) == (5, 5, 3)
    assert count(any_session, Chat, Chat.id.in_(ids)) == 0
