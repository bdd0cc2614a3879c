"""The role matrix on every route: owner, another member of the organization, org-admin of
the organization, org-admin of another organization, site-admin, a token whose scope is too
narrow, a token with just enough scope, and no token. Invisible resources answer 404."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import Api, Fixture, Principal

ROLES = ("owner", "other", "admin_a", "admin_b", "site", "narrow", "scoped", "anon")


@dataclass(frozen=True)
class Route:
    method: str
    path: Callable[[Fixture, Api], str]
    body: Any
    kind: str  # automation-read | automation-write | create | list | chat | chat-list | me
    ok: int = 200


def _a(fx: Fixture, _: Api) -> str:
    return f"/automations/{fx.automation.id}"


def _t(fx: Fixture, _: Api) -> str:
    return f"/automations/{fx.automation.id}/triggers/{fx.webhook['id']}"


ROUTES: dict[str, Route] = {
    "me": Route("GET", lambda fx, api: "/users/me", None, "me"),
    "create": Route(
        "POST",
        lambda fx, api: "/automations",
        lambda api: {"name": "new", "organization_id": str(api.world.org_a.id)},
        "create",
        201,
    ),
    "list": Route(
        "GET", lambda fx, api: f"/automations?organization_id={api.world.org_a.id}", None, "list"
    ),
    "get": Route("GET", _a, None, "automation-read"),
    "update": Route("PATCH", _a, {"description": "changed"}, "automation-write"),
    "delete": Route("DELETE", _a, None, "automation-write", 204),
    "trigger-create": Route(
        "POST",
        lambda fx, api: _a(fx, api) + "/triggers",
        {"type": "webhook"},
        "automation-write",
        201,
    ),
    "trigger-list": Route(
        "GET", lambda fx, api: _a(fx, api) + "/triggers", None, "automation-read"
    ),
    "trigger-get": Route("GET", _t, None, "automation-read"),
    "trigger-update": Route("PATCH", _t, {"label_paths": {}}, "automation-write"),
    "trigger-delete": Route("DELETE", _t, None, "automation-write", 204),
    "regenerate": Route(
        "POST", lambda fx, api: _t(fx, api) + "/regenerate-secret", {}, "automation-write"
    ),
    "events": Route("GET", lambda fx, api: _a(fx, api) + "/events", None, "automation-read"),
    "test": Route(
        "POST", lambda fx, api: _a(fx, api) + "/test", {"payload": {}}, "automation-read"
    ),
    "chats": Route("GET", lambda fx, api: "/chats", None, "chat-list"),
    "chat": Route("GET", lambda fx, api: f"/chats/{fx.chat.id}", None, "chat"),
}

#: per kind: the token scope that is too narrow and the one that is just enough
SCOPES = {
    "automation-read": ("chat:read", "automation:read"),
    "automation-write": ("automation:read", "automation:write"),
    "create": ("automation:read", "automation:*"),
    "list": ("chat:read", "automation:read"),
    "chat": ("automation:*", "chat:read"),
    "chat-list": ("automation:*", "chat:read"),
    "me": ("chat:read", "automation:read"),
}

VISIBLE = {"owner": True, "other": False, "admin_a": True, "admin_b": False, "site": True}


def expected(route: Route, role: str) -> int:
    if role == "anon":
        return 401
    if route.kind == "me":
        return 200
    if role == "narrow":
        return 403
    if role == "scoped":
        return route.ok
    if route.kind == "chat-list":
        return 200
    if route.kind == "create":
        return 404 if role == "admin_b" else route.ok
    if route.kind == "list":
        return 404 if role == "admin_b" else 200
    return route.ok if VISIBLE[role] else 404


def who(api: Api, kind: str, role: str) -> Principal | None:
    w = api.world
    if role == "anon":
        return None
    if role in ("narrow", "scoped"):
        return w.narrow[SCOPES[kind][0 if role == "narrow" else 1]]
    return getattr(w, role)  # type: ignore[no-any-return]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", list(ROUTES))
def test_role_matrix(api: Api, seeded: Fixture, name: str, role: str) -> None:
    route = ROUTES[name]
    body = route.body(api) if callable(route.body) else route.body
    caller = who(api, route.kind, role)
    resp = api.call(route.method, route.path(seeded, api), caller, json=body)
    want = expected(route, role)
    assert resp.status_code == want, resp.get_data(as_text=True)
    if want >= 400:
        err = resp.get_json()
        assert set(err) == {"code", "message", "field"}
        assert {401: "unauthorized", 403: "insufficient_scope", 404: "not_found"}[want] == err[
            "code"
        ]
        if want == 404:  # never leaks what exists
            assert "permission" not in err["message"].lower()
    if route.kind in ("list", "chat-list") and want == 200:
        items = {i["id"] for i in resp.get_json()["items"]}
        target = str(seeded.automation.id if route.kind == "list" else seeded.chat.id)
        visible = role == "scoped" or VISIBLE[role]
        assert (target in items) is visible, (role, items)
