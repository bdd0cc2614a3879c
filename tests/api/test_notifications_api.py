"""SPEC 11 "Notifications" over the API on real PostgreSQL: everyone lists and marks read
only their own (someone else's is 404, even for admins); unread filter; cursor."""

from __future__ import annotations

import uuid

import pytest

from shared.models import Notification
from tests.api.conftest import Api, Principal

pytestmark = [pytest.mark.postgres]


def _notify(api: Api, who: Principal, title: str = "t") -> Notification:
    api.clock.advance(seconds=1)
    row = Notification(
        id=uuid.uuid4(),
        user_id=who.user.id,
        kind="chat.auto_archive",
        title=title,
        body="body",
        details={"chat_ids": []},
        created_at=api.clock.now(),
    )
    api.session.add(row)
    api.session.flush()
    return row


def _titles(api: Api, who: Principal, query: str = "") -> list[str]:
    resp = api.get("/notifications" + query, who=who)
    assert resp.status_code == 200, resp.get_json()
    return [n["title"] for n in resp.get_json()["items"]]


def test_only_your_own_newest_first(api: Api) -> None:
    w = api.world
    _notify(api, w.owner, "first")
    _notify(api, w.other, "not yours")
    _notify(api, w.owner, "second")
    assert _titles(api, w.owner) == ["second", "first"]
    assert _titles(api, w.other) == ["not yours"]
    assert _titles(api, w.site) == []  # admins too see only their own
    # any token of the user will do
    assert _titles(api, w.narrow["chat:read"]) == ["second", "first"]
    item = api.get("/notifications").get_json()["items"][0]
    assert item["kind"] == "chat.auto_archive" and item["read_at"] is None
    assert item["email_status"] == "none" and item["details"] == {"chat_ids": []}


def test_mark_read_and_the_unread_filter(api: Api) -> None:
    w = api.world
    first = _notify(api, w.owner, "first")
    _notify(api, w.owner, "second")
    read_at = api.clock.advance(minutes=5)
    resp = api.post(f"/notifications/{first.id}/read")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["read_at"] is not None
    assert _titles(api, w.owner, "?unread=true") == ["second"]
    assert _titles(api, w.owner, "?unread=false") == ["second", "first"]
    # idempotent: the first read time stays
    api.clock.advance(minutes=5)
    again = api.post(f"/notifications/{first.id}/read").get_json()
    assert again["read_at"] == resp.get_json()["read_at"]
    api.session.expire_all()
    row = api.session.get(Notification, first.id)
    assert row is not None and row.read_at == read_at


def test_someone_elses_notification_is_404(api: Api) -> None:
    w = api.world
    theirs = _notify(api, w.other)
    for who in (w.owner, w.admin_a, w.site):
        resp = api.post(f"/notifications/{theirs.id}/read", who=who)
        assert resp.status_code == 404 and resp.get_json()["field"] == "notification_id"
    api.session.expire_all()
    row = api.session.get(Notification, theirs.id)
    assert row is not None and row.read_at is None
    assert api.post(f"/notifications/{uuid.uuid4()}/read").status_code == 404


def test_pages_with_a_cursor(api: Api) -> None:
    for i in range(5):
        _notify(api, api.world.owner, f"n{i}")
    seen: list[str] = []
    cursor = None
    while True:
        resp = api.get("/notifications?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        body = resp.get_json()
        seen += [n["title"] for n in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["n4", "n3", "n2", "n1", "n0"]
