"""The README's walkthrough, run unchanged as a script against `automations up` (embedded:
gateway, stream, worker and beat on SQLite), with GitHub's own pull_request example payload
and a fake OpenAI-compatible model server in place of the reader's Ollama: it ends with the
agent's reply."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.harness.fake_providers import FakeProvider, Reply
from tests.harness.processes import REPO, cli, wait_http
from tests.harness.services import free_port

pytestmark = pytest.mark.e2e

MARKER = "<!-- walkthrough -->"


def walkthrough() -> str:
    """The sh block that follows the walkthrough marker in README.md."""
    text = (REPO / "README.md").read_text()
    after = text[text.index(MARKER) + len(MARKER) :]
    match = re.search(r"```sh\n(.*?)```", after, re.S)
    assert match is not None, "no sh block after the walkthrough marker"
    return match.group(1)


def _statuses(db: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT status, event_type FROM automation_events ORDER BY received_at"
        ).fetchall()
    return [(str(s), t) for s, t in rows]


def _assistant_replies(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT content FROM chat_messages WHERE role = 'assistant' ORDER BY created_at"
        ).fetchall()
    return [str(content) for (content,) in rows]


def test_the_readme_walkthrough_runs_unchanged(tmp_path: Path) -> None:
    fake = FakeProvider("openai")
    fake.script(*[Reply.ok("Looks risky: ", "the deploy script changed.")] * 10)
    with fake:
        _walkthrough(tmp_path, fake)


def _walkthrough(tmp_path: Path, fake: FakeProvider) -> None:
    bind = f"127.0.0.1:{free_port()}"
    data = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOMATIONS_")}
    env.update(AUTOMATIONS_BIND=bind, AUTOMATIONS_DATA_DIR=str(data))
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    up = subprocess.Popen(cli("up"), env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    # The script runs from a directory that looks like the repository (its .venv and the
    # example payloads), so whatever it writes stays out of the real checkout.
    work = tmp_path / "checkout"
    work.mkdir()
    (work / ".venv").symlink_to(REPO / ".venv")
    (work / "tests").symlink_to(REPO / "tests")
    try:
        wait_http(f"http://{bind}/readyz", timeout=90)
        script = walkthrough()
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env={**env, "AUTOMATIONS_URL": f"http://{bind}", "MODEL_BASE_URL": fake.base_url},
            cwd=work,
            capture_output=True,
            text=True,
            timeout=300,
        )
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-4000:]
        db = data / "automations.db"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses = _statuses(db)
            if [s for s, _ in statuses] == ["created", "continued"]:
                break
            time.sleep(0.5)
        assert [s for s, _ in statuses] == ["created", "continued"], (statuses, out[-3000:])
        assert {t for _, t in statuses} == {"pull_request"}
        assert "would create a new chat" in out
        assert "replayed 1 events" in out
        assert "pull_request" in out  # the event list's event type column
        assert not list(work.glob("*.json"))  # the trigger file with the secret was removed
        # the walkthrough ends with the agent's reply, from the configured model
        assert "--- assistant" in out and "the deploy script changed." in out, out[-3000:]
        assert _assistant_replies(db), out[-3000:]
        assert fake.requests, "the runner never called the model"
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=60)
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text()[-3000:]
