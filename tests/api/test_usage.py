"""Token usage (SPEC 9 "Usage"): ``GET /usage`` sums per organization (grouped by user,
automation or model; members see only their own), the monthly limits set by org-admins
(``PATCH /organizations/<id>`` and ``.../members/<user_id>``), and the issue's demand: with
two organizations, no sum and no limit crosses from one to the other."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from shared.models import AuditLog, OrganizationMember, OrgRole
from shared.runner.errors import UsageLimitExceeded
from shared.usage.service import check_turn_allowed, record_turn_usage
from tests.api.conftest import Api

NOW = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def usage(api: Api) -> dict[str, Any]:
    """Turns in both organizations; the owner is a member of B too (so a leak would show)."""
    w, s = api.world, api.session
    api.clock.set(NOW)
    s.add(
        OrganizationMember(
            organization_id=w.org_b.id,
            user_id=w.owner.user.id,
            role=OrgRole.MEMBER,
            created_at=NOW,
            updated_at=NOW,
        )
    )
    auto_a, auto_b = uuid.uuid4(), uuid.uuid4()

    def turn(org: Any, user: Any, tokens: tuple[int, int], model: str, **kw: Any) -> None:
        record_turn_usage(
            s,
            now=kw.get("at", NOW - timedelta(days=1)),
            organization_id=org.id,
            user_id=user.id,
            automation_id=kw.get("automation_id"),
            chat_id=None,
            model_config_id=None,
            model=model,
            input_tokens=tokens[0],
            output_tokens=tokens[1],
        )

    turn(w.org_a, w.owner.user, (100, 10), "gpt-4o", automation_id=auto_a)
    turn(w.org_a, w.owner.user, (200, 20), "gpt-4o", automation_id=auto_a)
    turn(w.org_a, w.other.user, (1000, 100), "claude", automation_id=None)
    # last month: outside the default window
    turn(w.org_a, w.owner.user, (5000, 5000), "gpt-4o", at=datetime(2026, 11, 30, tzinfo=UTC))
    # organization B, including the owner's turns there
    turn(w.org_b, w.admin_b.user, (70_000, 7_000), "llama", automation_id=auto_b)
    turn(w.org_b, w.owner.user, (30_000, 3_000), "llama", automation_id=auto_b)
    s.flush()
    return {"auto_a": str(auto_a), "auto_b": str(auto_b)}


def get_usage(api: Api, who: Any, org: Any, **params: Any) -> Any:
    query = "&".join(f"{k}={v}" for k, v in {"organization_id": org.id, **params}.items())
    return api.get(f"/usage?{query}", who)


def test_admins_see_the_whole_organization_and_only_it(api: Api, usage: dict[str, Any]) -> None:
    w = api.world
    data = get_usage(api, w.admin_a, w.org_a).get_json()
    assert data["scope"] == "organization"
    assert data["since"] == "2026-12-01T00:00:00Z" and data["until"] is None
    assert data["total"] == {
        "key": None,
        "input_tokens": 1300,
        "output_tokens": 130,
        "total_tokens": 1430,
        "turns": 3,
    }
    assert data["groups"] == []
    by_user = get_usage(api, w.admin_a, w.org_a, group_by="user").get_json()["groups"]
    assert [(g["key"], g["total_tokens"], g["turns"]) for g in by_user] == [
        (str(w.other.user.id), 1100, 1),
        (str(w.owner.user.id), 330, 2),
    ]
    by_auto = get_usage(api, w.admin_a, w.org_a, group_by="automation").get_json()["groups"]
    assert [(g["key"], g["total_tokens"]) for g in by_auto] == [
        (None, 1100),
        (usage["auto_a"], 330),
    ]
    by_model = get_usage(api, w.site, w.org_a, group_by="model").get_json()["groups"]
    assert [(g["key"], g["total_tokens"]) for g in by_model] == [("claude", 1100), ("gpt-4o", 330)]
    # organization B's admin sees B's sums, never A's (and A's admin never B's)
    b = get_usage(api, w.admin_b, w.org_b, group_by="automation").get_json()
    assert b["total"]["total_tokens"] == 110_000
    assert [g["key"] for g in b["groups"]] == [usage["auto_b"]]
    resp = get_usage(api, w.admin_b, w.org_a)
    assert resp.status_code == 404 and resp.get_json()["field"] == "organization_id"
    assert get_usage(api, w.admin_a, w.org_b).status_code == 404


def test_members_see_only_their_own_turns(api: Api, usage: dict[str, Any]) -> None:
    w = api.world
    mine = get_usage(api, w.owner, w.org_a, group_by="user").get_json()
    assert mine["scope"] == "user"
    assert mine["total"]["total_tokens"] == 330
    assert [g["key"] for g in mine["groups"]] == [str(w.owner.user.id)]
    # the same user in organization B: only their turns there
    there = get_usage(api, w.owner, w.org_b).get_json()
    assert there["scope"] == "user" and there["total"]["total_tokens"] == 33_000
    assert get_usage(api, w.other, w.org_a).get_json()["total"]["total_tokens"] == 1100


def test_the_window_and_bad_parameters(api: Api, usage: dict[str, Any]) -> None:
    w = api.world
    everything = get_usage(api, w.admin_a, w.org_a, since="2026-01-01T00:00:00Z").get_json()
    assert everything["total"]["total_tokens"] == 11_430
    november = get_usage(
        api, w.admin_a, w.org_a, since="2026-11-01T00:00:00Z", until="2026-12-01T00:00:00Z"
    ).get_json()
    assert november["total"]["total_tokens"] == 10_000 and november["total"]["turns"] == 1
    for params, field in [
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "until"),
        ({"group_by": "organization"}, "group_by"),
        ({"since": "yesterday"}, "since"),
    ]:
        resp = get_usage(api, w.admin_a, w.org_a, **params)
        assert resp.status_code == 400 and resp.get_json()["field"] == field, resp.get_json()
    resp = api.get("/usage", w.admin_a)
    assert resp.status_code == 400 and resp.get_json()["field"] == "organization_id"
    assert get_usage(api, w.narrow["chat:read"], w.org_a).status_code == 403


# Limits -----------------------------------------------------------------------------------


def test_org_admins_set_and_clear_limits(api: Api) -> None:
    w = api.world
    path = f"/organizations/{w.org_a.id}"
    resp = api.patch(path, {"monthly_token_limit": 1000}, w.admin_a)
    assert resp.status_code == 200 and resp.get_json()["monthly_token_limit"] == 1000
    member = f"{path}/members/{w.owner.user.id}"
    resp = api.patch(member, {"monthly_token_limit": 50}, w.admin_a)
    assert resp.status_code == 200
    assert resp.get_json() == {
        "organization_id": str(w.org_a.id),
        "user_id": str(w.owner.user.id),
        "role": "member",
        "monthly_token_limit": 50,
    }
    limits = get_usage(api, w.owner, w.org_a).get_json()["limits"]
    assert limits == {"organization": 1000, "member": 50}
    # members may not, other organizations' admins do not even see it
    assert api.patch(path, {"monthly_token_limit": None}, w.owner).status_code == 403
    assert api.patch(member, {"monthly_token_limit": None}, w.other).status_code == 403
    assert api.patch(path, {"monthly_token_limit": None}, w.admin_b).status_code == 404
    assert api.patch(member, {"monthly_token_limit": None}, w.admin_b).status_code == 404
    stranger = f"{path}/members/{w.admin_b.user.id}"
    resp = api.patch(stranger, {"monthly_token_limit": 5}, w.admin_a)
    assert resp.status_code == 404 and resp.get_json()["field"] == "user_id"
    for bad in ({}, {"monthly_token_limit": -1}, {"monthly_token_limit": "5"}):
        resp = api.patch(path, bad, w.admin_a)
        assert resp.status_code == 400 and resp.get_json()["field"] == "monthly_token_limit"
    assert api.patch(path, {"monthly_token_limit": 5}, w.narrow["automation:read"]).status_code == (
        403
    )
    # nulls clear; site-admins may too
    assert (
        api.patch(path, {"monthly_token_limit": None}, w.site).get_json()["monthly_token_limit"]
        is None
    )
    assert (
        api.patch(member, {"monthly_token_limit": None}, w.admin_a).get_json()[
            "monthly_token_limit"
        ]
        is None
    )
    actions = [
        a.action
        for a in api.session.scalars(
            select(AuditLog)
            .where(AuditLog.action.like("organization%"))
            .order_by(AuditLog.created_at)
        )
    ]
    assert sorted(actions) == sorted(
        ["organization.token_limit"] * 2 + ["organization_member.token_limit"] * 2
    )


def test_limits_never_cross_organizations(api: Api, usage: dict[str, Any]) -> None:
    """The owner used 330 tokens this month in A and 33,000 in B (B's total: 110,000)."""
    w, s = api.world, api.session
    owner = w.owner.user.id
    # A's limit counts A's turns only: 1,430 used, so 1,500 still allows a turn ...
    api.patch(f"/organizations/{w.org_a.id}", {"monthly_token_limit": 1500}, w.admin_a)
    check_turn_allowed(s, NOW, w.org_a.id, owner)
    # ... and B, without a limit, is not limited by A's
    api.patch(f"/organizations/{w.org_a.id}", {"monthly_token_limit": 1430}, w.admin_a)
    with pytest.raises(UsageLimitExceeded, match="organization's monthly token limit"):
        check_turn_allowed(s, NOW, w.org_a.id, owner)
    check_turn_allowed(s, NOW, w.org_b.id, owner)
    # a member limit in A counts the member's turns in A only (330, not 33,330) ...
    member_a = f"/organizations/{w.org_a.id}/members/{owner}"
    api.patch(member_a, {"monthly_token_limit": 331}, w.admin_a)
    check_turn_allowed(s, NOW, w.org_a.id, owner)  # the member's own limit overrides A's
    api.patch(member_a, {"monthly_token_limit": 330}, w.admin_a)
    with pytest.raises(UsageLimitExceeded, match="your monthly token limit"):
        check_turn_allowed(s, NOW, w.org_a.id, owner)
    # ... and does not apply in B, where B's own limit counts all of B's turns
    check_turn_allowed(s, NOW, w.org_b.id, owner)
    api.patch(f"/organizations/{w.org_b.id}", {"monthly_token_limit": 110_001}, w.admin_b)
    check_turn_allowed(s, NOW, w.org_b.id, owner)
    api.patch(f"/organizations/{w.org_b.id}", {"monthly_token_limit": 110_000}, w.admin_b)
    with pytest.raises(UsageLimitExceeded):
        check_turn_allowed(s, NOW, w.org_b.id, owner)
    # the other member of A has no own limit: A's applies to them
    with pytest.raises(UsageLimitExceeded):
        check_turn_allowed(s, NOW, w.org_a.id, w.other.user.id)
    # next month starts afresh
    check_turn_allowed(s, datetime(2027, 1, 1, tzinfo=UTC), w.org_a.id, owner)
    assert get_usage(api, w.admin_b, w.org_b).get_json()["limits"]["organization"] == 110_000
    assert get_usage(api, w.admin_a, w.org_a).get_json()["limits"]["organization"] == 1430
