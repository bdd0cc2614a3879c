"""The chat runner end to end: real worker processes (prefork, every queue) on PostgreSQL +
Redis answering chats through the real local fake providers; the gateway's new chat
operations; the pipeline publishing ``run_chat`` after commit; recovery re-publishing a lost
publish."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from celery import Celery
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from shared import accounts
from shared.accounts.authz import Principal
from shared.chats import messages
from shared.infra.broker import Publisher, producer_app
from shared.infra.clock import FrozenClock, system_clock
from shared.infra.config import Settings
from shared.infra.db.engine import make_engine
from shared.infra.db.uow import Database
from shared.infra.queues import QUEUE_CHATS, QUEUE_MAINTENANCE, RECOVER_CHATS, RUN_CHAT
from shared.models import Chat, ChatStatus, OrgRole, SiteRole
from shared.triggers.signatures import sign_github
from tests import factories as f
from tests.harness.fake_providers import FakeProvider, Reply
from tests.harness.processes import Proc, service_env, start_gateway, start_worker
from tests.runner.runner_helpers import (
    assistant_messages,
    model_config,
    seed_chat,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

SECRET = "c0ffee" * 10 + "c0de"


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
            "AUTOMATIONS_OUTBOUND_ALLOW_PRIVATE": "true",  # the fakes listen on 127.0.0.1
            "AUTOMATIONS_RUNNER_REPUBLISH_SECONDS": "1",
        },
    )


@pytest.fixture
def producer(pg_committed: str, redis_url: str, tmp_path: Path) -> Iterator[Celery]:
    app = producer_app(Settings(database_url=pg_committed, broker_url=redis_url, data_dir=tmp_path))
    yield app
    app.close()


@pytest.fixture
def worker(env: dict[str, str], tmp_path: Path) -> Iterator[Proc]:
    proc = start_worker(env, tmp_path, "--concurrency", "2")
    yield proc
    proc.stop()


def _chat(engine: Engine, chat_id: uuid.UUID) -> Chat:
    with Session(engine, expire_on_commit=False) as s:
        chat = s.get(Chat, chat_id)
        assert chat is not None
        return chat


def _settled(engine: Engine, chat_id: uuid.UUID, replies: int = 1) -> Chat | None:
    """The chat once it is ``waiting`` with ``replies`` assistant messages (None before)."""
    with Session(engine, expire_on_commit=False) as s:
        chat = s.get(Chat, chat_id)
        assert chat is not None
        if chat.status == ChatStatus.ERROR:
            raise AssertionError(f"chat failed: {chat.last_error}")
        done = chat.status == ChatStatus.WAITING
        return chat if done and len(assistant_messages(s, chat_id)) == replies else None


def _publish_run_chat(app: Celery, chat_id: uuid.UUID) -> None:
    app.send_task(RUN_CHAT, args=[str(chat_id)], queue=QUEUE_CHATS)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_worker_answers_a_pending_chat(
    engine: Engine, producer: Celery, worker: Proc, kind: str
) -> None:
    with FakeProvider(kind) as fake:  # type: ignore[arg-type]
        fake.script(Reply.ok("It fixed ", "the login bug.", input_tokens=30, output_tokens=6))
        with Session(engine) as s, s.begin():
            chat_id = seed_chat(s, system_clock, provider=kind, base_url=fake.base_url).id
        _publish_run_chat(producer, chat_id)
        chat = wait_for(lambda: _settled(engine, chat_id), 60, "the reply")
    assert chat.last_error is None and chat.runner_id is None
    with Session(engine) as s:
        (reply,) = assistant_messages(s, chat_id)
    assert reply.content == "It fixed the login bug."
    assert (reply.input_tokens, reply.output_tokens) == (30, 6)


def test_a_message_arriving_during_a_turn_is_answered_by_a_follow_up_turn(
    engine: Engine, producer: Celery, worker: Proc
) -> None:
    with FakeProvider("openai") as fake:
        fake.script(
            Reply.ok("About 1.2: ", "login fixed.", stall_after=2), Reply.ok("1.3: faster.")
        )
        with Session(engine) as s, s.begin():
            chat = seed_chat(s, system_clock, base_url=fake.base_url)
            chat_id, owner = chat.id, _owner(chat)
        _publish_run_chat(producer, chat_id)
        fake.wait_for_requests(1, timeout=60)
        assert _chat(engine, chat_id).status == ChatStatus.RUNNING
        db = Database(engine, Publisher(producer))
        with db.unit() as uow:
            messages.post_message(uow, system_clock, owner, chat_id, "And what about 1.3?")
        assert _chat(engine, chat_id).status == ChatStatus.RUNNING  # the follow-up rule
        fake.release()
        wait_for(lambda: _settled(engine, chat_id, replies=2), 60, "the follow-up reply")
        first, second = fake.requests
    with Session(engine) as s:
        replies = [m.content for m in assistant_messages(s, chat_id)]
    assert replies == ["About 1.2: login fixed.", "1.3: faster."]
    assert "And what about 1.3?" not in json.dumps(first.json)
    contents = [m["content"] for m in second.json["messages"]]
    assert contents[-2:] == ["About 1.2: login fixed.", "And what about 1.3?"]


def test_recovery_republishes_a_pending_chat_whose_publish_was_lost(
    engine: Engine, producer: Celery, worker: Proc
) -> None:
    with FakeProvider("anthropic") as fake:
        with Session(engine) as s, s.begin():
            chat_id = seed_chat(
                s,
                system_clock,
                provider="anthropic",
                base_url=fake.base_url,
                queued_at=datetime.now(UTC) - timedelta(minutes=5),
            ).id
        # no run_chat was ever published for it; beat's recovery job is
        producer.send_task(RECOVER_CHATS, queue=QUEUE_MAINTENANCE)
        wait_for(lambda: _settled(engine, chat_id), 60, "the recovered chat's reply")
        assert len(fake.requests) == 1


def _owner(chat: Chat) -> Principal:
    return Principal(
        user_id=chat.owner_id,
        email="owner@example.com",
        site_role=SiteRole.MEMBER,
        memberships={chat.organization_id: OrgRole.MEMBER},
    )


def test_gateway_chat_operations_and_the_pipeline_run_turns(
    engine: Engine, env: dict[str, str], tmp_path: Path, worker: Proc
) -> None:
    clock = FrozenClock(datetime.now(UTC))
    with FakeProvider("openai") as fake:
        with Session(engine) as s, s.begin():
            org = f.org(s, clock)
            owner = f.user(s, clock, org)
            config = model_config(s, clock, org.id, provider="openai", base_url=fake.base_url)
            auto = f.automation(
                s,
                clock,
                owner,
                organization_id=org.id,
                instructions="Summarise the deploy.",
                model_config_id=config.id,
            )
            trigger = f.webhook_trigger(
                s, clock, auto, webhook_secret=SECRET, label_paths={"env": "env"}
            )
            _, token = accounts.create_token(s, clock, owner.email, ["*"])
            trigger_id, config_id = trigger.id, config.id
        gateway, base = start_gateway(env, tmp_path)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            # the pipeline creates a chat and publishes run_chat after its commit
            body = json.dumps({"env": "prod", "version": "1.2"}).encode()
            sent = requests.post(
                f"{base}/api/v1/automations/triggers/{trigger_id}/webhook",
                data=body,
                headers={
                    "Content-Type": "application/json",
                    "X-GitHub-Delivery": "d-1",
                    "X-Hub-Signature-256": sign_github(SECRET, body),
                },
                timeout=10,
            )
            assert sent.status_code == 202, sent.text

            def created() -> Any:
                items = requests.get(f"{base}/api/v1/chats", headers=headers, timeout=10)
                return items.json()["items"]

            (listed,) = wait_for(created, 60, "the created chat")
            chat_id = uuid.UUID(listed["id"])
            wait_for(lambda: _settled(engine, chat_id), 60, "the pipeline chat's reply")
            shown = requests.get(f"{base}/api/v1/chats/{chat_id}", headers=headers, timeout=10)
            detail = shown.json()
            assert detail["status"] == "waiting" and detail["last_error"] is None
            assert detail["retry"] is None and detail["model_config_id"] == str(config_id)
            reply = detail["messages"][-1]
            assert reply["role"] == "assistant" and reply["model"] == "fake-model-1"
            assert (reply["input_tokens"], reply["output_tokens"]) == (11, 7)
            assert reply["finish_reason"] == "stop"
            (request,) = fake.requests
            assert request.json["messages"][0] == {
                "role": "system",
                "content": "Summarise the deploy.",
            }

            # POST /chats/{id}/messages: 201, the chat becomes pending and is answered
            posted = requests.post(
                f"{base}/api/v1/chats/{chat_id}/messages",
                json={"content": "Anything risky?"},
                headers=headers,
                timeout=10,
            )
            assert posted.status_code == 201, posted.text
            assert posted.json()["role"] == "user"
            assert posted.json()["content"] == "Anything risky?"
            wait_for(lambda: _settled(engine, chat_id, replies=2), 60, "the second reply")

            empty = requests.post(
                f"{base}/api/v1/chats/{chat_id}/messages",
                json={"content": ""},
                headers=headers,
                timeout=10,
            )
            assert empty.status_code == 400 and empty.json()["field"] == "content"

            # POST /chats/{id}/retry: 409 unless in error, then 202 and answered
            refused = requests.post(
                f"{base}/api/v1/chats/{chat_id}/retry", headers=headers, timeout=10
            )
            assert refused.status_code == 409 and refused.json()["code"] == "not_in_error"
            with engine.begin() as conn:
                conn.execute(
                    update(Chat)
                    .where(Chat.id == chat_id)
                    .values(
                        status=ChatStatus.ERROR,
                        last_error={"message": "x", "kind": "timeout", "retryable": True},
                    )
                )
            retried = requests.post(
                f"{base}/api/v1/chats/{chat_id}/retry", headers=headers, timeout=10
            )
            assert retried.status_code == 202, retried.text
            assert retried.json()["status"] == "pending"
            wait_for(lambda: _settled(engine, chat_id, replies=3), 60, "the retried reply")
            assert _chat(engine, chat_id).last_error is None
        finally:
            gateway.stop()
