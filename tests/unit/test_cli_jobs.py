"""``automations jobs run``: each periodic job once, in-process, printing its counts (SQLite and
PostgreSQL, through click's CliRunner)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from shared.cli import main
from shared.infra.clock import FrozenClock, system_clock
from shared.infra.db import migrate
from shared.infra.db.engine import make_engine
from shared.models import Chat
from shared.site_config import write_site_config
from tests import factories


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str | None]]:
    e: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AUTOMATIONS_")}
    e["AUTOMATIONS_DATA_DIR"] = str(tmp_path / "var")
    if request.param == "postgres":
        url = request.getfixturevalue("pg_committed")
    else:
        (tmp_path / "var").mkdir()
        url = f"sqlite:///{tmp_path / 'var' / 'automations.db'}"
        migrate.upgrade(url)
    e["AUTOMATIONS_DATABASE_URL"] = url
    yield e


def _engine(env: dict[str, str | None]) -> Engine:
    url = env["AUTOMATIONS_DATABASE_URL"]
    assert url
    return make_engine(url)


def _seed(env: dict[str, str | None]) -> tuple[list[object], object]:
    """Two inactive root chats (one with a sub-chat) and one chat archived 40 days ago."""
    now = system_clock.now()
    clock = FrozenClock(now - timedelta(days=40))
    engine = _engine(env)
    try:
        with Session(engine) as s:
            write_site_config(s, now, None, auto_archive_days=7, chat_retention_days=30)
            org = factories.org(s, clock)
            user = factories.user(s, clock, org)
            inactive = [factories.chat(s, clock, user, org.id) for _ in range(2)]
            factories.chat(
                s,
                clock,
                user,
                org.id,
                parent_chat_id=inactive[0].id,
                root_chat_id=inactive[0].id,
            )
            gone = factories.chat(s, clock, user, org.id, archived=True, archived_at=clock.now())
            factories.message(s, clock, gone)
            s.commit()
            return [c.id for c in inactive], gone.id
    finally:
        engine.dispose()


def _run(env: dict[str, str | None], *args: str) -> Result:
    result = CliRunner().invoke(main, ["jobs", "run", *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_each_job_runs_once_and_prints_its_counts(env: dict[str, str | None]) -> None:
    inactive, gone = _seed(env)
    out = _run(env, "auto-archive").output
    assert "archived 2 root chat(s) and 1 descendant(s)" in out and "1 digest(s)" in out
    out = _run(env, "chat-retention").output
    assert "deleted 1 chat(s)" in out and "1 message(s)" in out
    engine = _engine(env)
    try:
        with Session(engine) as s:
            rows = s.execute(select(Chat.id, Chat.archived)).all()
    finally:
        engine.dispose()
    assert gone not in {cid for cid, _ in rows}
    assert {cid for cid, archived in rows if archived} >= set(inactive)
    # a rerun does nothing, and says so
    counts = json.loads(_run(env, "auto-archive", "--json").output)
    assert counts["job"] == "auto-archive" and counts["ran"] is True
    assert (counts["archived_roots"], counts["digests"]) == (0, 0)
    counts = json.loads(_run(env, "chat-retention", "--json").output)
    assert counts["deleted_chats"] == 0
    assert "deleted 0 event(s)" in _run(env, "purge-events").output
    assert "re-published 0 pending event(s), parked 0" in _run(env, "sweep-events").output
    assert "0 stale running chat(s)" in _run(env, "recover-chats").output


def test_an_unknown_job_is_refused(env: dict[str, str | None]) -> None:
    result = CliRunner().invoke(main, ["jobs", "run", "nap"], env=env)
    assert result.exit_code == 2 and "nap" in result.output
