"""SPEC 11 "Site config" over the API on real PostgreSQL: anyone signed in reads it, only
site-admins change it (audited), bad values are a 400 naming the field."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.models import AuditLog, SiteConfig
from tests.api.conftest import Api

pytestmark = [pytest.mark.postgres]


def _entries(api: Api) -> list[AuditLog]:
    return list(
        api.session.scalars(select(AuditLog).where(AuditLog.action == "site_config.update"))
    )


def test_defaults_are_readable_by_anyone_signed_in(api: Api) -> None:
    w = api.world
    for who in (w.owner, w.other, w.admin_b, w.site, w.narrow["chat:read"]):
        resp = api.get("/site-config", who=who)
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json() == {"auto_archive_days": 0, "chat_retention_days": 30}
    assert api.client.get("/api/v1/site-config").status_code == 401


def test_site_admin_changes_it_and_it_is_audited(api: Api) -> None:
    w = api.world
    resp = api.call("PUT", "/site-config", w.site, json={"auto_archive_days": 90})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"auto_archive_days": 90, "chat_retention_days": 30}
    resp = api.call("PUT", "/site-config", w.site, json={"chat_retention_days": 0})
    assert resp.get_json() == {"auto_archive_days": 90, "chat_retention_days": 0}
    assert api.get("/site-config").get_json() == resp.get_json()
    entries = _entries(api)
    assert {str(e.details["new"]) for e in entries} == {
        str({"auto_archive_days": 90}),
        str({"chat_retention_days": 0}),
    }
    assert {str(e.details["old"]) for e in entries} == {
        str({"auto_archive_days": 0}),
        str({"chat_retention_days": 30}),
    }
    assert all(e.actor_id == w.site.user.id and e.organization_id is None for e in entries)


@pytest.mark.parametrize("who", ["owner", "admin_a"])
def test_put_by_a_non_admin_is_403_and_changes_nothing(api: Api, who: str) -> None:
    resp = api.call("PUT", "/site-config", getattr(api.world, who), json={"auto_archive_days": 7})
    assert resp.status_code == 403 and resp.get_json()["code"] == "forbidden"
    assert api.session.get(SiteConfig, "auto_archive_days") is None
    assert _entries(api) == []


def test_put_with_a_narrow_token_of_a_site_admin_is_403(api: Api) -> None:
    from shared import accounts
    from tests.api.conftest import Principal

    _, token = accounts.create_token(
        api.session, api.clock, api.world.site.user.email, ["chat:read"]
    )
    narrow = Principal(api.world.site.user, token)
    resp = api.call("PUT", "/site-config", narrow, json={"auto_archive_days": 7})
    assert resp.status_code == 403 and resp.get_json()["code"] == "insufficient_scope"


@pytest.mark.parametrize("value", [-1, 4000, "x", None, 1.5, True])
@pytest.mark.parametrize("field", ["auto_archive_days", "chat_retention_days"])
def test_bad_values_are_a_400_naming_the_field(api: Api, field: str, value: object) -> None:
    resp = api.call("PUT", "/site-config", api.world.site, json={field: value})
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["field"] == field
    assert field in resp.get_json()["message"]
    assert api.get("/site-config").get_json() == {"auto_archive_days": 0, "chat_retention_days": 30}
    assert _entries(api) == []


def test_limits_are_accepted(api: Api) -> None:
    body = {"auto_archive_days": 3650, "chat_retention_days": 0}
    resp = api.call("PUT", "/site-config", api.world.site, json=body)
    assert resp.status_code == 200 and resp.get_json() == body
    resp = api.call("PUT", "/site-config", api.world.site, json={"unknown": 1})
    assert resp.status_code == 400 and resp.get_json()["field"] == "unknown"
