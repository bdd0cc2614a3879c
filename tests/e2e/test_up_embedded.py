"""`automations up` on the embedded default: migrates, serves /healthz, stops on Ctrl-C."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
import requests

from tests.harness.processes import REPO, cli, wait_http
from tests.harness.services import free_port

pytestmark = pytest.mark.e2e


def test_up_serves_healthz_and_readyz_and_stops_cleanly(tmp_path: Path) -> None:
    bind = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOMATIONS_")}
    env.update(AUTOMATIONS_BIND=bind, AUTOMATIONS_DATA_DIR=str(tmp_path / "var"))
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cli("up"), env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://{bind}/healthz", timeout=60)
        assert requests.get(f"http://{bind}/healthz", timeout=5).json() == {"status": "ok"}
        ready = requests.get(f"http://{bind}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
        # embedded files live in the data dir, and the schema was migrated
        db = tmp_path / "var" / "automations.db"
        assert db.exists()
        tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
        assert {"automations", "automation_events", "alembic_version"} <= tables
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        log.close()
    output = (tmp_path / "up.log").read_text()
    assert code == 0, output[-3000:]
    assert "stopped" in output
    assert "Unrecoverable error" not in output


def test_readyz_reports_which_dependency_failed(tmp_path: Path) -> None:
    from shared.infra.config import Settings
    from webhook_gateway.app import create_app

    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path}/x.db",
        broker_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
    )
    client = create_app(settings).test_client()
    assert client.get("/healthz").status_code == 200
    resp = client.get("/readyz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["checks"] == {"database": "ok", "broker": "failed"}
    assert "broker" in body["errors"]
    only_db = client.get("/readyz?check=database")
    assert only_db.status_code == 200 and only_db.get_json()["checks"] == {"database": "ok"}
    assert client.get("/readyz?check=disk").status_code == 400
