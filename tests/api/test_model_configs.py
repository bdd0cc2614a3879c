"""Model configs over the API (SPEC 9): who may read and write them, the 400s that name the
field (provider, base_url, model, temperature, outbound addresses), the write-only API key
encrypted at rest, unique canonical names, delete keeping automations and chats, and
``POST /model-configs/<id>/test`` against the local fake providers (both formats)."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text

from shared.models import AuditLog, Automation, Chat
from tests import factories as f
from tests.api.conftest import KEY1, Api
from tests.harness.fake_providers import FakeProvider, Reply

API_KEY = "sk-test-0123456789abcdefghijklmnop"


def body(api: Api, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "organization_id": str(api.world.org_a.id),
        "name": "gpt",
        "provider": "openai",
        "base_url": "https://api.openai.com/v1",
        "model": "gpt-4o-mini",
        "api_key": API_KEY,
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not ...}


def create(api: Api, **fields: Any) -> dict[str, Any]:
    resp = api.post("/model-configs", body(api, **fields), who=api.world.admin_a)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


@pytest.fixture
def private_allowed(api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The gateway with AUTOMATIONS_OUTBOUND_ALLOW_PRIVATE=true (the fakes are on 127.0.0.1)."""
    gw = api.app.extensions["automations"]
    monkeypatch.setattr(
        gw, "settings", gw.settings.model_copy(update={"outbound_allow_private": True})
    )
    yield


# Create, read, authorization -------------------------------------------------------------------


def test_admin_creates_members_read_other_orgs_see_nothing(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    w = api.world
    data = create(api, temperature=0.2, max_output_tokens=512, context_window=128000)
    assert data["api_key_set"] is True and "api_key" not in data
    assert data["temperature"] == 0.2 and data["max_output_tokens"] == 512
    path = f"/model-configs/{data['id']}"
    for who in (w.owner, w.other, w.admin_a, w.site):
        assert api.get(path, who).status_code == 200
        items = api.get(f"/model-configs?organization_id={w.org_a.id}", who).get_json()["items"]
        assert [i["id"] for i in items] == [data["id"]]
    assert [i["id"] for i in api.get("/model-configs", w.owner).get_json()["items"]] == [data["id"]]
    # another organization's admin: 404 everywhere, and an empty default list
    assert api.get(path, w.admin_b).status_code == 404
    assert api.post(path + "/test", None, who=w.admin_b).status_code == 404
    assert api.patch(path, {"model": "x"}, w.admin_b).status_code == 404
    assert api.delete(path, w.admin_b).status_code == 404
    assert api.get(f"/model-configs?organization_id={w.org_a.id}", w.admin_b).status_code == 404
    assert api.get("/model-configs", w.admin_b).get_json()["items"] == []
    # members read but do not write: 403 (they can see it exists)
    resp = api.post("/model-configs", body(api, name="mine"), who=w.owner)
    assert resp.status_code == 403 and resp.get_json()["code"] == "forbidden"
    assert api.patch(path, {"model": "x"}, w.other).status_code == 403
    assert api.delete(path, w.other).status_code == 403
    # creating in another organization: 404 naming it
    resp = api.post("/model-configs", body(api, organization_id=str(w.org_b.id)), who=w.admin_a)
    assert resp.status_code == 404 and resp.get_json()["field"] == "organization_id"
    # token scopes: reading needs automation:read, writing automation:write
    assert api.get(path, w.narrow["chat:read"]).status_code == 403
    # the key is encrypted at rest and never answered, logged or audited
    stored, key_id = api.session.execute(
        text("SELECT api_key, api_key_key_id FROM model_configs WHERE id = :id"),
        {"id": uuid.UUID(data["id"])},
    ).one()
    assert stored.startswith("enc:v1:") and API_KEY not in stored and key_id
    seen = api.get(path, w.admin_a).get_data(as_text=True)
    seen += api.get("/model-configs", w.admin_a).get_data(as_text=True)
    audits = api.session.scalars(select(AuditLog).where(AuditLog.resource_type == "model_config"))
    details = " ".join(str(a.details) for a in audits)
    assert "model_config.create" in {a.action for a in api.session.scalars(select(AuditLog))}
    for text_ in (seen, details, caplog.text):
        assert API_KEY not in text_


def test_a_site_admin_writes_in_any_organization(api: Api) -> None:
    resp = api.post(
        "/model-configs", body(api, organization_id=str(api.world.org_b.id)), who=api.world.site
    )
    assert resp.status_code == 201


def test_no_key_is_allowed(api: Api) -> None:
    assert create(api, api_key=...)["api_key_set"] is False
    assert create(api, name="empty", api_key="")["api_key_set"] is False


# Bad input: 400 naming the field ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"base_url": ...}, "base_url"),
        ({"model": ...}, "model"),
        ({"model": ""}, "model"),
        ({"provider": "cohere"}, "provider"),
        ({"provider": ...}, "provider"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"name": "a\u200bb"}, "name"),
        ({"base_url": "ftp://models.example.com"}, "base_url"),
        ({"base_url": "not a url"}, "base_url"),
        # metadata and link-local: always refused
        ({"base_url": "http://169.254.169.254/latest"}, "base_url"),
        ({"base_url": "http://[fd00:ec2::254]/v1"}, "base_url"),
        # private addresses: refused unless AUTOMATIONS_OUTBOUND_ALLOW_PRIVATE
        ({"base_url": "http://10.0.0.7:8000/v1"}, "base_url"),
        ({"base_url": "http://127.0.0.1:11434/v1"}, "base_url"),
        ({"base_url": "http://localhost:11434/v1"}, "base_url"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api: Api, fields: dict[str, Any], field: str) -> None:
    resp = api.post("/model-configs", body(api, **fields), who=api.world.admin_a)
    assert resp.status_code == 400, resp.get_json()
    err = resp.get_json()
    assert err["field"] == field, err
    assert err["message"].startswith(field), err


def test_private_addresses_are_allowed_when_configured(api: Api, private_allowed: None) -> None:
    assert create(api, base_url="http://10.0.0.7:8000/v1")["base_url"] == (
        "http://10.0.0.7:8000/v1"
    )
    assert create(api, name="ollama", base_url="http://localhost:11434/v1", api_key=...)
    resp = api.post(
        "/model-configs",
        body(api, name="meta", base_url="http://169.254.169.254/v1"),
        who=api.world.admin_a,
    )
    assert resp.status_code == 400 and resp.get_json()["field"] == "base_url"


def test_names_are_canonical_and_unique_per_organization(api: Api) -> None:
    create(api, name="  gpt ")
    resp = api.post("/model-configs", body(api, name="ｇｐｔ"), who=api.world.admin_a)
    assert resp.status_code == 409
    assert resp.get_json() | {"message": ""} == {
        "code": "name_taken",
        "field": "name",
        "message": "",
    }
    other_org = body(api, organization_id=str(api.world.org_b.id))
    assert api.post("/model-configs", other_org, who=api.world.admin_b).status_code == 201


# Update and delete ------------------------------------------------------------------------------


def test_update_and_the_key_rule_for_moving_endpoints(api: Api) -> None:
    data = create(api)
    path = f"/model-configs/{data['id']}"
    admin = api.world.admin_a
    resp = api.patch(path, {"model": "gpt-4o", "temperature": 1}, admin)
    assert resp.status_code == 200 and resp.get_json()["model"] == "gpt-4o"
    assert resp.get_json()["temperature"] == 1.0 and resp.get_json()["api_key_set"] is True
    # re-pointing a config that holds a key needs the key again
    resp = api.patch(path, {"base_url": "https://llm.example.com/v1"}, admin)
    assert resp.status_code == 400
    assert resp.get_json()["field"] == "api_key" and resp.get_json()["code"] == "api_key_required"
    resp = api.patch(path, {"provider": "anthropic"}, admin)
    assert resp.status_code == 400 and resp.get_json()["field"] == "api_key"
    resp = api.patch(path, {"base_url": "https://llm.example.com/v1", "api_key": "k2" * 10}, admin)
    assert resp.status_code == 200 and resp.get_json()["base_url"] == "https://llm.example.com/v1"
    resp = api.patch(path, {"api_key": None}, admin)
    assert resp.status_code == 200 and resp.get_json()["api_key_set"] is False
    # without a key, moving needs nothing
    assert api.patch(path, {"base_url": "https://other.example.com"}, admin).status_code == 200
    assert api.patch(path, {"temperature": 3}, admin).get_json()["field"] == "temperature"
    assert api.patch(path, {"base_url": "http://10.1.2.3"}, admin).get_json()["field"] == (
        "base_url"
    )
    create(api, name="taken")
    resp = api.patch(path, {"name": "taken"}, admin)
    assert resp.status_code == 409 and resp.get_json()["code"] == "name_taken"
    actions = [
        a.action
        for a in api.session.scalars(
            select(AuditLog).where(AuditLog.resource_id == uuid.UUID(data["id"]))
        )
    ]
    assert actions.count("model_config.update") == 4


def test_delete_keeps_automations_and_chats_with_no_model_config(api: Api) -> None:
    data = create(api)
    config_id = uuid.UUID(data["id"])
    auto = api.create_automation(model_config_id=data["id"])
    chat = f.chat(
        api.session,
        api.clock,
        api.world.owner.user,
        api.world.org_a.id,
        model_config_id=config_id,
        automation_id=uuid.UUID(auto["id"]),
    )
    api.session.flush()
    assert api.delete(f"/model-configs/{data['id']}", api.world.admin_a).status_code == 204
    assert api.get(f"/model-configs/{data['id']}").status_code == 404
    api.session.expire_all()
    row = api.session.get(Automation, uuid.UUID(auto["id"]))
    kept = api.session.get(Chat, chat.id)
    assert row is not None and row.model_config_id is None
    assert kept is not None and kept.model_config_id is None
    assert api.get(f"/automations/{auto['id']}").get_json()["model_config_id"] is None


# POST /model-configs/<id>/test against the fake providers -----------------------------------------


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_test_reports_latency_against_both_providers(
    api: Api, private_allowed: None, kind: str
) -> None:
    with FakeProvider(kind) as fake:  # type: ignore[arg-type]
        data = create(api, provider=kind, base_url=fake.base_url, model="fake-model")
        resp = api.post(f"/model-configs/{data['id']}/test", None, who=api.world.owner)
        assert resp.status_code == 200, resp.get_json()
        result = resp.get_json()
        assert result["ok"] is True and result["error"] is None
        assert isinstance(result["latency_ms"], int) and result["latency_ms"] >= 0
        [request] = fake.requests
        # the decrypted key went to the provider, in its authentication header only
        holders = {name for name, value in request.headers.items() if API_KEY in value}
        assert holders and holders <= {"authorization", "x-api-key"}
        assert request.json["model"] == "fake-model"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_test_reports_the_classified_error_without_the_key(
    api: Api, private_allowed: None, kind: str
) -> None:
    with FakeProvider(kind) as fake:  # type: ignore[arg-type]
        fake.script(Reply.error(401, f"invalid x-api-key: {API_KEY}"))
        data = create(api, provider=kind, base_url=fake.base_url)
        resp = api.post(f"/model-configs/{data['id']}/test", None, who=api.world.admin_a)
        assert resp.status_code == 200
        result = resp.get_json()
        assert result["ok"] is False
        error = result["error"]
        assert set(error) == {"message", "kind", "provider", "retryable", "status_code", "detail"}
        assert error["kind"] == "auth" and error["status_code"] == 401
        assert error["retryable"] is False and error["provider"] == kind
        assert API_KEY not in resp.get_data(as_text=True)
        assert len(fake.requests) == 1  # no SDK retries


def test_test_refuses_a_name_that_resolves_to_a_refused_address(
    api: Api, private_allowed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = create(api, base_url="http://rebind.example/v1")  # a name: fine when saved
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    result = api.post(f"/model-configs/{data['id']}/test", None).get_json()
    assert result["ok"] is False and result["error"]["kind"] == "config"
    assert "169.254.169.254" in (result["error"]["detail"] or result["error"]["message"])


def test_test_with_a_key_that_cannot_be_decrypted(api: Api) -> None:
    data = create(api)
    api.session.execute(
        text("UPDATE model_configs SET api_key_key_id = 'deadbeefdeadbeef' WHERE id = :id"),
        {"id": uuid.UUID(data["id"])},
    )
    result = api.post(f"/model-configs/{data['id']}/test", None).get_json()
    assert result["ok"] is False and result["error"]["kind"] == "config"
    assert "deadbeefdeadbeef" in result["error"]["message"]
    assert KEY1 not in str(result)


# Embedded mode (SQLite) ---------------------------------------------------------------------------


def test_the_domain_works_on_sqlite(sqlite_session: Any) -> None:
    """Create, rename, list, usage sums and limits on SQLite (embedded mode)."""
    from shared.accounts.authz import load_principal
    from shared.infra.clock import FrozenClock
    from shared.infra.crypto import Keyring, parse_keys
    from shared.model_configs import (
        NewModelConfig,
        create_model_config,
        list_model_configs,
        update_model_config,
    )
    from shared.models import OrgRole
    from shared.usage.queries import usage_summary
    from shared.usage.service import record_turn_usage, set_organization_limit

    s, clock, ring = sqlite_session, FrozenClock(), Keyring(parse_keys(KEY1))
    org = f.org(s, clock)
    admin = load_principal(s, f.user(s, clock, org, role=OrgRole.ORG_ADMIN))
    new = NewModelConfig(org.id, "ollama", "openai", "http://localhost:11434/v1", "llama3", "k")
    row = create_model_config(s, clock, admin, ring, new, allow_private=True)
    assert row.api_key is not None and row.api_key.startswith("enc:v1:")
    update_model_config(s, clock, admin, ring, row.id, {"name": "local"}, allow_private=True)
    assert [c.name for c in list_model_configs(s, admin, organization_id=org.id).items] == ["local"]
    record_turn_usage(
        s,
        now=clock.now(),
        organization_id=org.id,
        user_id=admin.user_id,
        automation_id=None,
        chat_id=None,
        model_config_id=row.id,
        model="llama3",
        input_tokens=5,
        output_tokens=6,
    )
    set_organization_limit(s, clock, admin, org.id, 100)
    summary = usage_summary(s, clock, admin, org.id, group_by="model")
    assert summary.total.total_tokens == 11 and summary.groups[0].key == "llama3"
    assert summary.organization_limit == 100
