"""`db upgrade`, `users create` and `tokens create` against a real database."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from shared.accounts.tokens import hash_token
from shared.infra.db.engine import make_engine, make_session_factory
from shared.models import ApiKey, OrganizationMember, OrgRole, SiteRole, User
from tests.harness.processes import REPO, cli


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli(*args), env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("AUTOMATIONS_")}
    e["AUTOMATIONS_DATA_DIR"] = str(tmp_path / "var")
    if request.param == "postgres":
        e["AUTOMATIONS_DATABASE_URL"] = request.getfixturevalue("pg_committed")
    return e


def _session(env: dict[str, str], tmp_path: Path):  # type: ignore[no-untyped-def]
    url = env.get("AUTOMATIONS_DATABASE_URL") or f"sqlite:///{tmp_path / 'var' / 'automations.db'}"
    return make_session_factory(make_engine(url))()


def test_users_and_tokens(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "db", "upgrade").returncode == 0
    out = run(env, "users", "create", "Ada@Example.com", "--org", "acme", "--role", "org-admin")
    assert out.returncode == 0, out.stderr
    out = run(env, "users", "create", "root@example.com", "--org", "ops", "--role", "site-admin")
    assert out.returncode == 0, out.stderr

    tok = run(
        env,
        "tokens",
        "create",
        "ada@example.com",
        "--scope",
        "automation:read",
        "--scope",
        "chat:read",
    )
    assert tok.returncode == 0, tok.stderr
    lines = tok.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ca_") and len(lines[0]) > 40
    token = lines[0]

    session = _session(env, tmp_path)
    ada = session.scalar(select(User).where(User.email == "ada@example.com"))
    assert ada is not None and ada.site_role == SiteRole.MEMBER
    member = session.scalar(select(OrganizationMember).where(OrganizationMember.user_id == ada.id))
    assert member is not None and member.role == OrgRole.ORG_ADMIN
    root = session.scalar(select(User).where(User.email == "root@example.com"))
    assert root is not None and root.site_role == SiteRole.SITE_ADMIN
    key = session.scalar(select(ApiKey).where(ApiKey.user_id == ada.id))
    assert key is not None
    assert key.token_hash == hash_token(token) and token not in key.token_hash
    assert key.scopes == ["automation:read", "chat:read"]
    session.close()


def test_errors_are_clear(env: dict[str, str]) -> None:
    assert run(env, "db", "upgrade").returncode == 0
    bad = run(env, "users", "create", "not-an-email", "--org", "acme")
    assert bad.returncode == 2 and "not an email address" in bad.stderr
    bad = run(env, "users", "create", "a@b.c", "--org", "acme", "--role", "king")
    assert bad.returncode != 0 and "king" in bad.stderr
    bad = run(env, "tokens", "create", "nobody@example.com")
    assert bad.returncode == 2 and "no user with email" in bad.stderr and bad.stdout == ""
    bad = run(env, "tokens", "create", "a@b.c", "--scope", "root")
    assert bad.returncode != 0 and "root" in bad.stderr


def test_bad_configuration_exits_with_message(env: dict[str, str]) -> None:
    env = {**env, "AUTOMATIONS_DATABASE_URL": "nonsense"}
    out = run(env, "db", "upgrade")
    assert out.returncode == 2
    assert "AUTOMATIONS_DATABASE_URL" in out.stderr and "Traceback" not in out.stderr
