"""Failed authentications are throttled per client address (issue 16, item 6).

Fleet mode counts in the broker's Redis (shared by every gateway process), embedded mode in
process memory. After ``auth_failure_limit`` failures in the window an invalid token gets 429
with ``Retry-After``; a valid token from the same address keeps working.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from shared import accounts
from shared.infra.clock import FrozenClock
from shared.infra.config import Settings
from shared.infra.db import migrate
from shared.infra.db.engine import make_engine
from shared.infra.db.uow import Database
from tests import factories as f
from tests.harness.services import free_port
from webhook_gateway.app import create_app
from webhook_gateway.auth_throttle import client_key, storage_uri_for

ATTACKER = "203.0.113.7"
NEIGHBOUR = "203.0.113.8"


@dataclass
class Throttled:
    app: Flask
    client: FlaskClient
    token: str  # a valid token

    def get(self, token: str | None, address: str = ATTACKER, **headers: str) -> Any:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.get(
            "/api/v1/users/me", headers=headers, environ_base={"REMOTE_ADDR": address}
        )


AppFactory = Callable[..., Throttled]


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("throttle") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["fleet", "embedded"])
def make_app(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FrozenClock
) -> Iterator[AppFactory]:
    """Gateways on PostgreSQL + Redis (fleet: the units of work join the test's rolled-back
    session, as in tests/api/conftest.py) or on a SQLite database of their own with the
    embedded broker (embedded mode, no Redis)."""
    apps: list[Flask] = []
    if request.param == "fleet":
        session: Session = request.getfixturevalue("pg_session")
        base = {
            "database_url": request.getfixturevalue("pg_url"),
            "broker_url": request.getfixturevalue("redis_url"),
        }
        token = _token(session, clock)
        session.flush()
    else:
        db = tmp_path / "automations.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), db)
        base = {"database_url": f"sqlite:///{db}"}
        engine = make_engine(base["database_url"])
        with Session(engine) as own:
            token = _token(own, clock)
            own.commit()
        engine.dispose()

    def build(**overrides: Any) -> Throttled:
        settings = Settings(data_dir=tmp_path, **{**base, **overrides})
        app = create_app(settings, clock=clock)
        if request.param == "fleet":
            gw = app.extensions["automations"]
            gw.runtime.db = Database(session.connection(), gw.runtime.db.publisher)
        apps.append(app)
        return Throttled(app, app.test_client(), token)

    yield build
    for app in apps:
        app.extensions["automations"].dispose()


def _token(session: Session, clock: FrozenClock) -> str:
    user = f.user(session, clock, f.org(session, clock, name=f"t-{uuid.uuid4().hex[:8]}"))
    return accounts.create_token(session, clock, user.email, ["*"])[1]


def test_twenty_failures_then_429_while_valid_tokens_work(make_app: AppFactory) -> None:
    gw = make_app()
    for i in range(20):
        resp = gw.get(f"ca_guess{i}")
        assert resp.status_code == 401, i
        assert resp.get_json()["code"] == "invalid_token"
    throttled = gw.get("ca_guess20")
    assert throttled.status_code == 429
    assert throttled.get_json() == {
        "code": "too_many_requests",
        "message": throttled.get_json()["message"],
        "field": "Authorization",
    }
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert throttled.headers["Cache-Control"] == "no-store"
    assert gw.get("ca_guess21").status_code == 429  # still throttled
    # a valid token from the same address keeps working
    assert gw.get(gw.token).status_code == 200
    # other addresses are not affected
    assert gw.get("ca_guess22", address=NEIGHBOUR).status_code == 401
    # no credential is no guess: still the plain 401
    assert gw.get(None).status_code == 401
    assert gw.get(None).get_json()["code"] == "unauthorized"


def test_the_window_expires(make_app: AppFactory) -> None:
    gw = make_app(auth_failure_limit=2, auth_failure_window_seconds=1)
    assert [gw.get("ca_x").status_code for _ in range(3)] == [401, 401, 429]
    deadline = time.monotonic() + 15
    while (status := gw.get("ca_x").status_code) == 429 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status == 401


def test_zero_turns_the_throttle_off(make_app: AppFactory) -> None:
    gw = make_app(auth_failure_limit=0)
    assert {gw.get(f"ca_{i}").status_code for i in range(30)} == {401}


def test_behind_trusted_proxies_the_forwarded_address_counts(make_app: AppFactory) -> None:
    proxied = make_app(auth_failure_limit=2, trusted_proxies=1)
    for _ in range(2):
        assert proxied.get("ca_x", **{"X-Forwarded-For": ATTACKER}).status_code == 401
    assert proxied.get("ca_x", **{"X-Forwarded-For": ATTACKER}).status_code == 429
    # the same proxy forwarding another client
    assert proxied.get("ca_x", **{"X-Forwarded-For": NEIGHBOUR}).status_code == 401


def test_without_trusted_proxies_a_forged_header_does_not_escape(
    make_app: AppFactory,
) -> None:
    gw = make_app(auth_failure_limit=2)
    statuses = [
        gw.get("ca_x", **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_fleet_counts_are_shared_between_gateway_processes(
    pg_session: Session, pg_url: str, redis_url: str, tmp_path: Path, clock: FrozenClock
) -> None:
    apps = [
        create_app(
            Settings(database_url=pg_url, broker_url=redis_url, data_dir=tmp_path), clock=clock
        )
        for _ in range(2)
    ]
    try:
        for app in apps:
            gw = app.extensions["automations"]
            gw.runtime.db = Database(pg_session.connection(), gw.runtime.db.publisher)
        clients = [app.test_client() for app in apps]

        def bad(i: int) -> int:
            return (
                clients[i % 2]
                .get(  # type: ignore[no-any-return]
                    "/api/v1/users/me",
                    headers={"Authorization": "Bearer ca_nope"},
                    environ_base={"REMOTE_ADDR": ATTACKER},
                )
                .status_code
            )

        assert [bad(i) for i in range(20)] == [401] * 20
        assert bad(20) == 429 and bad(21) == 429
    finally:
        for app in apps:
            app.extensions["automations"].dispose()


def test_redis_down_fails_open(
    pg_session: Session,
    pg_url: str,
    tmp_path: Path,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The throttle's storage is unreachable: bad tokens still get 401 (never 500), with a
    warning; valid tokens work."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(
        Settings(database_url=pg_url, broker_url=dead, data_dir=tmp_path, auth_failure_limit=1),
        clock=clock,
    )
    gw = app.extensions["automations"]
    gw.runtime.db = Database(pg_session.connection(), gw.runtime.db.publisher)
    user = f.user(pg_session, clock, f.org(pg_session, clock, name=f"d-{uuid.uuid4().hex[:8]}"))
    _, token = accounts.create_token(pg_session, clock, user.email, ["*"])
    pg_session.flush()
    client = app.test_client()
    try:
        with caplog.at_level(logging.WARNING, logger="webhook_gateway.auth_throttle"):
            for _ in range(3):
                resp = client.get("/api/v1/users/me", headers={"Authorization": "Bearer ca_x"})
                assert resp.status_code == 401
        assert any("fails open" in r.getMessage() for r in caplog.records)
        ok = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
    finally:
        gw.dispose()


def test_storage_follows_the_mode(tmp_path: Path) -> None:
    assert storage_uri_for(Settings(data_dir=tmp_path)) == "memory://"  # embedded
    fleet = Settings(data_dir=tmp_path, broker_url="redis://redis:6379/0")
    assert storage_uri_for(fleet) == "redis://redis:6379/0"


def test_client_keys() -> None:
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"
    # one subscriber's /64 is one client
    assert (
        client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == ("2001:db8:1:2::/64")
    )
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key(None) == "unknown"
