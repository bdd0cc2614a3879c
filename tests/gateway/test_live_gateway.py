"""Against a real gunicorn gateway: chunked bodies, the `webhook send` CLI, /metrics across
worker processes, and JSON logs."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.infra.clock import system_clock
from shared.infra.db.engine import make_engine
from shared.models import AutomationEvent, AutomationStatus
from shared.triggers.signatures import sign_github, standard_form
from tests import factories
from tests.gateway.conftest import SECRET, url_for
from tests.harness.processes import Proc, cli, service_env, start_gateway
from tests.harness.services import free_port

pytestmark = pytest.mark.e2e
LIMIT = 4096
METRICS_TOKEN = "live-metrics-" + "t" * 24


@pytest.fixture(scope="module")
def live(
    pg_module_url: str, redis_base_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Proc, uuid.UUID, str]]:
    tmp = tmp_path_factory.mktemp("live")
    engine = make_engine(pg_module_url)
    with Session(engine, expire_on_commit=False) as session:
        o = factories.org(session, system_clock, name=f"live-{uuid.uuid4().hex}")
        u = factories.user(session, system_clock, o, email=f"{uuid.uuid4().hex}@example.com")
        auto = factories.automation(session, system_clock, u, status=AutomationStatus.ACTIVE)
        trig = factories.webhook_trigger(session, system_clock, auto, webhook_secret=SECRET)
        session.commit()
    env = service_env(
        database_url=pg_module_url,
        broker_url=f"{redis_base_url}/0",
        data_dir=tmp,
        extra={
            "AUTOMATIONS_MAX_BODY_BYTES": str(LIMIT),
            "AUTOMATIONS_GATEWAY_WORKERS": "2",
            "AUTOMATIONS_GATEWAY_THREADS": "4",
            "AUTOMATIONS_METRICS_TOKEN": METRICS_TOKEN,
        },
    )
    proc, base = start_gateway(env, tmp)
    try:
        yield base, proc, trig.id, pg_module_url
    finally:
        proc.stop()
        engine.dispose()


def _chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_chunked_bodies_are_read_and_capped(live: tuple[str, Proc, uuid.UUID, str]) -> None:
    base, _proc, tid, _db = live
    body = json.dumps({"pad": "x" * 3000}).encode()
    headers = {"X-Hub-Signature-256": sign_github(SECRET, body)}
    resp = requests.post(base + url_for(tid), data=_chunks(body), headers=headers, timeout=10)
    assert resp.request.headers.get("Transfer-Encoding") == "chunked"
    assert resp.status_code == 202, resp.text
    big = json.dumps({"pad": "x" * (LIMIT * 4)}).encode()
    headers = {"X-Hub-Signature-256": sign_github(SECRET, big)}
    resp = requests.post(base + url_for(tid), data=_chunks(big), headers=headers, timeout=10)
    assert resp.status_code == 413
    assert resp.json()["code"] == "payload_too_large"
    # Content-Length over the limit is refused before the body is read
    resp = requests.post(base + url_for(tid), data=big, headers=headers, timeout=10)
    assert resp.status_code == 413


def test_webhook_send_cli_against_a_live_gateway(
    live: tuple[str, Proc, uuid.UUID, str], tmp_path: Path
) -> None:
    base, _proc, tid, db_url = live
    payload = tmp_path / "payload.json"
    payload.write_text('{"action": "cli-test"}')
    url = base + url_for(tid)

    def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        # in-process (a subprocess costs ~2 s of imports); the first call is a real one
        from click.testing import CliRunner

        from shared.cli import main

        result = CliRunner().invoke(main, ["webhook", "send", *args], input=stdin)
        return subprocess.CompletedProcess(
            args, result.exit_code, result.stdout_bytes, result.stderr_bytes or b""
        )

    ok = subprocess.run(
        cli("webhook", "send", url, "--secret", SECRET, "--delivery-id", "cli-1", str(payload)),
        capture_output=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(b"HTTP 202")
    event_id = json.loads(ok.stdout.splitlines()[1])["event_id"]
    std = run(url, "--secret", standard_form(SECRET), "--scheme", "standard", "-", stdin=b"[1]")
    assert std.returncode == 0, std.stderr
    again = run(url, "--secret", standard_form(SECRET), "--delivery-id", "cli-1", str(payload))
    assert again.returncode == 0 and event_id.encode() in again.stdout  # duplicate
    wrong = run(url, "--secret", "0" * 64, str(payload))
    assert wrong.returncode != 0
    assert b"HTTP 401" in wrong.stdout
    down = run(f"http://127.0.0.1:{free_port()}/x", "--secret", SECRET, str(payload))
    assert down.returncode != 0
    assert b"could not reach" in down.stderr
    bad_secret = run(url, "--secret", "nope", str(payload))
    assert bad_secret.returncode == 2
    engine = make_engine(db_url)
    with Session(engine) as session:
        payloads = session.scalars(
            select(AutomationEvent.payload).where(AutomationEvent.trigger_id == tid)
        ).all()
    engine.dispose()
    assert {"action": "cli-test"} in payloads and [1] in payloads


def test_metrics_aggregate_across_workers_and_logs_are_json(
    live: tuple[str, Proc, uuid.UUID, str],
) -> None:
    base, proc, tid, _db = live
    for n in range(20):  # fresh connections spread over both workers
        body = f'{{"m": {n}}}'.encode()  # distinct: the replay window folds identical bodies
        headers = {"X-Hub-Signature-256": sign_github(SECRET, body)}
        assert requests.post(base + url_for(tid), data=body, headers=headers, timeout=10).ok
    assert requests.get(base + "/metrics", timeout=10).status_code == 401
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    text = requests.get(base + "/metrics", headers=auth, timeout=10).text
    accepted = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith('automations_webhook_requests_total{outcome="accepted"}')
    ]
    assert accepted and accepted[0] >= 20
    access = [
        json.loads(line)
        for line in proc.log().splitlines()
        if line.startswith("{") and '"automations.access"' in line
    ]
    assert any(entry["outcome"] == "accepted" and entry["status"] == 202 for entry in access)
    assert SECRET not in proc.log()
    assert METRICS_TOKEN not in proc.log()
