"""SPEC 11 "Audit log" over the API on real PostgreSQL: site-admins read every entry,
org-admins those of their organizations, anyone else gets 403; filters and the cursor."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from shared import audit
from shared.models import AuditLog
from tests.api.conftest import Api

pytestmark = [pytest.mark.postgres]


def _entry(api: Api, action: str, org: uuid.UUID | None, **kw: object) -> AuditLog:
    api.clock.advance(seconds=1)
    entry = audit.record(
        api.session,
        api.clock,
        actor_id=kw.pop("actor_id", None),  # type: ignore[arg-type]
        organization_id=org,
        action=action,
        resource_type=str(kw.pop("resource_type", "chat")),
        resource_id=kw.pop("resource_id", uuid.uuid4()),  # type: ignore[arg-type]
        details={"n": 1},
    )
    api.session.flush()
    return entry


def _ids(api: Api, query: str = "", who: object = None) -> list[str]:
    resp = api.get("/audit-logs" + query, who=who)  # type: ignore[arg-type]
    assert resp.status_code == 200, resp.get_json()
    return [e["id"] for e in resp.get_json()["items"]]


def test_visibility_by_role(api: Api) -> None:
    w = api.world
    in_a = _entry(api, "chat.archive", w.org_a.id)
    in_b = _entry(api, "chat.delete", w.org_b.id)
    site_wide = _entry(api, "site_config.update", None, resource_type="site_config")
    since = f"?since={(in_a.created_at - timedelta(seconds=1)).isoformat().replace('+00:00', 'Z')}"
    assert _ids(api, since, w.site) == [str(site_wide.id), str(in_b.id), str(in_a.id)]
    assert _ids(api, since, w.admin_a) == [str(in_a.id)]
    assert _ids(api, since, w.admin_b) == [str(in_b.id)]
    for who in (w.owner, w.other):
        resp = api.get("/audit-logs", who=who)
        assert resp.status_code == 403 and resp.get_json()["code"] == "forbidden"
    resp = api.get("/audit-logs", who=w.narrow["chat:read"])
    assert resp.status_code == 403 and resp.get_json()["code"] == "insufficient_scope"
    # an org-admin filtering on another organization sees nothing of it
    assert _ids(api, f"?organization_id={w.org_b.id}", w.admin_a) == []


def test_api_writes_show_up(api: Api) -> None:
    auto = api.create_automation("audited")
    resp = api.get(f"/audit-logs?resource_id={auto['id']}", who=api.world.admin_a)
    [entry] = resp.get_json()["items"]
    assert entry["action"] == "automation.create"
    assert entry["actor_id"] == str(api.world.owner.user.id)
    assert entry["organization_id"] == str(api.world.org_a.id)


def test_filters_and_cursor(api: Api) -> None:
    w = api.world
    target = uuid.uuid4()
    made = [_entry(api, "chat.archive", w.org_a.id, resource_id=target) for _ in range(5)]
    other = _entry(api, "chat.unarchive", w.org_a.id, resource_id=target)
    _entry(api, "automation.update", w.org_a.id, resource_type="automation")
    newest_first = [str(e.id) for e in reversed(made)]
    assert _ids(api, f"?resource_id={target}&action=chat.archive", w.site) == newest_first
    assert _ids(api, f"?resource_id={target}", w.site) == [str(other.id), *newest_first]
    assert str(other.id) not in _ids(api, "?resource_type=automation", w.site)
    since = made[3].created_at.isoformat()
    resp = api.get(
        "/audit-logs", who=w.site, query_string={"since": since, "action": "chat.archive"}
    )
    assert [e["id"] for e in resp.get_json()["items"]] == newest_first[:2]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"resource_id": str(target), "limit": "2"} | ({"cursor": cursor} if cursor else {})
        body = api.get("/audit-logs", who=w.site, query_string=params).get_json()
        seen += [e["id"] for e in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(other.id), *newest_first]
    resp = api.get("/audit-logs?since=yesterday", who=w.site)
    assert resp.status_code == 400 and resp.get_json()["field"] == "since"
