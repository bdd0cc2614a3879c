"""Beat's chat recovery (shared.chats.recovery), on PostgreSQL and SQLite: stale heartbeats
back to ``pending``, lost publishes published again, nothing else touched."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from shared.chats.recovery import recover_chats
from shared.chats.turns import claim_chat
from shared.infra.clock import FrozenClock
from shared.models import Chat, ChatStatus
from tests.runner.runner_helpers import seed_chat


def _recover(s: Session, clock: FrozenClock, batch_size: int = 500):  # type: ignore[no-untyped-def]
    return recover_chats(
        s.connection(), clock, stale_seconds=60, republish_seconds=30, batch_size=batch_size
    )


def _reload(s: Session, chat: Chat) -> Chat:
    s.expire_all()
    row = s.get(Chat, chat.id)
    assert row is not None
    return row


def test_a_running_chat_with_a_stale_heartbeat_goes_back_to_pending(
    any_session: Session, clock: FrozenClock
) -> None:
    stale = seed_chat(any_session, clock)
    fresh = seed_chat(any_session, clock)
    assert claim_chat(any_session.connection(), clock, stale.id) is not None
    clock.advance(seconds=30)
    assert claim_chat(any_session.connection(), clock, fresh.id) is not None
    clock.advance(seconds=31)  # stale's heartbeat is 61 s old, fresh's 31 s
    result = _recover(any_session, clock)
    assert result.stale == [stale.id] and result.to_publish == [stale.id]
    row = _reload(any_session, stale)
    assert row.status == ChatStatus.PENDING
    assert (row.runner_id, row.heartbeat_at, row.queued_at) == (None, None, clock.now())
    assert _reload(any_session, fresh).status == ChatStatus.RUNNING
    # the recovered chat is claimable again at once; nothing else is due
    assert claim_chat(any_session.connection(), clock, stale.id) is not None
    assert _recover(any_session, clock).to_publish == []


def test_a_pending_chat_nobody_claimed_is_published_again(
    any_session: Session, clock: FrozenClock
) -> None:
    lost = seed_chat(any_session, clock, queued_at=clock.now())
    never = seed_chat(any_session, clock, queued_at=None)
    recent = seed_chat(any_session, clock, queued_at=clock.now() + timedelta(seconds=20))
    waiting_retry = seed_chat(
        any_session,
        clock,
        queued_at=clock.now(),
        retry_at=clock.now() + timedelta(seconds=300),
    )
    idle = seed_chat(any_session, clock, status=ChatStatus.WAITING, queued_at=clock.now())
    clock.advance(seconds=31)
    result = _recover(any_session, clock)
    assert sorted(result.republished) == sorted([lost.id, never.id])
    assert _reload(any_session, lost).queued_at == clock.now()
    assert _reload(any_session, recent).queued_at == recent.queued_at
    assert _reload(any_session, idle).status == ChatStatus.WAITING
    # published again only after another quiet period
    assert _recover(any_session, clock).to_publish == []
    clock.advance(seconds=300)
    assert waiting_retry.id in _recover(any_session, clock).republished


def test_recovery_works_in_batches(any_session: Session, clock: FrozenClock) -> None:
    chats = [seed_chat(any_session, clock, queued_at=None) for _ in range(5)]
    first = _recover(any_session, clock, batch_size=3).republished
    second = _recover(any_session, clock, batch_size=3).republished
    assert len(first) == 3 and len(second) == 2
    assert sorted(first + second) == sorted(c.id for c in chats)
