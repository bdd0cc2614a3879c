"""End to end: signed webhooks posted to the real gateway (gunicorn) are processed by a real
worker (prefork) on PostgreSQL + Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.infra.clock import FrozenClock
from shared.infra.db.engine import make_engine, make_session_factory
from shared.models import AutomationEvent, Chat, ChatMessage, EventStatus
from shared.triggers.signatures import sign_github
from tests import factories as f
from tests.harness.processes import service_env, start_gateway, start_worker
from tests.pipeline.helpers import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

SECRET = "c0ffee" * 10 + "c0de"  # 64 hex characters, stored in plaintext (no keys configured)


def test_signed_webhooks_become_chats(pg_committed: str, redis_url: str, tmp_path: Path) -> None:
    engine = make_engine(pg_committed)
    factory = make_session_factory(engine)
    clock = FrozenClock(datetime.now(UTC))
    with factory.begin() as s:
        auto = f.automation(s, clock, name="pr-bot", instructions="Review the pull request.")
        trig = f.webhook_trigger(
            s,
            clock,
            auto,
            webhook_secret=SECRET,
            filter={"action": {"$in": ["opened", "synchronize"]}},
            label_paths={"pr": "pull_request.number", "repo": "repository.full_name"},
        )
        automation_id, trigger_id = auto.id, trig.id

    env = service_env(database_url=pg_committed, broker_url=redis_url, data_dir=tmp_path)
    gateway, base = start_gateway(env, tmp_path)
    worker = start_worker(env, tmp_path, "--concurrency", "2")
    url = f"{base}/api/v1/automations/triggers/{trigger_id}/webhook"

    def post(doc: Any, delivery: str, secret: str = SECRET) -> requests.Response:
        body = json.dumps(doc).encode()
        return requests.post(
            url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": sign_github(secret, body),
            },
            timeout=10,
        )

    pr = {"number": 7, "title": "Fix it"}
    repo = {"full_name": "acme/api"}
    try:
        first = post({"action": "opened", "pull_request": pr, "repository": repo}, "d-1")
        assert first.status_code == 202, first.text
        second = post({"action": "synchronize", "pull_request": pr, "repository": repo}, "d-2")
        closed = post({"action": "closed", "pull_request": pr, "repository": repo}, "d-3")
        again = post({"action": "opened", "pull_request": pr, "repository": repo}, "d-1")
        forged = post({"action": "opened"}, "d-4", secret="00" * 32)
        assert [r.status_code for r in (second, closed, again, forged)] == [202, 202, 202, 401]
        assert again.json()["event_id"] == first.json()["event_id"]  # deduplicated

        def outcomes() -> dict[str, str]:
            with factory() as s:
                rows = s.execute(
                    select(AutomationEvent.id, AutomationEvent.status).where(
                        AutomationEvent.automation_id == automation_id
                    )
                ).all()
            if any(status == EventStatus.PENDING for _, status in rows):
                return {}
            return {str(i): str(status) for i, status in rows}

        done = wait_until(outcomes, 60, what="webhook outcomes")
    finally:
        worker.stop()
        gateway.stop()
    ids = [r.json()["event_id"] for r in (first, second, closed)]
    assert done[ids[2]] == "filtered"
    assert sorted([done[ids[0]], done[ids[1]]]) == ["continued", "created"]
    assert sorted(done.values()) == ["continued", "created", "error", "filtered"]  # + forged

    with Session(engine) as s:
        (chat,) = s.scalars(select(Chat).where(Chat.automation_id == automation_id))
        assert chat.labels == {"pr": "7", "repo": "acme/api"}
        assert chat.title.startswith("[pr-bot] ")
        assert s.scalar(select(func.count()).where(ChatMessage.chat_id == chat.id)) == 2
    engine.dispose()
