"""SPEC 11's chat API on real PostgreSQL: list filters, PATCH (title, pin, pause/resume,
archive/unarchive cascading to descendants), DELETE (cascade; events keep their status with
null chat references), a chat's events, 409 on writing to an archived chat, and roles."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.chats import lifecycle
from shared.infra.clock import FrozenClock
from shared.infra.db.uow import Database
from shared.models import AuditLog, AutomationEvent, Chat, ChatMessage, ChatStatus
from shared.models.enums import MessageRole
from tests import factories as f
from tests.api.conftest import Api, Fixture
from tests.cron.helpers import Collector

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def published(api: Api) -> Iterator[Collector]:
    """What the API's units of work publish after commit (``run_chat``'s chat ids)."""
    gw = api.app.extensions["automations"]
    saved = gw.runtime.db
    collector = Collector()
    gw.runtime.db = Database(saved.bind, collector)  # type: ignore[arg-type]
    try:
        yield collector
    finally:
        gw.runtime.db = saved


def _chat(api: Api, **kw: Any) -> Chat:
    w = api.world
    return f.chat(api.session, api.clock, w.owner.user, w.org_a.id, **kw)


def _family(api: Api) -> tuple[Chat, Chat, Chat, Chat]:
    """root → child → grandchild, and a second child of the root."""
    root = _chat(api, title="root")
    child = _chat(api, title="child", parent_chat_id=root.id, root_chat_id=root.id)
    grandchild = _chat(api, title="grand", parent_chat_id=child.id, root_chat_id=root.id)
    sibling = _chat(api, title="sibling", parent_chat_id=root.id, root_chat_id=root.id)
    return root, child, grandchild, sibling


def _state(api: Api, *chats: Chat) -> list[bool]:
    api.session.expire_all()
    return [bool(api.session.get(Chat, c.id).archived) for c in chats]  # type: ignore[union-attr]


def _audit(api: Api, action: str, resource_id: uuid.UUID) -> list[AuditLog]:
    return list(
        api.session.scalars(
            select(AuditLog).where(AuditLog.action == action, AuditLog.resource_id == resource_id)
        )
    )


# --- list filters -----------------------------------------------------------------------------


def test_list_filters_status_pinned_archived_and_title(api: Api) -> None:
    a = _chat(api, title="Deploy 100% done", status=ChatStatus.PENDING, pin_order=2)
    b = _chat(api, title="deploy_x", status=ChatStatus.ERROR)
    c = _chat(api, title="other", archived=True, archived_at=api.clock.now())

    def ids(query: str) -> set[str]:
        resp = api.get("/chats?" + query)
        assert resp.status_code == 200, resp.get_json()
        return {item["id"] for item in resp.get_json()["items"]}

    assert ids("status=pending") == {str(a.id)}
    assert ids("status=pending&status=error") == {str(a.id), str(b.id)}
    assert ids("pinned=true") == {str(a.id)}
    assert ids("pinned=false") == {str(b.id), str(c.id)}
    assert ids("archived=true") == {str(c.id)}
    assert ids("q=DEPLOY") == {str(a.id), str(b.id)}
    assert ids("q=100%25") == {str(a.id)}  # % is literal, not a wildcard
    assert ids("q=y_") == {str(b.id)}  # so is _
    assert ids("q=0%25 d") == {str(a.id)}
    resp = api.get("/chats?status=bogus")
    assert resp.status_code == 400 and resp.get_json()["field"] == "status.0"
    item = next(i for i in api.get("/chats").get_json()["items"] if i["id"] == str(a.id))
    assert item["pin_order"] == 2 and item["archived_at"] is None


def test_list_pages_with_a_cursor(api: Api) -> None:
    made = set()
    for _ in range(5):
        api.clock.advance(seconds=1)
        made.add(str(_chat(api).id))
    seen: list[str] = []
    cursor = None
    while True:
        resp = api.get("/chats?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        body = resp.get_json()
        seen += [i["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert set(seen) == made and len(seen) == 5


# --- archive / unarchive ------------------------------------------------------------------------


def test_archive_and_unarchive_cascade_to_descendants(api: Api) -> None:
    root, child, grandchild, sibling = _family(api)
    other = _chat(api, title="unrelated")
    api.clock.advance(hours=1)
    resp = api.patch(f"/chats/{root.id}", {"archived": True})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["archived"] is True and body["archived_at"] is not None
    assert _state(api, root, child, grandchild, sibling, other) == [True] * 4 + [False]
    for c in (root, child, grandchild, sibling):
        row = api.session.get(Chat, c.id)
        assert row is not None and row.archived_at == api.clock.now()
    [entry] = _audit(api, "chat.archive", root.id)
    assert entry.actor_id == api.world.owner.user.id
    assert entry.organization_id == api.world.org_a.id
    assert entry.details == {"reason": "manual", "descendants": 3}

    # again: nothing changes, no second entry
    assert api.patch(f"/chats/{root.id}", {"archived": True}).status_code == 200
    assert len(_audit(api, "chat.archive", root.id)) == 1

    # a sub-chat of an archived chat cannot be unarchived alone
    resp = api.patch(f"/chats/{child.id}", {"archived": False})
    assert resp.status_code == 409 and resp.get_json()["code"] == "parent_archived"

    resp = api.patch(f"/chats/{root.id}", {"archived": False})
    assert resp.status_code == 200 and resp.get_json()["archived_at"] is None
    assert _state(api, root, child, grandchild, sibling) == [False] * 4
    [entry] = _audit(api, "chat.unarchive", root.id)
    assert entry.details["descendants"] == 3


def test_archiving_a_sub_chat_cascades_to_its_subtree_only(api: Api) -> None:
    root, child, grandchild, sibling = _family(api)
    resp = api.patch(f"/chats/{child.id}", {"archived": True})
    assert resp.status_code == 200, resp.get_json()
    assert _state(api, root, child, grandchild, sibling) == [False, True, True, False]
    # archiving the root later brings the rest along; unarchiving restores everyone
    api.patch(f"/chats/{root.id}", {"archived": True})
    assert _state(api, root, child, grandchild, sibling) == [True] * 4
    [entry] = _audit(api, "chat.archive", root.id)
    assert entry.details["descendants"] == 1  # the sibling; the others were archived
    api.patch(f"/chats/{root.id}", {"archived": False})
    assert _state(api, root, child, grandchild, sibling) == [False] * 4


def test_writing_to_an_archived_chat_is_409(api: Api, published: Collector) -> None:
    chat = _chat(api, status=ChatStatus.ERROR)
    api.patch(f"/chats/{chat.id}", {"archived": True})
    resp = api.post(f"/chats/{chat.id}/messages", {"content": "hello?"})
    assert resp.status_code == 409
    assert resp.get_json()["code"] == "chat_archived"
    assert resp.get_json()["field"] == "chat_id"
    resp = api.post(f"/chats/{chat.id}/retry")
    assert resp.status_code == 409 and resp.get_json()["code"] == "chat_archived"
    resp = api.patch(f"/chats/{chat.id}", {"paused": True})
    assert resp.status_code == 409 and resp.get_json()["code"] == "chat_archived"
    n = api.session.scalar(select(func.count()).where(ChatMessage.chat_id == chat.id))
    assert n == 0 and published.published == []
    # unarchived, it takes messages again
    assert api.patch(f"/chats/{chat.id}", {"archived": False}).status_code == 200
    resp = api.post(f"/chats/{chat.id}/messages", {"content": "hello?"})
    assert resp.status_code == 201
    assert published.published == [str(chat.id)]


# --- pause / resume, title, pin -----------------------------------------------------------------


def test_pause_and_resume(api: Api, published: Collector) -> None:
    chat = _chat(api, status=ChatStatus.WAITING)
    f.message(api.session, api.clock, chat, "question")
    api.clock.advance(seconds=1)
    f.message(api.session, api.clock, chat, "answer", role=MessageRole.ASSISTANT)
    api.clock.advance(seconds=1)
    resp = api.patch(f"/chats/{chat.id}", {"paused": True})
    assert resp.status_code == 200 and resp.get_json()["status"] == "paused"
    # a message to a paused chat waits for the resume
    assert api.post(f"/chats/{chat.id}/messages", {"content": "more"}).status_code == 201
    assert published.published == []
    resp = api.patch(f"/chats/{chat.id}", {"paused": False})
    assert resp.get_json()["status"] == "pending"
    assert published.published == [str(chat.id)]

    # nothing unanswered: resume → waiting, nothing published
    answered = _chat(api, status=ChatStatus.WAITING)
    f.message(api.session, api.clock, answered, "q")
    api.clock.advance(seconds=1)
    f.message(api.session, api.clock, answered, "a", role=MessageRole.ASSISTANT)
    api.clock.advance(seconds=1)
    f.message(api.session, api.clock, answered, "deleted q", deleted=True)
    api.patch(f"/chats/{answered.id}", {"paused": True})
    resp = api.patch(f"/chats/{answered.id}", {"paused": False})
    assert resp.get_json()["status"] == "waiting"
    assert published.published == [str(chat.id)]

    # resuming a chat that is not paused changes nothing
    assert api.patch(f"/chats/{answered.id}", {"paused": False}).get_json()["status"] == "waiting"


def test_pausing_a_running_chat_takes_the_claim_away(api: Api) -> None:
    chat = _chat(api, status=ChatStatus.RUNNING, runner_id="r1", heartbeat_at=api.clock.now())
    resp = api.patch(f"/chats/{chat.id}", {"paused": True})
    assert resp.status_code == 200 and resp.get_json()["status"] == "paused"
    api.session.expire_all()
    row = api.session.get(Chat, chat.id)
    assert row is not None and row.runner_id is None and row.heartbeat_at is None


def test_unarchive_and_resume_in_one_request(api: Api, published: Collector) -> None:
    chat = _chat(api, status=ChatStatus.PAUSED, archived=True, archived_at=api.clock.now())
    f.message(api.session, api.clock, chat, "unanswered")
    resp = api.patch(f"/chats/{chat.id}", {"archived": False, "paused": False})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["status"] == "pending" and resp.get_json()["archived"] is False
    assert published.published == [str(chat.id)]


def test_title_and_pin(api: Api) -> None:
    chat = _chat(api, title="old")
    resp = api.patch(f"/chats/{chat.id}", {"title": "new title", "pin_order": 3})
    assert resp.status_code == 200
    assert resp.get_json()["title"] == "new title" and resp.get_json()["pin_order"] == 3
    assert api.patch(f"/chats/{chat.id}", {"pin_order": 0}).get_json()["pin_order"] == 0
    for body, field in (
        ({"title": None}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x\u0000"}, "title"),
        ({"pin_order": -1}, "pin_order"),
        ({"pin_order": "1"}, "pin_order"),
        ({"archived": None}, "archived"),
        ({"paused": 1}, "paused"),
        ({"color": "red"}, "color"),
    ):
        resp = api.patch(f"/chats/{chat.id}", body)
        assert resp.status_code == 400, (body, resp.get_json())
        assert resp.get_json()["field"] == field, (body, resp.get_json())


# --- delete -------------------------------------------------------------------------------------


def test_delete_cascades_and_events_keep_their_status(api: Api, seeded: Fixture) -> None:
    s, clock = api.session, api.clock
    root = seeded.chat
    child = _chat(api, parent_chat_id=root.id, root_chat_id=root.id)
    f.message(s, clock, child, "child message")
    continued = f.event(s, clock, seeded.automation, status="continued", matched_chat_id=child.id)
    [created] = s.scalars(
        select(AutomationEvent).where(AutomationEvent.created_chat_id == root.id)
    ).all()
    keep = _chat(api)
    f.message(s, clock, keep, "kept")
    root_id, child_id = root.id, child.id

    resp = api.delete(f"/chats/{root_id}")
    assert resp.status_code == 204, resp.get_json()
    s.expire_all()
    assert s.get(Chat, root_id) is None and s.get(Chat, child_id) is None
    gone = s.scalar(select(func.count()).where(ChatMessage.chat_id.in_([root_id, child_id])))
    assert gone == 0
    assert s.scalar(select(func.count()).where(ChatMessage.chat_id == keep.id)) == 1
    created_row = s.get(AutomationEvent, created.id)
    continued_row = s.get(AutomationEvent, continued.id)
    assert created_row is not None and continued_row is not None
    assert (created_row.status, created_row.created_chat_id) == ("created", None)
    assert (continued_row.status, continued_row.matched_chat_id) == ("continued", None)
    [entry] = _audit(api, "chat.delete", root_id)
    assert entry.actor_id == api.world.owner.user.id
    assert entry.details["descendants"] == 1
    assert api.get(f"/chats/{root_id}").status_code == 404
    assert api.delete(f"/chats/{root_id}").status_code == 404


# --- events of a chat ---------------------------------------------------------------------------


def test_chat_events_newest_first_with_cursor(api: Api, seeded: Fixture) -> None:
    s, clock = api.session, api.clock
    chat = seeded.chat
    for _ in range(3):
        f.event(
            s,
            clock,
            seeded.automation,
            status="continued",
            matched_chat_id=chat.id,
            received_at=clock.advance(seconds=1),
        )
    other = _chat(api)
    f.event(s, clock, seeded.automation, status="continued", matched_chat_id=other.id)
    expected = [
        str(e.id)
        for e in s.scalars(
            select(AutomationEvent)
            .where(
                (AutomationEvent.created_chat_id == chat.id)
                | (AutomationEvent.matched_chat_id == chat.id)
            )
            .order_by(AutomationEvent.received_at.desc(), AutomationEvent.id.desc())
        )
    ]
    assert len(expected) == 4
    seen: list[str] = []
    cursor = None
    while True:
        resp = api.get(f"/chats/{chat.id}/events?limit=3" + (f"&cursor={cursor}" if cursor else ""))
        assert resp.status_code == 200, resp.get_json()
        seen += [e["id"] for e in resp.get_json()["items"]]
        cursor = resp.get_json()["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert api.get(f"/chats/{chat.id}/events", who=api.world.other).status_code == 404


# --- roles --------------------------------------------------------------------------------------


def test_roles(api: Api) -> None:
    w = api.world
    chat = _chat(api)
    for who in (w.other, w.admin_b):
        assert api.patch(f"/chats/{chat.id}", {"archived": True}, who=who).status_code == 404
        assert api.delete(f"/chats/{chat.id}", who=who).status_code == 404
    resp = api.patch(f"/chats/{chat.id}", {"archived": True}, who=w.narrow["chat:read"])
    assert resp.status_code == 403 and resp.get_json()["code"] == "insufficient_scope"
    assert api.delete(f"/chats/{chat.id}", who=w.narrow["chat:read"]).status_code == 403
    assert _state(api, chat) == [False]
    resp = api.patch(f"/chats/{chat.id}", {"archived": True}, who=w.admin_a)
    assert resp.status_code == 200
    [entry] = _audit(api, "chat.archive", chat.id)
    assert entry.actor_id == w.admin_a.user.id
    assert api.delete(f"/chats/{chat.id}", who=w.site).status_code == 204


# --- the domain functions on both databases (the embedded mode runs on SQLite) ------------------


def test_lifecycle_functions_on_both_databases(any_session: Session, clock: FrozenClock) -> None:
    s = any_session
    org = f.org(s, clock, name=f"o-{uuid.uuid4().hex[:6]}")
    owner = f.user(s, clock, org)
    auto = f.automation(s, clock, owner)

    def chat(**kw: Any) -> Chat:
        return f.chat(s, clock, owner, org.id, **kw)

    root = chat()
    child = chat(parent_chat_id=root.id, root_chat_id=root.id)
    grand = chat(parent_chat_id=child.id, root_chat_id=root.id)
    f.message(s, clock, grand, "deep")
    event = f.event(s, clock, auto, status="created", created_chat_id=grand.id)
    ids = [root.id, child.id, grand.id]

    def archived() -> list[bool]:
        return [bool(s.scalar(select(Chat.archived).where(Chat.id == i))) for i in ids]

    lifecycle.archive_chat(s, clock.now(), None, child.id, archived=True)
    assert archived() == [False, True, True]
    lifecycle.archive_chat(s, clock.now(), None, root.id, archived=True, reason="auto")
    assert archived() == [True, True, True]
    entries = s.scalars(
        select(AuditLog).where(AuditLog.resource_id.in_(ids)).order_by(AuditLog.resource_id)
    ).all()
    assert {(e.action, e.actor_id, e.details["reason"]) for e in entries} == {
        ("chat.archive", None, "manual"),
        ("chat.archive", None, "auto"),
    }
    lifecycle.delete_chat(s, clock.now(), None, root.id)
    s.expire_all()
    assert s.scalar(select(func.count()).select_from(Chat).where(Chat.id.in_(ids))) == 0
    assert s.scalar(select(func.count()).where(ChatMessage.chat_id == ids[2])) == 0
    row = s.get(AutomationEvent, event.id)
    assert row is not None and row.status == "created" and row.created_chat_id is None
