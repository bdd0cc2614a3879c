"""SPEC 8a over the API: the caller's tokens (list, revoke, expiry, last use) and site-admins
listing, deactivating and reactivating users. Bad input is a 4xx naming the field and writes
nothing."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from shared import accounts
from shared.accounts.authz import LAST_USED_RESOLUTION
from shared.models import ApiKey, AuditLog, User
from tests.api.conftest import Api, Principal

TOKEN_FIELDS = {
    "id",
    "name",
    "token_prefix",
    "scopes",
    "created_at",
    "last_used_at",
    "expires_at",
    "revoked_at",
}
USER_FIELDS = {"id", "email", "name", "site_role", "active", "created_at"}


def new_token(api: Api, user: User, scopes: list[str] | None = None, **kw: Any) -> Principal:
    _, token = accounts.create_token(api.session, api.clock, user.email, scopes or ["*"], **kw)
    api.session.flush()
    return Principal(user, token)


def key_of(api: Api, who: Principal) -> ApiKey:
    key = api.session.scalar(
        select(ApiKey).where(ApiKey.token_hash == accounts.hash_token(who.token))
    )
    assert key is not None
    return key


def audit_count(api: Api) -> int:
    return int(api.session.scalar(select(func.count()).select_from(AuditLog)) or 0)


def assert_error(resp: Any, status: int, code: str, field: str | None) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"code", "message", "field"}
    assert (body["code"], body["field"]) == (code, field), body


# Tokens ------------------------------------------------------------------------------------


def test_list_own_tokens_only_metadata(api: Api) -> None:
    w = api.world
    resp = api.get("/tokens")
    assert resp.status_code == 200
    page = resp.get_json()
    items = page["items"]
    # the owner's '*' token and the four narrow ones; nobody else's
    assert len(items) == 5 and page["next_cursor"] is None
    mine = {
        str(k.id)
        for k in api.session.scalars(select(ApiKey).where(ApiKey.user_id == w.owner.user.id))
    }
    assert {i["id"] for i in items} == mine
    for item in items:
        assert set(item) == TOKEN_FIELDS
        key = api.session.get(ApiKey, uuid.UUID(item["id"]))
        assert key is not None and item["token_prefix"] == key.token_prefix
        assert key.token_hash not in resp.get_data(as_text=True)
    text = resp.get_data(as_text=True)
    for p in (w.owner, *w.narrow.values()):
        assert p.token not in text
    assert sorted(sorted(i["scopes"]) for i in items) == sorted([["*"], *([s] for s in w.narrow)])
    # any scope may list its user's tokens
    assert api.get("/tokens", w.narrow["chat:read"]).status_code == 200


def test_list_is_cursor_paginated(api: Api) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        api.clock.advance(seconds=1)
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/tokens", query_string=query).get_json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5


def test_revoke_through_api_then_next_request_is_401(api: Api) -> None:
    w = api.world
    spare = new_token(api, w.owner.user, name="laptop")
    key = key_of(api, spare)
    assert api.get("/users/me", spare).status_code == 200
    before = audit_count(api)

    assert api.delete(f"/tokens/{key.id}").status_code == 204  # with the owner's '*' token
    assert_error(api.get("/users/me", spare), 401, "invalid_token", "Authorization")
    assert api.get("/users/me").status_code == 200  # the other tokens still work
    key = key_of(api, spare)
    assert key.revoked_at == api.clock.now()
    entry = api.session.scalars(select(AuditLog).order_by(AuditLog.created_at.desc())).first()
    assert audit_count(api) == before + 1 and entry is not None
    assert (entry.action, entry.resource_id, entry.actor_id) == (
        "token.revoke",
        key.id,
        w.owner.user.id,
    )

    # hidden by default, listed with include_revoked
    ids = {i["id"] for i in api.get("/tokens").get_json()["items"]}
    assert str(key.id) not in ids
    items = api.get("/tokens?include_revoked=true").get_json()["items"]
    revoked = next(i for i in items if i["id"] == str(key.id))
    assert revoked["revoked_at"] is not None and revoked["name"] == "laptop"

    # revoking again changes nothing
    api.clock.advance(seconds=5)
    assert api.delete(f"/tokens/{key.id}").status_code == 204
    assert key_of(api, spare).revoked_at == datetime.fromisoformat(revoked["revoked_at"])
    assert audit_count(api) == before + 1


def test_a_token_may_revoke_itself_whatever_its_scope(api: Api) -> None:
    narrow = api.world.narrow["chat:read"]
    key = key_of(api, narrow)
    assert api.delete(f"/tokens/{key.id}", narrow).status_code == 204
    assert_error(api.get("/chats", narrow), 401, "invalid_token", "Authorization")


def test_revoking_another_token_needs_the_full_scope(api: Api) -> None:
    w = api.world
    narrow = w.narrow["automation:*"]
    target = key_of(api, w.narrow["chat:read"])
    before = audit_count(api)
    assert_error(api.delete(f"/tokens/{target.id}", narrow), 403, "insufficient_scope", None)
    assert key_of(api, w.narrow["chat:read"]).revoked_at is None
    assert audit_count(api) == before


@pytest.mark.parametrize(
    "token_id",
    [
        "unknown",
        "not-a-uuid",
        "0" * 100,
        "other-users",
    ],
)
def test_revoke_unknown_malformed_or_others_token_is_404(api: Api, token_id: str) -> None:
    w = api.world
    other_key = key_of(api, w.other)
    path_id = {
        "unknown": str(uuid.uuid4()),
        "other-users": str(other_key.id),
    }.get(token_id, token_id)
    before = audit_count(api)
    resp = api.delete(f"/tokens/{path_id}")
    assert_error(resp, 404, "not_found", "token_id")
    assert "permission" not in resp.get_json()["message"].lower()
    assert audit_count(api) == before
    assert key_of(api, w.other).revoked_at is None
    assert api.get("/users/me", w.other).status_code == 200


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ("limit=0", "limit", "validation_error"),
        ("limit=201", "limit", "validation_error"),
        ("include_revoked=maybe", "include_revoked", "validation_error"),
        ("cursor=abc", "cursor", "invalid_cursor"),
        ("user_id=x", "user_id", "unknown_field"),
    ],
)
def test_list_tokens_bad_query(api: Api, query: str, field: str, code: str) -> None:
    assert_error(api.get(f"/tokens?{query}"), 400, code, field)


def test_expired_token_is_refused(api: Api) -> None:
    w = api.world
    expiring = new_token(api, w.owner.user, expires_at=api.clock.now() + timedelta(hours=1))
    assert api.get("/users/me", expiring).status_code == 200
    item = next(
        i
        for i in api.get("/tokens").get_json()["items"]
        if i["id"] == str(key_of(api, expiring).id)
    )
    assert item["expires_at"] is not None
    api.clock.advance(minutes=59, seconds=59)
    assert api.get("/users/me", expiring).status_code == 200
    api.clock.advance(seconds=1)
    assert_error(api.get("/users/me", expiring), 401, "invalid_token", "Authorization")
    # still listed (its expires_at says why it stopped working)
    ids = {i["id"] for i in api.get("/tokens").get_json()["items"]}
    assert str(key_of(api, expiring).id) in ids


def test_token_expiry_must_be_in_the_future(api: Api) -> None:
    with pytest.raises(accounts.AccountError, match="not in the future"):
        accounts.create_token(
            api.session, api.clock, api.world.owner.user.email, expires_at=api.clock.now()
        )


def test_last_used_at_is_maintained_at_its_resolution(api: Api) -> None:
    fresh = new_token(api, api.world.owner.user)
    assert key_of(api, fresh).last_used_at is None
    first = api.clock.now()
    assert api.get("/users/me", fresh).status_code == 200
    assert key_of(api, fresh).last_used_at == first
    api.clock.advance(seconds=LAST_USED_RESOLUTION.total_seconds() - 1)
    assert api.get("/users/me", fresh).status_code == 200
    assert key_of(api, fresh).last_used_at == first  # not rewritten within the resolution
    later = api.clock.advance(seconds=1)
    items = api.get("/tokens", fresh).get_json()["items"]
    assert key_of(api, fresh).last_used_at == later
    item = next(i for i in items if i["id"] == str(key_of(api, fresh).id))
    assert item["last_used_at"] is not None


# Users -------------------------------------------------------------------------------------


def test_site_admin_lists_users(api: Api) -> None:
    w = api.world
    resp = api.get("/users", w.site)
    assert resp.status_code == 200
    items = resp.get_json()["items"]
    by_id = {i["id"]: i for i in items}
    for p in (w.owner, w.other, w.admin_a, w.admin_b, w.site):
        item = by_id[str(p.user.id)]
        assert set(item) == USER_FIELDS
        assert item["email"] == p.user.email and item["active"] is True
    assert by_id[str(w.site.user.id)]["site_role"] == "site-admin"
    # filter and paginate
    assert api.patch(f"/users/{w.other.user.id}", {"active": False}, w.site).status_code == 200
    inactive = api.get("/users?active=false", w.site).get_json()["items"]
    assert [i["id"] for i in inactive] == [str(w.other.user.id)]
    active = {i["id"] for i in api.get("/users?active=true", w.site).get_json()["items"]}
    assert str(w.other.user.id) not in active and str(w.owner.user.id) in active
    page = api.get("/users?limit=2", w.site).get_json()
    assert len(page["items"]) == 2 and page["next_cursor"]


@pytest.mark.parametrize("role", ["owner", "admin_a", "admin_b"])
def test_user_admin_is_invisible_to_non_site_admins(api: Api, role: str) -> None:
    w = api.world
    who = getattr(w, role)
    before = audit_count(api)
    assert_error(api.get("/users", who), 404, "not_found", None)
    resp = api.patch(f"/users/{w.other.user.id}", {"active": False}, who)
    assert_error(resp, 404, "not_found", "user_id")
    assert api.session.get(User, w.other.user.id).active is True  # type: ignore[union-attr]
    assert audit_count(api) == before


def test_user_admin_needs_full_scope_and_a_token(api: Api) -> None:
    w = api.world
    narrow = new_token(api, w.site.user, ["automation:*"])
    assert_error(api.get("/users", narrow), 403, "insufficient_scope", None)
    resp = api.patch(f"/users/{w.other.user.id}", {"active": False}, narrow)
    assert_error(resp, 403, "insufficient_scope", None)
    assert_error(api.call("GET", "/users", None), 401, "unauthorized", "Authorization")
    assert_error(
        api.call("PATCH", f"/users/{w.other.user.id}", None, json={"active": False}),
        401,
        "unauthorized",
        "Authorization",
    )
    assert api.session.get(User, w.other.user.id).active is True  # type: ignore[union-attr]


def test_deactivated_users_tokens_stop_working_at_once(api: Api) -> None:
    w = api.world
    before = audit_count(api)
    assert api.get("/users/me", w.owner).status_code == 200
    resp = api.patch(f"/users/{w.owner.user.id}", {"active": False}, w.site)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert set(body) == USER_FIELDS and body["active"] is False
    for p in (w.owner, *w.narrow.values()):
        assert_error(api.get("/users/me", p), 401, "invalid_token", "Authorization")
    entry = api.session.scalars(
        select(AuditLog).where(AuditLog.resource_id == w.owner.user.id)
    ).one()
    assert (entry.action, entry.actor_id) == ("user.deactivate", w.site.user.id)

    # the same state again changes nothing
    assert api.patch(f"/users/{w.owner.user.id}", {"active": False}, w.site).status_code == 200
    assert audit_count(api) == before + 1

    # reactivated: the tokens work again
    resp = api.patch(f"/users/{w.owner.user.id}", {"active": True}, w.site)
    assert resp.status_code == 200 and resp.get_json()["active"] is True
    assert api.get("/users/me", w.owner).status_code == 200
    assert audit_count(api) == before + 2


def test_site_admin_cannot_deactivate_themself(api: Api) -> None:
    w = api.world
    before = audit_count(api)
    resp = api.patch(f"/users/{w.site.user.id}", {"active": False}, w.site)
    assert_error(resp, 400, "validation_error", "active")
    assert api.session.get(User, w.site.user.id).active is True  # type: ignore[union-attr]
    assert audit_count(api) == before
    assert api.patch(f"/users/{w.site.user.id}", {"active": True}, w.site).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({}, 400, "validation_error", "active"),
        ({"active": "false"}, 400, "validation_error", "active"),
        ({"active": 0}, 400, "validation_error", "active"),
        ({"active": None}, 400, "validation_error", "active"),
        ({"active": False, "email": "x@y.z"}, 400, "unknown_field", "email"),
        ([], 400, "validation_error", None),
    ],
)
def test_update_user_bad_body(api: Api, body: Any, status: int, code: str, field: str) -> None:
    w = api.world
    before = audit_count(api)
    assert_error(api.patch(f"/users/{w.other.user.id}", body, w.site), status, code, field)
    assert api.session.get(User, w.other.user.id).active is True  # type: ignore[union-attr]
    assert audit_count(api) == before


@pytest.mark.parametrize("user_id", ["unknown", "me", "not-a-uuid"])
def test_update_unknown_or_malformed_user_is_404(api: Api, user_id: str) -> None:
    path_id = str(uuid.uuid4()) if user_id == "unknown" else user_id
    before = audit_count(api)
    resp = api.patch(f"/users/{path_id}", {"active": False}, api.world.site)
    assert_error(resp, 404, "not_found", "user_id")
    assert audit_count(api) == before


def test_routes_are_documented(api: Api) -> None:
    paths = api.client.get("/api/v1/openapi.json").get_json()["paths"]
    assert set(paths["/api/v1/tokens"]) == {"get"}
    assert set(paths["/api/v1/tokens/{token_id}"]) == {"delete"}
    assert set(paths["/api/v1/users"]) == {"get"}
    assert set(paths["/api/v1/users/{user_id}"]) == {"patch"}
    token = paths["/api/v1/tokens"]["get"]["responses"]["200"]["content"]["application/json"]
    assert token["schema"]["$ref"].endswith("/TokenPage")
