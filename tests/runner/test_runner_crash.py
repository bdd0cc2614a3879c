"""Crash tests: a real worker SIGKILLed mid-stream, and one stopped gracefully mid-stream.
Either way the chat ends with exactly one assistant message."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from shared.infra.broker import producer_app
from shared.infra.clock import system_clock
from shared.infra.config import Settings
from shared.infra.db.engine import make_engine
from shared.infra.queues import QUEUE_CHATS, QUEUE_MAINTENANCE, RECOVER_CHATS, RUN_CHAT
from shared.models import Chat, ChatStatus
from tests.harness.fake_providers import FakeProvider, Reply
from tests.harness.processes import service_env, start_worker
from tests.runner.runner_helpers import assistant_messages, seed_chat, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]


@pytest.fixture
def engine(pg_committed: str) -> Iterator[Engine]:
    eng = make_engine(pg_committed)
    yield eng
    eng.dispose()


@pytest.fixture
def env(pg_committed: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    return service_env(
        database_url=pg_committed,
        broker_url=redis_url,
        data_dir=tmp_path,
        extra={
            "AUTOMATIONS_OUTBOUND_ALLOW_PRIVATE": "true",
            "AUTOMATIONS_RUNNER_HEARTBEAT_SECONDS": "0.5",
            "AUTOMATIONS_RUNNER_STALE_SECONDS": "3",
        },
    )


@pytest.fixture
def producer(pg_committed: str, redis_url: str, tmp_path: Path) -> Iterator[Celery]:
    app = producer_app(Settings(database_url=pg_committed, broker_url=redis_url, data_dir=tmp_path))
    yield app
    app.close()


def _chat(engine: Engine, chat_id: uuid.UUID) -> Chat:
    with Session(engine, expire_on_commit=False) as s:
        chat = s.get(Chat, chat_id)
        assert chat is not None
        return chat


def _replies(engine: Engine, chat_id: uuid.UUID) -> list[str]:
    with Session(engine) as s:
        return [m.content for m in assistant_messages(s, chat_id)]


def _start_stalled_turn(engine: Engine, producer: Celery, fake: FakeProvider) -> uuid.UUID:
    """A chat whose turn runs and stalls mid-stream (after its first text) until released;
    the provider's second answer is whole."""
    stall = 3 if fake.kind == "openai" else 5  # after the first text delta
    fake.script(Reply.ok("half ", "a ", "reply", stall_after=stall), Reply.ok("the whole reply"))
    with Session(engine) as s, s.begin():
        chat_id = seed_chat(s, system_clock, provider=fake.kind, base_url=fake.base_url).id
    producer.send_task(RUN_CHAT, args=[str(chat_id)], queue=QUEUE_CHATS)
    fake.wait_for_requests(1, timeout=60)
    wait_for(lambda: _chat(engine, chat_id).status == ChatStatus.RUNNING, 30, "running")
    return chat_id


def test_a_runner_sigkilled_mid_stream_leaves_exactly_one_reply(
    engine: Engine, producer: Celery, env: dict[str, str], tmp_path: Path
) -> None:
    with FakeProvider("openai") as fake:
        doomed = start_worker(env, tmp_path, "--concurrency", "2", name="doomed")
        try:
            chat_id = _start_stalled_turn(engine, producer, fake)
        finally:
            doomed.kill_group()  # mid-stream: the provider is stalled until released
        fake.release()
        held = _chat(engine, chat_id)
        assert held.status == ChatStatus.RUNNING and held.runner_id is not None
        assert _replies(engine, chat_id) == []

        survivor = start_worker(env, tmp_path, "--concurrency", "2", name="survivor")
        try:

            def recovered_and_answered() -> bool:
                if _chat(engine, chat_id).status == ChatStatus.WAITING:
                    return True
                producer.send_task(RECOVER_CHATS, queue=QUEUE_MAINTENANCE)
                return False

            wait_for(recovered_and_answered, 60, "recovery and a new turn")
        finally:
            survivor.stop()
        assert "chat recovery: 1 stale running chat(s) back to pending" in survivor.log()
    assert _replies(engine, chat_id) == ["the whole reply"]
    assert len(fake.requests) == 2


def test_a_worker_stopped_gracefully_hands_its_turn_back_at_once(
    engine: Engine, producer: Celery, env: dict[str, str], tmp_path: Path
) -> None:
    with FakeProvider("anthropic") as fake:
        env = {**env, "AUTOMATIONS_RUNNER_STALE_SECONDS": "3600"}  # no recovery: the hand-back
        first = start_worker(env, tmp_path, "--concurrency", "1", name="first")
        try:
            chat_id = _start_stalled_turn(engine, producer, fake)
        finally:
            first.stop()  # SIGTERM: Celery's warm shutdown
        fake.release()
        handed_back = _chat(engine, chat_id)
        assert handed_back.status == ChatStatus.PENDING and handed_back.runner_id is None
        assert "handed back 1 unfinished turn(s)" in first.log()
        second = start_worker(env, tmp_path, "--concurrency", "1", name="second")
        try:
            wait_for(
                lambda: _chat(engine, chat_id).status == ChatStatus.WAITING,
                60,
                "the handed-back turn answered",
            )
        finally:
            second.stop()
    assert _replies(engine, chat_id) == ["the whole reply"]
