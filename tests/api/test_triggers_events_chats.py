"""Triggers (secrets, regenerate, validation), events, dry run and chats."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from shared.models import AuditLog, AutomationTrigger
from shared.triggers.signatures import standard_form
from tests import factories as f
from tests.api.conftest import PUBLIC_URL, Api, Fixture


def test_create_webhook_trigger_shows_secret_once(api: Api) -> None:
    auto = api.create_automation()
    t = api.create_trigger(auto["id"], filter={"action": "opened"}, label_paths={"pr": "number"})
    assert t["webhook_url"] == f"{PUBLIC_URL}/api/v1/automations/triggers/{t['id']}/webhook"
    assert len(t["webhook_secret"]) == 64
    assert t["webhook_secret_standard"] == standard_form(t["webhook_secret"])
    assert t["filter"] == {"action": "opened"} and t["label_paths"] == {"pr": "number"}
    listed = api.get(f"/automations/{auto['id']}/triggers").get_json()
    assert listed["next_cursor"] is None
    assert [x["id"] for x in listed["items"]] == [t["id"]]
    text = str(listed) + str(api.get(f"/automations/{auto['id']}/triggers/{t['id']}").get_json())
    assert t["webhook_secret"] not in text and "whsec_" not in text
    assert "webhook_secret" not in listed["items"][0]


def test_create_cron_trigger(api: Api) -> None:
    auto = api.create_automation()
    t = api.create_trigger(auto["id"], type="cron", cron_schedule="CRON_TZ=Europe/Berlin 0 9 * * 1")
    assert t["webhook_secret"] is None and t["webhook_url"] is None
    assert t["next_fire_at"] is None  # the automation is disabled
    api.patch(f"/automations/{auto['id']}", {"status": "preview"})
    got = api.get(f"/automations/{auto['id']}/triggers/{t['id']}").get_json()
    assert got["next_fire_at"] is not None
    resp = api.patch(
        f"/automations/{auto['id']}/triggers/{t['id']}", {"cron_schedule": "*/10 * * * *"}
    )
    assert resp.status_code == 200 and resp.get_json()["next_fire_at"] == "2026-01-15T12:10:00Z"


def test_trigger_validation(api: Api) -> None:
    auto = api.create_automation()
    path = f"/automations/{auto['id']}/triggers"
    cases = [
        ({"type": "email"}, "type"),
        ({}, "type"),
        ({"type": "cron"}, "cron_schedule"),
        ({"type": "cron", "cron_schedule": "61 * * * *"}, "cron_schedule"),
        ({"type": "cron", "cron_schedule": "@reboot"}, "cron_schedule"),
        ({"type": "cron", "cron_schedule": "* * * * *", "filter": {"a": 1}}, "filter"),
        ({"type": "webhook", "cron_schedule": "* * * * *"}, "cron_schedule"),
        ({"type": "webhook", "filter": "x"}, "filter"),
        ({"type": "webhook", "filter": {"a..b[": 1}}, "filter"),
        ({"type": "webhook", "label_paths": {"x": 1}}, "label_paths"),
        ({"type": "webhook", "webhook_secret": "a" * 64}, "webhook_secret"),
    ]
    for body, name in cases:
        resp = api.post(path, body)
        assert resp.status_code == 400, (body, resp.get_json())
        assert name in resp.get_json()["message"], (body, resp.get_json())
    assert api.session.scalars(select(AutomationTrigger)).all() == []


def test_update_and_delete_trigger(api: Api, seeded: Fixture) -> None:
    aid, tid = seeded.automation.id, seeded.webhook["id"]
    path = f"/automations/{aid}/triggers/{tid}"
    resp = api.patch(path, {"filter": {"action": "closed"}, "label_paths": {"n": "number"}})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["filter"] == {"action": "closed"}
    assert api.patch(path, {"filter": None}).get_json()["filter"] == {}
    assert api.patch(path, {"cron_schedule": "* * * * *"}).status_code == 400
    assert api.patch(path, {"type": "cron"}).status_code == 400
    cron_path = f"/automations/{aid}/triggers/{seeded.cron.id}"
    assert api.patch(cron_path, {"filter": {"a": 1}}).status_code == 400
    assert api.patch(cron_path, {"cron_schedule": "bad"}).status_code == 400
    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404
    assert api.delete(path).status_code == 404
    # a trigger id of another automation is 404 under this one
    other = api.create_automation("other")
    assert api.get(f"/automations/{other['id']}/triggers/{seeded.cron.id}").status_code == 404
    actions = {a.action for a in api.session.scalars(select(AuditLog))}
    assert {"trigger.create", "trigger.update", "trigger.delete"} <= actions


def test_regenerate_secret(api: Api, seeded: Fixture) -> None:
    aid, tid = seeded.automation.id, seeded.webhook["id"]
    path = f"/automations/{aid}/triggers/{tid}/regenerate-secret"
    resp = api.post(path, {"previous_valid_for_seconds": 3600})
    assert resp.status_code == 200, resp.get_json()
    new = resp.get_json()
    assert new["webhook_secret"] != seeded.webhook["webhook_secret"]
    assert new["webhook_secret_standard"] == standard_form(new["webhook_secret"])
    expires = api.clock.now() + timedelta(hours=1)
    assert new["previous_secret_expires_at"].startswith(expires.strftime("%Y-%m-%dT%H:%M:%S"))
    trig = api.session.get(AutomationTrigger, uuid.UUID(tid))
    assert trig is not None and trig.previous_webhook_secret is not None
    # the previous secret is the old one, still decryptable
    from shared.infra.crypto import Keyring

    ring = Keyring(api.app.extensions["automations"].settings.keys)
    assert (
        ring.decrypt(trig.previous_webhook_secret, trig.previous_webhook_secret_key_id)
        == (seeded.webhook["webhook_secret"])
    )
    # no body: the previous secret stops working at once
    resp = api.call("POST", path, api.world.owner)
    assert resp.status_code == 200 and resp.get_json()["previous_secret_expires_at"] is None
    for bad in (-1, 7 * 86400 + 1, "x", True):
        assert api.post(path, {"previous_valid_for_seconds": bad}).status_code == 400, bad
    assert api.post(path, {"previous_valid_for_seconds": 7 * 86400}).status_code == 200
    cron = api.post(f"/automations/{aid}/triggers/{seeded.cron.id}/regenerate-secret", {})
    assert cron.status_code == 400 and cron.get_json()["code"] == "not_a_webhook_trigger"


def test_events_list_filters_and_cursor(api: Api, seeded: Fixture) -> None:
    path = f"/automations/{seeded.automation.id}/events"
    page = api.get(path).get_json()
    assert [e["payload"] for e in page["items"]] == [{"n": 2}, {"n": 1}, {"n": 0}]
    first = page["items"][0]
    assert first["status"] == "created" and first["created_chat_id"] == str(seeded.chat.id)
    assert set(first) >= {"resolved_labels", "matched_chat_id", "error", "trigger_id"}
    created = api.get(path, query_string={"status": "created"}).get_json()["items"]
    assert len(created) == 1
    both = api.get(path, query_string=[("status", "created"), ("status", "filtered")])
    assert len(both.get_json()["items"]) == 3
    one = api.get(path, query_string={"limit": 1}).get_json()
    two = api.get(path, query_string={"limit": 1, "cursor": one["next_cursor"]}).get_json()
    assert two["items"][0]["payload"] == {"n": 1}
    since = first["received_at"]
    assert len(api.get(path, query_string={"since": since}).get_json()["items"]) == 1
    assert len(api.get(path, query_string={"until": since}).get_json()["items"]) == 2
    tid = seeded.webhook["id"]
    assert len(api.get(path, query_string={"trigger_id": tid}).get_json()["items"]) == 3
    other = str(uuid.uuid4())
    assert api.get(path, query_string={"trigger_id": other}).get_json()["items"] == []
    for bad in ({"status": "bogus"}, {"since": "yesterday"}, {"since": "2026-01-01T00:00:00"}):
        assert api.get(path, query_string=bad).status_code == 400, bad
    # events are never written through the API
    assert api.post(path, {"status": "created"}).status_code == 405


def test_dry_run(api: Api, seeded: Fixture) -> None:
    path = f"/automations/{seeded.automation.id}/test"
    payload = {"repository": {"full_name": "acme/api"}, "action": "opened"}
    resp = api.post(path, {"payload": payload})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {
        "filter_matched": True,
        "event_type_matched": None,
        "resolved_labels": {"repo": "acme/api"},
        "existing_chat_id": str(seeded.chat.id),
        "would_create_new_chat": False,
    }
    resp = api.post(path, {"payload": payload, "filter": {"action": "closed"}})
    assert resp.get_json()["filter_matched"] is False
    resp = api.post(path, {"payload": {"repository": {"full_name": "x/y"}}})
    assert resp.get_json()["would_create_new_chat"] is True
    assert api.post(path, {"payload": payload, "filter": {"a..b[": 1}}).status_code == 400
    assert api.post(path, {}).status_code == 400
    resp = api.post(path, {"payload": payload, "trigger_id": str(uuid.uuid4())})
    assert resp.status_code == 404
    # read access suffices; nothing was written
    assert (
        api.post(path, {"payload": payload}, who=api.world.narrow["automation:read"]).status_code
        == 200
    )
    assert len(api.get(f"/automations/{seeded.automation.id}/events").get_json()["items"]) == 3


def test_chats_list_and_show(api: Api, seeded: Fixture) -> None:
    s, clock, w = api.session, api.clock, api.world
    archived = f.chat(
        s, clock, w.owner.user, w.org_a.id, labels={"repo": "acme/web"}, archived=True
    )
    f.chat(s, clock, w.other.user, w.org_a.id, labels={"repo": "acme/api"})  # not the owner's
    s.flush()
    ids = lambda **q: [c["id"] for c in api.get("/chats", query_string=q).get_json()["items"]]  # noqa: E731
    assert sorted(ids()) == sorted([str(seeded.chat.id), str(archived.id)])
    assert ids(label="repo:acme/api") == [str(seeded.chat.id)]
    assert ids(label="repo:acme/nope") == []
    assert ids(archived="true") == [str(archived.id)]
    assert ids(archived="false") == [str(seeded.chat.id)]
    assert ids(automation_id=str(seeded.automation.id)) == [str(seeded.chat.id)]
    assert api.get("/chats", query_string={"label": "nocolon"}).status_code == 400
    detail = api.get(f"/chats/{seeded.chat.id}").get_json()
    assert [m["content"] for m in detail["messages"]] == ["first"]
    assert detail["labels"] == {"repo": "acme/api"}
    assert api.get(f"/chats/{uuid.uuid4()}").status_code == 404
    # org-admins see the whole organization's chats
    admin_ids = [c["id"] for c in api.get("/chats", who=w.admin_a).get_json()["items"]]
    assert len(admin_ids) == 3
