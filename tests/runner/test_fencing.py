"""Fencing: a runner whose claim was taken over writes nothing (SPEC 9 "A turn").

Deterministic, with the domain functions directly: runner A claims, stops heartbeating (its
process hangs), recovery returns the chat to ``pending``, runner B claims it; A's commit, its
failure commit and its heartbeat all find the claim gone, and only B's reply is stored. Then
the same through two real hosts, and claims racing from threads on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from shared.chats.recovery import recover_chats
from shared.chats.turns import (
    Claim,
    ClaimLost,
    TurnSettings,
    claim_chat,
    commit_failure,
    commit_success,
    heartbeat,
    load_turn,
)
from shared.infra.clock import FrozenClock, system_clock
from shared.infra.crypto import Keyring
from shared.infra.db.engine import make_engine
from shared.infra.db.uow import Database
from shared.models import Chat, ChatStatus, UsageRecord
from shared.runner.errors import ChatError
from shared.runner.providers import TurnResult
from tests.harness.fake_providers import FakeProvider, Reply
from tests.runner.runner_helpers import (
    assistant_messages,
    count_assistant,
    in_process_host,
    seed_chat,
    wait_for,
)

SETTINGS = TurnSettings(allow_private=True)


def _result(text: str) -> TurnResult:
    return TurnResult(text, "fake-model-1", 10, 5, "stop")


def test_a_runner_that_lost_its_claim_writes_nothing(
    any_session: Session, clock: FrozenClock
) -> None:
    s = any_session
    chat = seed_chat(s, clock)
    claim_a = claim_chat(s.connection(), clock, chat.id)
    assert claim_a is not None
    request_a = load_turn(s.connection(), clock, claim_a, keyring=Keyring([]), settings=SETTINGS)

    clock.advance(seconds=61)  # A stopped heartbeating: recovery takes the chat back
    recovered = recover_chats(s.connection(), clock, stale_seconds=60, republish_seconds=30)
    assert recovered.stale == [chat.id]
    claim_b = claim_chat(s.connection(), clock, chat.id)
    assert claim_b is not None and claim_b.runner_id != claim_a.runner_id
    request_b = load_turn(s.connection(), clock, claim_b, keyring=Keyring([]), settings=SETTINGS)

    assert heartbeat(s.connection(), clock, [(chat.id, claim_a.runner_id)]) == set()
    with pytest.raises(ClaimLost):
        commit_success(s.connection(), clock, request_a, _result("from A"))
    error = ChatError("boom", "generic", "openai", True, 500)
    with pytest.raises(ClaimLost):
        commit_failure(s.connection(), clock, request_a, error, SETTINGS)
    # the caller's unit of work rolls back on ClaimLost; nothing was written before the fence
    commit_success(s.connection(), clock, request_b, _result("from B"))
    s.expire_all()
    assert [m.content for m in assistant_messages(s, chat.id)] == ["from B"]
    usage = s.scalar(select(func.count()).where(UsageRecord.chat_id == chat.id))
    assert usage == 1
    row = s.get(Chat, chat.id)
    assert row is not None and row.status == ChatStatus.WAITING and row.last_error is None


# --- real hosts and threads on PostgreSQL -------------------------------------------------------


@pytest.fixture
def engine(pg_committed: str) -> Iterator[Engine]:
    eng = make_engine(pg_committed, pool_size=10, max_overflow=10)
    yield eng
    eng.dispose()


@pytest.mark.postgres
def test_a_host_aborts_a_turn_whose_claim_was_taken_over(engine: Engine) -> None:
    with FakeProvider("openai") as fake:
        with Session(engine) as s, s.begin():
            chat_id = seed_chat(s, system_clock, base_url=fake.base_url).id
        fake.script(Reply.ok("stale ", "reply", stall_after=3), Reply.ok("fresh reply"))
        with in_process_host(engine, system_clock, heartbeat_seconds=0.1) as host_a:
            assert host_a.acquire_slot(1)
            with Database(engine).unit() as uow:
                claim_a = claim_chat(uow.connection, system_clock, chat_id)
            assert claim_a is not None
            done_a = host_a.submit(claim_a)
            fake.wait_for_requests(1)
            # recovery gave the chat to another runner meanwhile (B's claim)
            with engine.begin() as conn:
                conn.execute(
                    update(Chat)
                    .where(Chat.id == chat_id)
                    .values(status=ChatStatus.PENDING, runner_id=None, heartbeat_at=None)
                )
            with in_process_host(engine, system_clock) as host_b:
                assert host_b.acquire_slot(1)
                with Database(engine).unit() as uow:
                    claim_b = claim_chat(uow.connection, system_clock, chat_id)
                assert claim_b is not None
                host_b.submit(claim_b).result(30)
            done_a.result(30)  # A's heartbeat found the claim gone and cancelled the turn
            fake.release()
            wait_for(lambda: host_a.in_flight == 0, what="A's turn ended")
        with Session(engine) as s:
            assert [m.content for m in assistant_messages(s, chat_id)] == ["fresh reply"]
            chat = s.get(Chat, chat_id)
            assert chat is not None and chat.status == ChatStatus.WAITING


@pytest.mark.postgres
def test_racing_claims_from_threads_claim_once(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        chat_ids = [seed_chat(s, system_clock).id for _ in range(5)]

    def race(chat_id: uuid.UUID) -> list[Claim | None]:
        barrier = threading.Barrier(6)
        claims: list[Claim | None] = []
        lock = threading.Lock()

        def work() -> None:
            barrier.wait()
            with Database(engine).unit() as uow:
                got = claim_chat(uow.connection, system_clock, chat_id)
            with lock:
                claims.append(got)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        return claims

    for chat_id in chat_ids:
        claims = race(chat_id)
        assert len(claims) == 6 and sum(c is not None for c in claims) == 1
    with Session(engine) as s:
        assert count_assistant(s, chat_ids[0]) == 0
