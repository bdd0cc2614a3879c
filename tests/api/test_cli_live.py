"""The CLI against a live gateway and worker: the issue's "done when" walkthrough."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import accounts
from shared.infra.clock import system_clock
from shared.infra.db.engine import make_engine
from shared.infra.db.uow import Database
from tests.harness.processes import REPO, Proc, service_env, start_gateway, start_worker

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def live(pg_committed: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    engine = make_engine(pg_committed)
    with Database(engine).unit() as uow:
        session = uow.session
        accounts.create_user(session, system_clock, "dev@example.com", "acme", "member")
        _, token = accounts.create_token(session, system_clock, "dev@example.com")
        accounts.create_user(session, system_clock, "ro@example.com", "acme", "member")
        _, ro_token = accounts.create_token(
            session, system_clock, "ro@example.com", ["automation:read"]
        )
    engine.dispose()
    env = service_env(
        database_url=pg_committed,
        broker_url=redis_url,
        data_dir=tmp_path,
        extra={
            "AUTOMATIONS_ENCRYPTION_KEYS": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            # no trigger cache: a rotated secret is seen by the very next request
            "AUTOMATIONS_TRIGGER_CACHE_SECONDS": "0",
        },
    )
    procs: list[Proc] = []
    try:
        gateway, base = start_gateway(env, tmp_path)
        procs.append(gateway)
        procs.append(start_worker(env, tmp_path))
        yield {**env, "AUTOMATIONS_URL": base, "AUTOMATIONS_TOKEN": token, "RO_TOKEN": ro_token}
    finally:
        for proc in procs:
            proc.stop()
        for proc in procs:
            assert "Traceback" not in proc.log() or proc.name == "worker", proc.log()[-3000:]


def cli(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if ok:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def cli_json(env: dict[str, str], *args: str) -> Any:
    return json.loads(cli(env, *args, "--json").stdout)


def test_cli_walkthrough(live: dict[str, str], tmp_path: Path) -> None:
    env = live
    auto = cli_json(env, "automation", "create", "deploys", "--instructions", "Summarise.")
    assert auto["status"] == "disabled"
    trig = cli_json(
        env, "trigger", "add-webhook", "deploys", "--label", "repo=repository.full_name"
    )
    secret, url = trig["webhook_secret"], trig["webhook_url"]
    human = cli(env, "trigger", "list", "deploys").stdout
    assert trig["id"] in human and secret not in human
    assert "active" in cli(env, "automation", "enable", "deploys").stdout

    payload = tmp_path / "event.json"
    payload.write_text(json.dumps({"repository": {"full_name": "acme/api"}, "ref": "main"}))
    dry = cli_json(env, "test", "deploys", "--payload", str(payload))
    assert dry == {
        "filter_matched": True,
        "event_type_matched": None,
        "resolved_labels": {"repo": "acme/api"},
        "existing_chat_id": None,
        "would_create_new_chat": True,
    }

    follow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shared.cli",
            "events",
            "list",
            "deploys",
            "--follow",
            "--json",
            "--interval",
            "0.3",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        cli(env, "webhook", "send", url, str(payload), "--secret", secret)
        statuses: list[str] = []
        deadline = time.monotonic() + 30
        assert follow.stdout is not None
        while time.monotonic() < deadline and "created" not in statuses:
            line = follow.stdout.readline()
            if line:
                statuses.append(json.loads(line)["status"])
        assert "created" in statuses, statuses
    finally:
        follow.terminate()
        follow.wait(timeout=10)

    # rotate without dropping events: the old secret keeps working for the grace period
    new = cli_json(
        env, "trigger", "rotate-secret", "deploys", trig["id"], "--previous-valid-for", "1h"
    )
    assert new["webhook_secret"] != secret and new["previous_secret_expires_at"]
    # the same GitHub-signed body again is a replay within the trigger's window: no new event
    replayed = cli(env, "webhook", "send", url, str(payload), "--secret", secret)
    assert '"duplicate":true' in replayed.stdout, replayed.stdout
    second = tmp_path / "second.json"
    second.write_text(json.dumps({"repository": {"full_name": "acme/api"}, "ref": "v2"}))
    cli(env, "webhook", "send", url, str(second), "--secret", secret)
    cli(
        env,
        "webhook",
        "send",
        url,
        str(payload),
        "--secret",
        new["webhook_secret_standard"],
        "--scheme",
        "standard",
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = cli_json(env, "events", "list", "deploys")
        if len(events) == 3 and all(e["status"] != "pending" for e in events):
            break
        time.sleep(0.3)
    assert [e["status"] for e in events] == ["continued", "continued", "created"]
    assert cli_json(env, "events", "list", "deploys", "--status", "created")[0]["status"] == (
        "created"
    )

    chats = cli_json(env, "chats", "list", "--label", "repo:acme/api")
    assert len(chats) == 1
    shown = cli_json(env, "chats", "show", chats[0]["id"])
    assert len(shown["messages"]) == 3 and "Summarise." in shown["messages"][0]["content"]
    assert "acme/api" in cli(env, "chats", "list").stdout

    listing = cli(env, "automation", "list").stdout
    assert "deploys" in listing and "NAME" in listing
    shown_auto = cli_json(env, "automation", "show", auto["id"])
    assert shown_auto["triggers"][0]["id"] == trig["id"]
    assert secret not in json.dumps(shown_auto)
    cron = cli_json(env, "trigger", "add-cron", "deploys", "*/5 * * * *")
    assert cron["next_fire_at"]
    cli(env, "trigger", "update", "deploys", cron["id"], "--schedule", "0 * * * *")
    cli(env, "trigger", "delete", "deploys", cron["id"])
    cli(env, "automation", "update", "deploys", "--max-messages", "100")
    assert "preview" in cli(env, "automation", "preview", "deploys").stdout
    assert "disabled" in cli(env, "automation", "disable", "deploys").stdout

    # errors: clear messages and non-zero exit codes
    bad = cli(env, "automation", "update", "deploys", "--max-messages", "5000", ok=False)
    assert bad.returncode == 1 and "max_messages_per_hour" in bad.stderr
    missing = cli(env, "automation", "show", "nope", ok=False)
    assert missing.returncode == 1 and "no automation named 'nope'" in missing.stderr
    bad_cron = cli(env, "trigger", "add-cron", "deploys", "99 * * * *", ok=False)
    assert bad_cron.returncode == 1 and "cron_schedule" in bad_cron.stderr
    ro = {**env, "AUTOMATIONS_TOKEN": env["RO_TOKEN"]}
    denied = cli(ro, "automation", "create", "x", ok=False)
    assert denied.returncode == 1 and "automation:write" in denied.stderr
    unconfigured = {k: v for k, v in env.items() if k != "AUTOMATIONS_TOKEN"}
    assert cli(unconfigured, "automation", "list", ok=False).returncode == 2
    down = {**env, "AUTOMATIONS_URL": "http://127.0.0.1:9"}
    assert cli(down, "automation", "list", ok=False).returncode == 3

    cli(env, "automation", "delete", "deploys", "--yes")
    assert cli_json(env, "automation", "list") == []
