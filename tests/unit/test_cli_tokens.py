"""`tokens create --expires-in/--expires-at`, `tokens list | revoke` and `users list |
deactivate | activate` (direct database access) on SQLite and PostgreSQL, in process with a
frozen clock."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.accounts import authz, hash_token
from shared.cli import main
from shared.cli import tokens as cli_tokens
from shared.cli import users as cli_users
from shared.infra.clock import FrozenClock
from shared.infra.config import Settings
from shared.infra.db import migrate
from shared.infra.db.engine import make_engine
from shared.infra.runtime import Runtime
from shared.models import ApiKey, AuditLog, User


@dataclass
class Cli:
    runtime: Runtime
    clock: FrozenClock

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    def ok(self, *args: str) -> Result:
        result = self.run(*args)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result

    def session(self) -> Session:
        return Session(self.runtime.engine, expire_on_commit=False)

    def authenticates(self, token: str) -> bool:
        with self.session() as s:
            return authz.authenticate(s, self.clock, token) is not None


@pytest.fixture(params=["sqlite", "postgres"])
def cli(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cli]:
    if request.param == "postgres":
        url = request.getfixturevalue("pg_committed")
    else:
        url = f"sqlite:///{tmp_path / 'cli.db'}"
        migrate.upgrade(url)
    clock = FrozenClock()
    settings = Settings(database_url=url, broker_url="memory://", data_dir=tmp_path)
    runtime = Runtime(settings, clock=clock, engine=make_engine(url))
    for module in (cli_tokens, cli_users):
        monkeypatch.setattr(module, "runtime_or_exit", lambda: runtime)
    c = Cli(runtime, clock)
    c.ok("users", "create", "ada@example.com", "--org", "acme")
    c.ok("users", "create", "root@example.com", "--org", "ops", "--role", "site-admin")
    try:
        yield c
    finally:
        runtime.dispose()


def stored_key(cli: Cli, token: str) -> ApiKey:
    with cli.session() as s:
        key = s.scalar(select(ApiKey).where(ApiKey.token_hash == hash_token(token)))
    assert key is not None
    return key


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def test_create_with_expiry(cli: Cli) -> None:
    now = cli.clock.now()
    for option, value, want in [
        ("--expires-in", "30d", now + timedelta(days=30)),
        ("--expires-in", "12h", now + timedelta(hours=12)),
        ("--expires-in", "90m", now + timedelta(minutes=90)),
        ("--expires-at", "2026-03-01T10:00:00Z", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("--expires-at", "2026-03-01T12:00:00+02:00", datetime(2026, 3, 1, 10, tzinfo=UTC)),
    ]:
        result = cli.ok("tokens", "create", "ada@example.com", option, value)
        token = result.stdout.strip()
        assert token.startswith("ca_") and len(result.stdout.splitlines()) == 1
        assert "expires at" in result.stderr
        assert stored_key(cli, token).expires_at == want
    plain = cli.ok("tokens", "create", "ada@example.com").stdout.strip()
    assert stored_key(cli, plain).expires_at is None


def test_expired_token_is_refused_by_the_injected_clock(cli: Cli) -> None:
    token = cli.ok("tokens", "create", "ada@example.com", "--expires-in", "1h").stdout.strip()
    assert cli.authenticates(token)
    cli.clock.advance(minutes=59)
    assert cli.authenticates(token)
    cli.clock.advance(minutes=1)
    assert not cli.authenticates(token)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--expires-in", "soon"), "--expires-in"),
        (("--expires-in", "0"), "longer than 0"),
        (("--expires-in", "-5d"), "--expires-in"),
        (("--expires-at", "tomorrow"), "--expires-at"),
        (("--expires-at", "2020-01-01T00:00:00Z"), "not in the future"),
        (("--expires-in", "1d", "--expires-at", "2027-01-01"), "not both"),
    ],
)
def test_create_bad_expiry_writes_nothing(cli: Cli, args: tuple[str, ...], needle: str) -> None:
    result = cli.run("tokens", "create", "ada@example.com", *args)
    assert result.exit_code == 2 and needle in result.stderr, result.stderr
    assert result.stdout == ""
    with cli.session() as s:
        assert s.scalars(select(ApiKey)).all() == []


def test_list_and_revoke(cli: Cli) -> None:
    ada = cli.ok("tokens", "create", "ada@example.com", "--name", "laptop").stdout.strip()
    cli.clock.advance(seconds=1)
    root = cli.ok("tokens", "create", "root@example.com", "--scope", "chat:read").stdout.strip()

    listed = as_json(cli.ok("tokens", "list", "--json"))
    assert [t["user"] for t in listed] == ["root@example.com", "ada@example.com"]  # newest first
    assert listed[1]["name"] == "laptop" and listed[0]["scopes"] == ["chat:read"]
    text = json.dumps(listed)
    assert ada not in text and root not in text and stored_key(cli, ada).token_hash not in text
    only_ada = as_json(cli.ok("tokens", "list", "--user", "ADA@example.com", "--json"))
    assert [t["id"] for t in only_ada] == [str(stored_key(cli, ada).id)]
    table = cli.ok("tokens", "list").stdout
    assert "laptop" in table and "TOKEN_PREFIX" in table and ada not in table

    key_id = str(stored_key(cli, ada).id)
    result = cli.ok("tokens", "revoke", key_id)
    assert "revoked" in result.stdout
    assert not cli.authenticates(ada) and cli.authenticates(root)
    assert [t["user"] for t in as_json(cli.ok("tokens", "list", "--json"))] == ["root@example.com"]
    every = as_json(cli.ok("tokens", "list", "--all", "--json"))
    assert {t["id"]: t["revoked_at"] is not None for t in every}[key_id] is True
    cli.ok("tokens", "revoke", key_id)  # again: nothing changes
    with cli.session() as s:
        actions = [a.action for a in s.scalars(select(AuditLog))]
    assert actions.count("token.revoke") == 1


def test_list_and_revoke_errors(cli: Cli) -> None:
    result = cli.run("tokens", "revoke", str(uuid.uuid4()))
    assert result.exit_code == 1 and "not found" in result.stderr
    result = cli.run("tokens", "revoke", "nope")
    assert result.exit_code == 2 and "TOKEN_ID" in result.stderr
    result = cli.run("tokens", "list", "--user", "nobody@example.com")
    assert result.exit_code == 2 and "no user with id or email" in result.stderr
    assert "no tokens" in cli.run("tokens", "list").stderr


def test_users_list_deactivate_activate(cli: Cli) -> None:
    token = cli.ok("tokens", "create", "ada@example.com").stdout.strip()
    users = as_json(cli.ok("users", "list", "--json"))
    assert {u["email"]: (u["active"], u["site_role"]) for u in users} == {
        "ada@example.com": (True, "member"),
        "root@example.com": (True, "site-admin"),
    }
    assert set(users[0]) == {"id", "email", "name", "site_role", "active", "created_at"}

    assert "deactivated" in cli.ok("users", "deactivate", "ada@example.com").stdout
    assert not cli.authenticates(token)
    assert [u["email"] for u in as_json(cli.ok("users", "list", "--inactive", "--json"))] == [
        "ada@example.com"
    ]
    assert "unchanged" in cli.ok("users", "deactivate", "ada@example.com").stdout
    bad = cli.run("tokens", "create", "ada@example.com")
    assert bad.exit_code == 2 and "deactivated" in bad.stderr and bad.stdout == ""

    ada_id = next(u["id"] for u in users if u["email"] == "ada@example.com")
    assert "active" in cli.ok("users", "activate", ada_id).stdout
    assert cli.authenticates(token)
    with cli.session() as s:
        user = s.scalar(select(User).where(User.email == "ada@example.com"))
        actions = [a.action for a in s.scalars(select(AuditLog).order_by(AuditLog.created_at))]
    assert user is not None and user.active
    assert actions == ["user.deactivate", "user.activate"]
    table = cli.ok("users", "list").stdout
    assert "ada@example.com" in table and "ACTIVE" in table


def test_users_errors(cli: Cli) -> None:
    result = cli.run("users", "deactivate", "nobody@example.com")
    assert result.exit_code == 1 and "no user with id or email" in result.stderr
    result = cli.run("users", "activate", str(uuid.uuid4()))
    assert result.exit_code == 1 and "no user" in result.stderr
    result = cli.run("users", "deactivate")
    assert result.exit_code == 2 and "USER" in result.stderr


def test_help_texts() -> None:
    runner = CliRunner()
    for args in (
        ["tokens", "--help"],
        ["tokens", "list", "--help"],
        ["tokens", "revoke", "--help"],
        ["users", "list", "--help"],
        ["users", "deactivate", "--help"],
        ["users", "activate", "--help"],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 0 and "Usage:" in result.output
    out = runner.invoke(main, ["tokens", "create", "--help"]).output
    assert "--expires-in" in out and "--expires-at" in out
