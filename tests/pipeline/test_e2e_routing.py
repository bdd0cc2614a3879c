"""End to end with GitHub's own example payloads: the real gateway (gunicorn) and a real
worker (prefork) on PostgreSQL + Redis. Event types from ``X-GitHub-Event``, headers stored
without secrets, automation-scoped chats, a message template, the reduced JSON payload, and a
replay through the API."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from shared import accounts
from shared.infra.clock import FrozenClock
from shared.infra.db.engine import make_engine, make_session_factory
from shared.models import AutomationEvent, ChatMessage, EventStatus, User
from shared.triggers.signatures import sign_github
from tests import factories as f
from tests.harness.processes import REPO, service_env, start_gateway, start_worker
from tests.pipeline.helpers import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

SECRET = "feed" * 16
GITHUB = REPO / "tests" / "data" / "github"
TEMPLATE = "PR #{{ payload.number }}: {{ payload.pull_request.title }} ({{ event_type }})"


def _payload(name: str) -> bytes:
    return (GITHUB / name).read_bytes()


def test_github_payloads_route_by_type_and_scope_and_replay(
    pg_committed: str, redis_url: str, tmp_path: Path
) -> None:
    engine = make_engine(pg_committed)
    factory = make_session_factory(engine)
    clock = FrozenClock(datetime.now(UTC))
    labels = {"repo": "repository.full_name", "pr": "number"}
    with factory.begin() as s:
        review = f.automation(s, clock, name="pr-review", instructions="Review it.")
        owner = s.get(User, review.owner_id)
        assert owner is not None
        deploys = f.automation(s, clock, owner, name="deploys", instructions="Check it.")
        review_trigger = f.webhook_trigger(
            s,
            clock,
            review,
            webhook_secret=SECRET,
            event_types=["pull_request"],
            label_paths=labels,
            message_template=TEMPLATE,
        )
        deploys_trigger = f.webhook_trigger(
            s, clock, deploys, webhook_secret=SECRET, label_paths={"repo": labels["repo"]}
        )
        _, token = accounts.create_token(s, clock, owner.email, ["*"])
        ids = {"review": review.id, "deploys": deploys.id}
        triggers = {"review": review_trigger.id, "deploys": deploys_trigger.id}

    env = service_env(database_url=pg_committed, broker_url=redis_url, data_dir=tmp_path)
    gateway, base = start_gateway(env, tmp_path)
    worker = start_worker(env, tmp_path, "--concurrency", "2")

    def post(which: str, body: bytes, event_type: str) -> str:
        resp = requests.post(
            f"{base}/api/v1/automations/triggers/{triggers[which]}/webhook",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-GitHub-Event": event_type,
                "X-Hub-Signature-256": sign_github(SECRET, body),
                "Authorization": "Bearer must-not-be-stored",
            },
            timeout=10,
        )
        assert resp.status_code == 202, resp.text
        return str(resp.json()["event_id"])

    def final(event_id: str) -> AutomationEvent:
        def done() -> AutomationEvent | None:
            with factory() as s:
                row = s.get(AutomationEvent, uuid.UUID(event_id))
                return row if row is not None and row.status != EventStatus.PENDING else None

        return wait_until(done, 60, what=f"event {event_id} processed")  # type: ignore[no-any-return]

    def message(event_id: str) -> str:
        with factory() as s:
            return str(
                s.scalar(
                    select(ChatMessage.content).where(ChatMessage.event_id == uuid.UUID(event_id))
                )
            )

    try:
        pr_body = _payload("pull_request.opened.json")
        pr_doc = json.loads(pr_body)
        pr = final(post("review", pr_body, "pull_request"))
        assert pr.status == EventStatus.CREATED, pr.error
        assert pr.event_type == "pull_request"
        assert pr.headers is not None and pr.headers["x-github-event"] == "pull_request"
        stored = {k.lower() for k in pr.headers}
        assert not stored & {"authorization", "x-hub-signature-256"}, stored
        rendered = message(str(pr.id))
        title = pr_doc["pull_request"]["title"]
        assert f"PR #{pr_doc['number']}: {title} (pull_request)" in rendered
        assert "```json" not in rendered  # the template replaced the payload

        # an issues event on the pull-request trigger: filtered by its event type
        issue = final(post("review", _payload("issues.opened.json"), "issues"))
        assert issue.status == EventStatus.FILTERED and "event_types" in str(issue.error)

        # a check_run to another automation sharing the repo label: its own new chat
        check = final(post("deploys", _payload("check_run.completed.json"), "check_run"))
        assert check.status == EventStatus.CREATED
        assert check.created_chat_id != pr.created_chat_id
        assert check.resolved_labels == {"repo": pr_doc["repository"]["full_name"]}
        body = message(str(check.id))
        match = re.search(r"```json\n(.*?)\n```", body, re.S)
        assert match is not None, body[:500]
        json.loads(match.group(1))  # the payload part is valid JSON
        assert "Event type: check_run" in body

        # replay the pull request through the API: it continues its chat
        auth = {"Authorization": f"Bearer {token}"}
        replay = requests.post(
            f"{base}/api/v1/automations/{ids['review']}/events/{pr.id}/replay",
            headers=auth,
            timeout=10,
        )
        assert replay.status_code == 202, replay.text
        again = final(replay.json()["event_id"])
        assert again.status == EventStatus.CONTINUED
        assert again.matched_chat_id == pr.created_chat_id
        assert again.replay_of == pr.id and again.event_type == "pull_request"
        listed: Any = requests.get(
            f"{base}/api/v1/automations/{ids['review']}/events", headers=auth, timeout=10
        ).json()
        types = {e["id"]: e["event_type"] for e in listed["items"]}
        assert types[str(issue.id)] == "issues"
    finally:
        worker.stop()
        gateway.stop()
        engine.dispose()
