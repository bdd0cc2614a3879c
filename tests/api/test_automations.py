"""Automations CRUD, validation, pagination, audit log and /users/me."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from shared.models import AuditLog, Automation, AutomationStatus
from tests.api.conftest import Api, Fixture


def test_users_me(api: Api) -> None:
    body = api.get("/users/me").get_json()
    assert body["email"] == api.world.owner.user.email
    assert body["site_role"] == "member"
    assert body["organizations"] == [
        {"id": str(api.world.org_a.id), "name": api.world.org_a.name, "role": "member"}
    ]
    assert body["scopes"] == ["*"]
    site = api.get("/users/me", who=api.world.site).get_json()
    assert site["site_role"] == "site-admin" and site["organizations"] == []


def test_missing_and_bad_tokens_are_401_json(api: Api) -> None:
    resp = api.call("GET", "/users/me", None)
    assert resp.status_code == 401
    assert resp.get_json()["code"] == "unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = api.call("GET", "/users/me", None, headers={"Authorization": "Basic abc"})
    assert resp.status_code == 401 and "Bearer" in resp.get_json()["message"]
    resp = api.call("GET", "/users/me", None, headers={"Authorization": "Bearer ca_nope"})
    assert resp.status_code == 401 and resp.get_json()["code"] == "invalid_token"


def test_revoked_and_expired_tokens(api: Api) -> None:
    from shared.accounts.tokens import hash_token
    from shared.models import ApiKey

    key = api.session.scalar(
        select(ApiKey).where(ApiKey.token_hash == hash_token(api.world.owner.token))
    )
    assert key is not None
    key.expires_at = api.clock.now()
    api.session.flush()
    assert api.get("/users/me").status_code == 401
    key.expires_at = None
    key.revoked_at = api.clock.now()
    api.session.flush()
    assert api.get("/users/me").status_code == 401


def test_create_defaults_and_audit(api: Api) -> None:
    data = api.create_automation("nightly", description="d", allowed_tools=["grep", "grep"])
    assert data["status"] == "disabled"
    assert data["max_chat_creates_per_hour"] == 10 and data["max_messages_per_hour"] == 60
    assert data["owner_id"] == str(api.world.owner.user.id)
    assert data["allowed_tools"] == ["grep"]
    assert data["created_at"].startswith("2026-01-15T12:00:00")
    log = api.session.scalars(select(AuditLog).where(AuditLog.action == "automation.create"))
    assert [entry.resource_id for entry in log] == [uuid.UUID(data["id"])]


def test_create_validation_errors_name_the_field(api: Api) -> None:
    org = str(api.world.org_a.id)
    cases = [
        ({"organization_id": org}, "name"),
        ({"name": "x"}, "organization_id"),
        ({"name": "   ", "organization_id": org}, "name"),
        ({"name": "x", "organization_id": org, "max_chat_creates_per_hour": 0}, "max_chat"),
        ({"name": "x", "organization_id": org, "max_messages_per_hour": 1001}, "max_messages"),
        ({"name": "x", "organization_id": org, "bogus": 1}, "bogus"),
        ({"name": "x", "organization_id": org, "status": "active"}, "status"),
        ({"name": "x\x00", "organization_id": org}, "name"),
        ({"name": "x", "organization_id": "not-a-uuid"}, "organization_id"),
    ]
    for body, fieldname in cases:
        resp = api.post("/automations", body)
        assert resp.status_code == 400, (body, resp.get_json())
        err = resp.get_json()
        assert fieldname in err["message"], (body, err)
        assert set(err) == {"code", "message", "field"}
    assert (
        api.post("/automations", {"name": "x", "organization_id": org, "bogus": 1}).get_json()[
            "code"
        ]
        == "unknown_field"
    )


def test_invalid_json_and_non_object(api: Api) -> None:
    resp = api.call(
        "POST",
        "/automations",
        api.world.owner,
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 400 and resp.get_json()["code"] == "invalid_json"
    resp = api.post("/automations", [1, 2])
    assert resp.status_code == 400
    resp = api.call("POST", "/automations", api.world.owner, data=b"", headers={})
    assert resp.status_code == 400
    resp = api.call(
        "POST", "/automations", api.world.owner, data=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert resp.status_code == 415


def test_body_too_large_is_413(api: Api) -> None:
    limit = max(api.app.extensions["automations"].settings.max_body_bytes, 256 * 1024)
    big = {"name": "x", "organization_id": str(api.world.org_a.id), "description": "a" * limit}
    resp = api.post("/automations", big)
    assert resp.status_code == 413 and resp.get_json()["code"] == "payload_too_large"


def test_duplicate_name_is_409_per_owner_and_org(api: Api) -> None:
    api.create_automation("dup")
    resp = api.post("/automations", {"name": "dup", "organization_id": str(api.world.org_a.id)})
    assert resp.status_code == 409 and resp.get_json()["code"] == "name_taken"
    # another owner may use the same name
    resp = api.post(
        "/automations",
        {"name": "dup", "organization_id": str(api.world.org_a.id)},
        who=api.world.other,
    )
    assert resp.status_code == 201
    # rename onto an existing name
    second = api.create_automation("second")
    resp = api.patch(f"/automations/{second['id']}", {"name": "dup"})
    assert resp.status_code == 409


def test_create_in_foreign_org_is_404(api: Api) -> None:
    resp = api.post("/automations", {"name": "x", "organization_id": str(api.world.org_b.id)})
    assert resp.status_code == 404 and "organization_id" in resp.get_json()["message"]
    resp = api.post("/automations", {"name": "x", "organization_id": str(uuid.uuid4())})
    assert resp.status_code == 404
    # site-admins may create anywhere
    resp = api.post(
        "/automations",
        {"name": "x", "organization_id": str(api.world.org_b.id)},
        who=api.world.site,
    )
    assert resp.status_code == 201


def test_get_update_delete(api: Api, seeded: Fixture) -> None:
    aid = seeded.automation.id
    assert api.get(f"/automations/{aid}").get_json()["name"] == "deploys"
    api.clock.advance(minutes=5)
    resp = api.patch(
        f"/automations/{aid}",
        {"status": "active", "max_messages_per_hour": 5, "model_config_id": None},
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "active" and body["max_messages_per_hour"] == 5
    assert body["updated_at"] > body["created_at"]
    # the cron trigger is scheduled once the automation is active
    api.session.refresh(seeded.cron)
    assert seeded.cron.next_fire_at is not None
    assert api.patch(f"/automations/{aid}", {"status": "disabled"}).status_code == 200
    api.session.refresh(seeded.cron)
    assert seeded.cron.next_fire_at is None
    for bad, name in (
        ({"status": "paused"}, "status"),
        ({"max_chat_creates_per_hour": 0}, "max_chat_creates_per_hour"),
        ({"name": None}, "name"),
        ({"id": str(uuid.uuid4())}, "id"),
    ):
        resp = api.patch(f"/automations/{aid}", bad)
        assert resp.status_code == 400, (bad, resp.get_json())
        assert name in resp.get_json()["message"]
    actions = [
        a.action
        for a in api.session.scalars(
            select(AuditLog).where(AuditLog.resource_id == aid).order_by(AuditLog.created_at)
        )
    ]
    assert actions.count("automation.update") == 2
    resp = api.patch(f"/automations/{aid}", {"model_config_id": str(uuid.uuid4())})
    assert resp.status_code == 404 and "model_config_id" in resp.get_json()["message"]
    assert api.delete(f"/automations/{aid}").status_code == 204
    assert api.session.get(Automation, aid) is None
    assert api.get(f"/automations/{aid}").status_code == 404
    assert api.delete(f"/automations/{aid}").status_code == 404


def test_malformed_ids_are_404(api: Api) -> None:
    for path in ("/automations/nope", "/automations/nope/triggers", "/chats/123"):
        resp = api.get(path)
        assert resp.status_code == 404 and resp.get_json()["code"] == "not_found"


def test_list_pagination_and_filters(api: Api) -> None:
    ids = []
    for i in range(7):
        ids.append(api.create_automation(f"a{i}")["id"])  # same created_at: ties on the id
    seen: list[str] = []
    cursor = None
    while True:
        q = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/automations", query_string=q).get_json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 7
    assert (
        api.get("/automations", query_string={"name": "a3"}).get_json()["items"][0]["id"] == ids[3]
    )
    assert api.get("/automations", query_string={"status": "active"}).get_json()["items"] == []
    for bad in (
        {"limit": 0},
        {"limit": 201},
        {"cursor": "garbage"},
        {"bogus": 1},
        {"status": "nope"},
    ):
        resp = api.get("/automations", query_string=bad)
        assert resp.status_code == 400, (bad, resp.get_json())
    # a cursor from another list is rejected
    page = api.get("/automations", query_string={"limit": 1}).get_json()
    assert page["next_cursor"]
    resp = api.get("/chats", query_string={"cursor": page["next_cursor"]})
    assert resp.status_code == 400 and resp.get_json()["code"] == "invalid_cursor"


def test_org_listing_for_admins_and_members(api: Api) -> None:
    mine = api.create_automation("mine")
    api.post(
        "/automations",
        {"name": "theirs", "organization_id": str(api.world.org_a.id)},
        who=api.world.other,
    )
    org = {"organization_id": str(api.world.org_a.id)}
    names = lambda who: sorted(  # noqa: E731
        i["name"] for i in api.get("/automations", who=who, query_string=org).get_json()["items"]
    )
    assert names(api.world.owner) == ["mine"]
    assert names(api.world.admin_a) == ["mine", "theirs"]
    assert names(api.world.site) == ["mine", "theirs"]
    assert api.get("/automations", who=api.world.admin_b, query_string=org).status_code == 404
    # without organization_id: the caller's own only
    assert api.get("/automations", who=api.world.admin_a).get_json()["items"] == []
    assert api.get("/automations").get_json()["items"][0]["id"] == mine["id"]


def test_status_values(api: Api) -> None:
    data = api.create_automation()
    for status in AutomationStatus:
        resp = api.patch(f"/automations/{data['id']}", {"status": status.value})
        assert resp.get_json()["status"] == status.value
