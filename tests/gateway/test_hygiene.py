"""Response headers and who may read /metrics (issue 16, item 6).

* ``X-Content-Type-Options: nosniff`` on every answer Flask produces, errors included;
  ``Cache-Control: no-store`` on every API answer.
* ``/metrics``: 404 unless configured; a bearer token from ``AUTOMATIONS_METRICS_TOKEN``; or a
  separate listener (``AUTOMATIONS_METRICS_BIND``) and then 404 on the gateway's port.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests
from sqlalchemy.orm import Session

from shared import accounts
from shared.triggers.signatures import sign_github
from tests import factories
from tests.gateway.conftest import SECRET, GatewayFactory, GatewayHarness, url_for
from tests.harness.processes import service_env, start_gateway
from tests.harness.services import free_port

TOKEN = "metrics-" + "x" * 32


def _boom_route(gw: GatewayHarness) -> None:
    def boom() -> str:
        raise RuntimeError("a bug")

    gw.app.add_url_rule("/api/v1/test-boom", "test_boom", boom)


def test_security_headers_on_a_sample_of_routes(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(metrics_token=TOKEN)
    _boom_route(gw)
    tid = gw.seed()
    with Session(gw.engine) as session:
        user = factories.user(session, gw.clock, factories.org(session, gw.clock, name="hy"))
        _, token = accounts.create_token(session, gw.clock, user.email, ["*"])
        session.commit()
    bearer = {"Authorization": f"Bearer {token}"}
    c = gw.client
    api_answers = {
        "me": c.get("/api/v1/users/me", headers=bearer),
        "openapi": c.get("/api/v1/openapi.json"),
        "no token": c.get("/api/v1/users/me"),
        "bad token": c.get("/api/v1/users/me", headers={"Authorization": "Bearer ca_x"}),
        "unknown id": c.get("/api/v1/automations/nope", headers=bearer),
        "unknown route": c.get("/api/v1/nothing-here"),
        "wrong method": c.delete("/api/v1/openapi.json"),
        "webhook wrong method": c.get(url_for(tid)),
        "bug": c.get("/api/v1/test-boom"),
    }
    other_answers = {
        "healthz": c.get("/healthz"),
        "readyz": c.get("/readyz?check=bogus"),
        "metrics": c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}),
        "metrics 401": c.get("/metrics"),
        "unknown": c.get("/favicon.ico"),
        "wrong method": c.post("/healthz"),
    }
    expected = {
        "me": 200,
        "openapi": 200,
        "no token": 401,
        "bad token": 401,
        "unknown id": 404,
        "unknown route": 404,
        "wrong method": 405,
        "webhook wrong method": 405,
        "bug": 500,
    }
    assert {name: r.status_code for name, r in api_answers.items()} == expected
    for name, resp in {**api_answers, **other_answers}.items():
        assert resp.headers.get("X-Content-Type-Options") == "nosniff", name
    for name, resp in api_answers.items():
        assert resp.headers.get("Cache-Control") == "no-store", name
    # health and metrics answers are not the API's: no blanket rule there
    assert "no-store" not in other_answers["healthz"].headers.get("Cache-Control", "")


def test_metrics_are_not_served_by_default(gw: GatewayHarness) -> None:
    unknown = gw.client.get("/no-such-page")
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
        resp = gw.client.get("/metrics", headers=headers)
        assert resp.status_code == 404
        assert resp.get_json() == unknown.get_json()  # indistinguishable from any unknown path


def test_metrics_need_the_bearer_token(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(metrics_token=TOKEN)
    missing = gw.client.get("/metrics")
    assert missing.status_code == 401
    assert missing.get_json()["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    for wrong in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", "Bearer é"):
        resp = gw.client.get("/metrics", headers={"Authorization": wrong})
        assert resp.status_code == 401, wrong
        assert set(resp.get_json()) == {"code", "message", "field"}
    ok = gw.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert "automations_webhook_requests_total" in ok.text
    assert TOKEN not in ok.text


def test_wrong_metrics_tokens_are_throttled(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(metrics_token=TOKEN, auth_failure_limit=2)
    bad = {"Authorization": "Bearer guess-guess-guess-guess"}
    assert [gw.client.get("/metrics", headers=bad).status_code for _ in range(3)] == [
        401,
        401,
        429,
    ]
    throttled = gw.client.get("/metrics", headers=bad)
    assert throttled.get_json()["code"] == "too_many_requests"
    assert int(throttled.headers["Retry-After"]) >= 1
    good = gw.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert good.status_code == 200


def test_a_separate_metrics_address_turns_the_route_off(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(metrics_token=TOKEN, metrics_bind=f"127.0.0.1:{free_port()}")
    resp = gw.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 404


@pytest.mark.e2e
def test_gunicorn_serves_metrics_on_the_separate_address(
    pg_module_url: str, redis_base_url: str, tmp_path: Path
) -> None:
    from shared.infra.clock import system_clock
    from shared.infra.db.engine import make_engine
    from shared.models import AutomationStatus

    engine = make_engine(pg_module_url)
    with Session(engine, expire_on_commit=False) as session:
        o = factories.org(session, system_clock, name=f"m-{uuid.uuid4().hex}")
        u = factories.user(session, system_clock, o, email=f"{uuid.uuid4().hex}@example.com")
        auto = factories.automation(session, system_clock, u, status=AutomationStatus.ACTIVE)
        trig = factories.webhook_trigger(session, system_clock, auto, webhook_secret=SECRET)
        session.commit()
    engine.dispose()
    metrics_bind = f"127.0.0.1:{free_port()}"
    env = service_env(
        database_url=pg_module_url,
        broker_url=f"{redis_base_url}/0",
        data_dir=tmp_path,
        extra={
            "AUTOMATIONS_METRICS_BIND": metrics_bind,
            "AUTOMATIONS_GATEWAY_WORKERS": "2",
            "AUTOMATIONS_GATEWAY_THREADS": "2",
        },
    )
    proc, base = start_gateway(env, tmp_path)
    try:
        for i in range(6):  # fresh connections spread over both workers
            body = b'{"m": %d}' % i
            headers = {"X-Hub-Signature-256": sign_github(SECRET, body)}
            resp = requests.post(base + url_for(trig.id), data=body, headers=headers, timeout=10)
            assert resp.status_code == 202
        assert requests.get(base + "/metrics", timeout=10).status_code == 404
        text = requests.get(f"http://{metrics_bind}/metrics", timeout=10).text
        accepted = [
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith('automations_webhook_requests_total{outcome="accepted"}')
        ]
        assert accepted and accepted[0] >= 6
    finally:
        proc.stop()
