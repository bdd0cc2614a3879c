"""SPEC 9's error table and retry rules at the runner level: a real :class:`RunnerHost` (its
event loop, its fenced commits) on PostgreSQL against the real local fake providers, each
failure ending in the right status, kind and retry state on the chat."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from shared.chats.turns import claim_chat
from shared.infra.clock import system_clock
from shared.infra.db.engine import make_engine
from shared.infra.db.uow import Database
from shared.models import Chat, ChatStatus
from shared.runner.host import RunnerHost
from tests.harness.fake_providers import FakeProvider, Reply
from tests.runner.runner_helpers import (
    KEY,
    Published,
    assistant_messages,
    in_process_host,
    seed_chat,
)

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def engine(pg_committed: str) -> Iterator[Engine]:
    eng = make_engine(pg_committed, pool_size=5, max_overflow=5)
    yield eng
    eng.dispose()


@pytest.fixture(params=["openai", "anthropic"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeProvider]:
    with FakeProvider(request.param) as provider:
        yield provider


class LiveRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[uuid.UUID, str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def publish(self, chat_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.events.append((chat_id, event, data))

    def names(self) -> list[str]:
        with self._lock:
            return [name for _, name, _ in self.events]


def _seed(engine: Engine, fake: FakeProvider) -> uuid.UUID:
    with Session(engine) as s, s.begin():
        return seed_chat(s, system_clock, provider=fake.kind, base_url=fake.base_url).id


def _turn(engine: Engine, host: RunnerHost, chat_id: uuid.UUID) -> Chat:
    """Claim the chat as ``run_chat`` does, run its turn on the host, return the chat."""
    assert host.acquire_slot(5)
    with Database(engine).unit() as uow:
        claim = claim_chat(uow.connection, system_clock, chat_id)
    assert claim is not None, "chat not claimable"
    host.submit(claim).result(60)
    return _chat(engine, chat_id)


def _chat(engine: Engine, chat_id: uuid.UUID) -> Chat:
    with Session(engine, expire_on_commit=False) as s:
        chat = s.get(Chat, chat_id)
        assert chat is not None
        return chat


def _make_due(engine: Engine, chat_id: uuid.UUID) -> None:
    with engine.begin() as conn:
        conn.execute(update(Chat).where(Chat.id == chat_id).values(retry_at=None))


def test_a_turn_stores_one_reply_with_tokens_and_streams_it(
    engine: Engine, fake: FakeProvider
) -> None:
    chat_id = _seed(engine, fake)
    fake.script(Reply.ok("Release ", "1.2 ", "fixed login.", input_tokens=21, output_tokens=9))
    live = LiveRecorder()
    with in_process_host(engine, system_clock, live=live) as host:
        chat = _turn(engine, host, chat_id)
    assert chat.status == ChatStatus.WAITING and chat.last_error is None and chat.retry is None
    with Session(engine) as s:
        (reply,) = assistant_messages(s, chat_id)
    assert reply.content == "Release 1.2 fixed login."
    assert (reply.input_tokens, reply.output_tokens, reply.model) == (21, 9, "fake-model-1")
    assert reply.finish_reason in ("stop", "end_turn")
    (request,) = fake.requests
    body = request.json
    text = json.dumps(body)
    assert "You are the release bot" in text and "What changed in release 1.2?" in text
    names = live.names()
    assert names[0] == "status" and "delta" in names and names[-2:] == ["message", "status"]
    streamed = "".join(d["text"] for _, n, d in live.events if n == "delta")
    assert streamed == "Release 1.2 fixed login."


def _http_date(seconds: int) -> tuple[str, datetime]:
    when = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
    return format_datetime(when, usegmt=True), when


@pytest.mark.parametrize(
    ("name", "reply", "kind", "status", "min_delay"),
    [
        ("429 retry-after-ms", Reply.error(429, "slow", headers={"retry-after-ms": "4500"}),
         "rate_limit", ChatStatus.PENDING, 4.5),
        ("429 retry-after seconds", Reply.error(429, "slow", headers={"retry-after": "7"}),
         "rate_limit", ChatStatus.PENDING, 7.0),
        ("529", Reply.error(529, "Overloaded"), "overloaded", ChatStatus.PENDING, 0.8),
        ("401", Reply.error(401, "invalid x-api-key"), "auth", ChatStatus.ERROR, None),
        ("403", Reply.error(403, "forbidden"), "auth", ChatStatus.ERROR, None),
        ("404 model", Reply.error(404, "The model `fake-model-1` does not exist",
                                  code="model_not_found"), "config", ChatStatus.ERROR, None),
        ("500", Reply.error(500, "internal"), "generic", ChatStatus.PENDING, 0.8),
        ("503", Reply.error(503, "unavailable"), "timeout", ChatStatus.PENDING, 0.8),
        ("truncated stream", Reply(cut_after=3), "timeout", ChatStatus.PENDING, 0.8),
        ("hang before first chunk", Reply(first_event_delay=20), "startup_timeout",
         ChatStatus.PENDING, 0.8),
        ("stall mid-stream", Reply(stall_after=3), "timeout", ChatStatus.PENDING, 0.8),
    ],
)  # fmt: skip
def test_each_row_of_the_error_table(
    engine: Engine,
    fake: FakeProvider,
    name: str,
    reply: Reply,
    kind: str,
    status: ChatStatus,
    min_delay: float | None,
) -> None:
    chat_id = _seed(engine, fake)
    fake.script(reply)
    published = Published()
    started = datetime.now(UTC)
    with in_process_host(
        engine,
        system_clock,
        publish=published,
        startup_timeout_seconds=0.5,
        stream_idle_timeout_seconds=0.5,
    ) as host:
        chat = _turn(engine, host, chat_id)
    fake.release()
    assert chat.status == status, name
    assert chat.last_error is not None and chat.last_error["kind"] == kind, chat.last_error
    assert chat.runner_id is None and chat.heartbeat_at is None
    assert len(fake.requests) == 1  # the SDK's own retries are off
    with Session(engine) as s:
        assert assistant_messages(s, chat_id) == []
    if status == ChatStatus.PENDING:
        assert chat.last_error["retryable"] is True
        assert chat.retry is not None and chat.retry["attempt"] == 1
        assert chat.retry["kind"] == kind and chat.retry_at is not None
        assert min_delay is not None
        assert chat.retry_at >= started + timedelta(seconds=min_delay)
        assert chat.retry["delay_ms"] >= min_delay * 1000
        ((chat_published, countdown),) = published.calls
        assert chat_published == chat_id and countdown is not None and countdown >= min_delay
    else:
        assert chat.last_error["retryable"] is False and chat.retry is None
        assert chat.retry_at is None and published.calls == []


def test_429_retry_after_http_date_is_respected(engine: Engine, fake: FakeProvider) -> None:
    chat_id = _seed(engine, fake)
    header, when = _http_date(30)
    fake.script(Reply.error(429, "slow", headers={"retry-after": header}))
    with in_process_host(engine, system_clock) as host:
        chat = _turn(engine, host, chat_id)
    assert chat.status == ChatStatus.PENDING and chat.retry_at is not None
    assert chat.retry_at >= when - timedelta(milliseconds=1)
    assert chat.retry is not None and chat.retry["delay_ms"] >= 25_000


def test_a_retry_after_beyond_the_limit_ends_the_turn_saying_so(
    engine: Engine, fake: FakeProvider
) -> None:
    chat_id = _seed(engine, fake)
    fake.script(Reply.error(429, "slow", headers={"retry-after": "3600"}))
    with in_process_host(engine, system_clock, max_retry_after_seconds=600) as host:
        chat = _turn(engine, host, chat_id)
    assert chat.status == ChatStatus.ERROR and chat.retry is None
    assert chat.last_error is not None and chat.last_error["retryable"] is False
    assert chat.last_error["kind"] == "rate_limit"
    assert "3600 s, more than the limit of 600 s" in chat.last_error["message"]


def test_max_attempts_exhausted_ends_in_error_and_a_success_resets(
    engine: Engine, fake: FakeProvider
) -> None:
    chat_id = _seed(engine, fake)
    fake.script(Reply.error(500, "internal"), Reply.error(500, "internal"))
    with in_process_host(engine, system_clock, max_attempts=2) as host:
        first = _turn(engine, host, chat_id)
        assert first.status == ChatStatus.PENDING and first.retry is not None
        assert first.retry["attempt"] == 1
        _make_due(engine, chat_id)
        second = _turn(engine, host, chat_id)
    assert second.status == ChatStatus.ERROR and second.retry is None
    assert (
        second.last_error is not None
        and "Gave up after 2 attempts" in (second.last_error["message"])
    )
    assert len(fake.requests) == 2


def test_no_api_key_in_last_error_logs_or_live_events(
    engine: Engine, fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    chat_id = _seed(engine, fake)
    fake.script(
        Reply.error(
            401,
            f"Incorrect API key provided: {KEY}. Authorization: Bearer {KEY}",
        )
    )
    live = LiveRecorder()
    caplog.set_level(logging.DEBUG)
    with in_process_host(engine, system_clock, live=live) as host:
        chat = _turn(engine, host, chat_id)
    assert chat.status == ChatStatus.ERROR
    assert chat.last_error is not None and chat.last_error["kind"] == "auth"
    assert KEY not in json.dumps(chat.last_error)
    assert KEY[:20] not in json.dumps(chat.last_error)
    assert "error" in live.names()
    assert KEY not in json.dumps([data for _, _, data in live.events], default=str)
    assert "attempt 1 failed" in caplog.text  # the failure was logged ...
    assert KEY not in caplog.text  # ... without the key
