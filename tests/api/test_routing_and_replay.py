"""Issue 15 over the API: chat_scope, event_types, message templates (validation), the event
type on events and in the dry run, and replay (single and bulk)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from shared.infra.db.uow import Database
from shared.models import Automation, AutomationEvent, AutomationTrigger, EventStatus
from tests import factories as f
from tests.api.conftest import Api
from tests.cron.helpers import Collector

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def published(api: Api) -> Iterator[Collector]:
    """What the API's units of work publish after commit (event ids)."""
    gw = api.app.extensions["automations"]
    saved = gw.runtime.db
    collector = Collector()
    gw.runtime.db = Database(saved.bind, collector)  # type: ignore[arg-type]
    try:
        yield collector
    finally:
        gw.runtime.db = saved


def _count(api: Api, model: Any) -> int:
    return int(api.session.scalar(select(func.count()).select_from(model)) or 0)


# --- chat scope -----------------------------------------------------------------------------


def test_chat_scope_defaults_to_automation_and_can_change(api: Api) -> None:
    auto = api.create_automation("scoped")
    assert auto["chat_scope"] == "automation"
    resp = api.patch(f"/automations/{auto['id']}", {"chat_scope": "organization"})
    assert resp.status_code == 200 and resp.get_json()["chat_scope"] == "organization"
    org = api.create_automation("org-wide", chat_scope="organization")
    assert org["chat_scope"] == "organization"


def test_unknown_chat_scope_is_a_400_naming_the_field_and_writes_nothing(api: Api) -> None:
    before = _count(api, Automation)
    body = {"name": "x", "organization_id": str(api.world.org_a.id), "chat_scope": "global"}
    resp = api.post("/automations", body)
    assert resp.status_code == 400
    assert resp.get_json()["field"] == "chat_scope", resp.get_json()
    assert _count(api, Automation) == before
    auto = api.create_automation("y")
    resp = api.patch(f"/automations/{auto['id']}", {"chat_scope": None})
    assert resp.status_code == 400 and resp.get_json()["field"] == "chat_scope"


# --- event types and templates on triggers ---------------------------------------------------


def test_trigger_event_types_and_template_round_trip(api: Api) -> None:
    auto = api.create_automation("typed")
    trig = api.create_trigger(
        auto["id"],
        event_types=["pull_request", "issues"],
        message_template="PR #{{ payload.number }}",
    )
    assert trig["event_types"] == ["pull_request", "issues"]
    assert trig["message_template"] == "PR #{{ payload.number }}"
    path = f"/automations/{auto['id']}/triggers/{trig['id']}"
    resp = api.patch(path, {"event_types": [], "message_template": None})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["event_types"] == [] and resp.get_json()["message_template"] is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"event_types": "pull_request"}, "event_types"),
        ({"event_types": [1, 2]}, "event_types"),
        ({"event_types": [""]}, "event_types"),
        ({"message_template": "{% if %}"}, "message_template"),
        ({"message_template": "line one\n{{ payload.number }"}, "message_template"),
        ({"message_template": 5}, "message_template"),
    ],
)
def test_bad_event_types_or_template_is_a_400_naming_the_field(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    auto = api.create_automation(f"bad-{uuid.uuid4().hex[:6]}")
    before = _count(api, AutomationTrigger)
    resp = api.post(f"/automations/{auto['id']}/triggers", {"type": "webhook", **fields})
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["field"].split(".")[0] == field, resp.get_json()
    assert _count(api, AutomationTrigger) == before


def test_template_syntax_error_names_the_line(api: Api) -> None:
    auto = api.create_automation("tpl")
    body = {"type": "webhook", "message_template": "ok\n{{ payload.number }"}
    resp = api.post(f"/automations/{auto['id']}/triggers", body)
    assert resp.status_code == 400
    assert "line 2" in resp.get_json()["message"], resp.get_json()


def test_cron_triggers_have_no_event_types(api: Api) -> None:
    auto = api.create_automation("cronny")
    body = {"type": "cron", "cron_schedule": "*/5 * * * *", "event_types": ["push"]}
    resp = api.post(f"/automations/{auto['id']}/triggers", body)
    assert resp.status_code == 400 and resp.get_json()["field"] == "event_types"


def test_dry_run_checks_the_event_type(api: Api) -> None:
    auto = api.create_automation("dry")
    api.create_trigger(auto["id"], event_types=["pull_request"])
    path = f"/automations/{auto['id']}/test"
    yes = api.post(path, {"payload": {}, "event_type": "pull_request"}).get_json()
    assert yes["event_type_matched"] is True and yes["would_create_new_chat"] is True
    no = api.post(path, {"payload": {}, "event_type": "issues"}).get_json()
    assert no["event_type_matched"] is False and no["would_create_new_chat"] is False
    untyped = api.post(path, {"payload": {}}).get_json()
    assert untyped["event_type_matched"] is None


# --- replay ---------------------------------------------------------------------------------


def _events(api: Api, automation_id: Any) -> list[dict[str, Any]]:
    return api.get(f"/automations/{automation_id}/events", query_string={"limit": 200}).get_json()[
        "items"
    ]


def _automation_with_events(
    api: Api, n: int, **event_kw: Any
) -> tuple[dict[str, Any], list[AutomationEvent]]:
    auto = api.create_automation(f"replay-{uuid.uuid4().hex[:6]}")
    trig = api.create_trigger(auto["id"], label_paths={"repo": "repo"})
    row = api.session.get(Automation, uuid.UUID(auto["id"]))
    assert row is not None
    evs = [
        f.event(
            api.session,
            api.clock,
            row,
            trigger_id=uuid.UUID(trig["id"]),
            payload={"repo": "acme/api", "n": i},
            headers={"x-github-event": "push", "user-agent": "GitHub-Hookshot/1"},
            event_type="push",
            status=EventStatus.FILTERED if i % 2 else EventStatus.PREVIEW,
            received_at=api.clock.advance(seconds=1),
            **event_kw,
        )
        for i in range(n)
    ]
    api.session.flush()
    return auto, evs


def test_replay_one_event_copies_payload_headers_and_type(api: Api, published: Collector) -> None:
    auto, evs = _automation_with_events(api, 1)
    original = evs[0]
    resp = api.post(f"/automations/{auto['id']}/events/{original.id}/replay")
    assert resp.status_code == 202, resp.get_json()
    new_id = resp.get_json()["event_id"]
    assert new_id != str(original.id)
    new = api.session.get(AutomationEvent, uuid.UUID(new_id))
    assert new is not None
    assert new.status is EventStatus.PENDING and new.replay_of == original.id
    assert new.payload == original.payload and new.headers == original.headers
    assert new.event_type == "push" and new.trigger_id == original.trigger_id
    assert new.delivery_id is None
    assert published.published == [new_id]
    listed = {e["id"]: e for e in _events(api, auto["id"])}
    assert listed[new_id]["replay_of"] == str(original.id)
    assert listed[new_id]["event_type"] == "push"


def test_replay_refusals(api: Api, published: Collector) -> None:
    auto, evs = _automation_with_events(api, 1)
    base = f"/automations/{auto['id']}/events"
    # unknown event, malformed id
    assert api.post(f"{base}/{uuid.uuid4()}/replay").status_code == 404
    assert api.post(f"{base}/not-a-uuid/replay").status_code == 404
    # another organization's event: 404, the same as unknown
    other = api.world.admin_b
    resp = api.post(f"{base}/{evs[0].id}/replay", who=other)
    assert resp.status_code == 404
    # a read-only token may not replay
    resp = api.post(f"{base}/{evs[0].id}/replay", who=api.world.narrow["automation:read"])
    assert resp.status_code == 403
    # truncated stored payload
    row = api.session.get(Automation, uuid.UUID(auto["id"]))
    truncated = f.event(
        api.session,
        api.clock,
        row,
        trigger_id=evs[0].trigger_id,
        payload={"_truncated": True, "_original_size": 200_000},
    )
    api.session.flush()
    resp = api.post(f"{base}/{truncated.id}/replay")
    assert resp.status_code == 409 and resp.get_json()["code"] == "payload_truncated"
    assert published.published == []


def test_bulk_replay_counts_first_then_replays_each_once(api: Api, published: Collector) -> None:
    auto, evs = _automation_with_events(api, 6)
    path = f"/automations/{auto['id']}/events/replay"
    before = len(_events(api, auto["id"]))
    dry = api.post(path, {"status": ["filtered"], "dry_run": True}).get_json()
    assert dry == {"dry_run": True, "matched": 3, "skipped": 0, "replayed": 0, "event_ids": []}
    assert len(_events(api, auto["id"])) == before and published.published == []
    resp = api.post(path, {"status": ["filtered"]})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["replayed"] == 3 and len(set(body["event_ids"])) == 3
    assert sorted(published.published) == sorted(body["event_ids"])
    replayed = [api.session.get(AutomationEvent, uuid.UUID(i)) for i in body["event_ids"]]
    originals = [e.id for e in evs if e.status is EventStatus.FILTERED]
    assert [r.replay_of for r in replayed if r is not None] == originals  # oldest first
    # time range: since inclusive, until exclusive
    since = evs[2].received_at.isoformat()
    until = evs[4].received_at.isoformat()
    ranged = api.post(path, {"since": since, "until": until, "dry_run": True}).get_json()
    assert ranged["matched"] == 2


def test_bulk_replay_skips_what_cannot_be_replayed(api: Api, published: Collector) -> None:
    auto, evs = _automation_with_events(api, 2)
    row = api.session.get(Automation, uuid.UUID(auto["id"]))
    f.event(
        api.session,
        api.clock,
        row,
        trigger_id=evs[0].trigger_id,
        payload={"_truncated": True, "_original_size": 99_999},
    )
    f.event(api.session, api.clock, row, trigger_id=None, payload={"orphan": True})
    api.session.flush()
    path = f"/automations/{auto['id']}/events/replay"
    body = api.post(path, {}).get_json()
    assert (body["matched"], body["skipped"], body["replayed"]) == (2, 2, 2)


def test_bulk_replay_bad_input(api: Api) -> None:
    auto, _ = _automation_with_events(api, 1)
    path = f"/automations/{auto['id']}/events/replay"
    for bad, field in (
        ({"status": ["bogus"]}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"dry_run": "yes"}, "dry_run"),
        ({"limit": 5}, "limit"),
    ):
        resp = api.post(path, bad)
        assert resp.status_code == 400, bad
        assert resp.get_json()["field"].split(".")[0] == field, resp.get_json()
    assert api.post(f"/automations/{uuid.uuid4()}/events/replay", {}).status_code == 404
