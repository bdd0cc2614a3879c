"""API test fixtures: one app per xdist worker whose sessions join the test's rolled-back
transaction (fast, isolated), and a small world of organizations, users and tokens."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from shared import accounts
from shared.infra.clock import FrozenClock
from shared.infra.config import Settings
from shared.infra.db.uow import Database
from shared.models import (
    Automation,
    AutomationTrigger,
    Chat,
    Organization,
    OrgRole,
    SiteRole,
    TriggerType,
    User,
)
from tests import factories as f
from webhook_gateway.app import create_app

KEY1 = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(100, 132))).decode()
PUBLIC_URL = "https://automations.example.com"


@pytest.fixture(scope="session")
def api_app(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    settings = Settings(
        database_url=pg_url,
        broker_url="memory://",
        data_dir=tmp_path_factory.mktemp("api"),
        encryption_keys=KEY1,
        public_url=PUBLIC_URL,
        # schemathesis probes with invalid tokens after each case; the throttle has its own
        # tests (tests/api/test_auth_throttle.py)
        auth_failure_limit=0,
    )
    app = create_app(settings)
    yield app
    app.extensions["automations"].dispose()


@dataclass
class Principal:
    user: User
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    org_a: Organization
    org_b: Organization
    owner: Principal
    other: Principal  # member of org A
    admin_a: Principal  # org-admin of A
    admin_b: Principal  # org-admin of B only
    site: Principal  # site-admin, member of nothing
    narrow: dict[str, Principal] = field(default_factory=dict)  # owner's tokens by scope


@dataclass
class Api:
    client: FlaskClient
    session: Session
    clock: FrozenClock
    world: World
    app: Flask

    def call(
        self,
        method: str,
        path: str,
        who: Principal | None,
        json: Any = None,
        **kw: Any,
    ) -> Any:
        headers = dict(kw.pop("headers", {}))
        if who is not None:
            headers.update(who.headers)
        resp = self.client.open("/api/v1" + path, method=method, json=json, headers=headers, **kw)
        self.session.expire_all()
        return resp

    def get(self, path: str, who: Principal | None = None, **kw: Any) -> Any:
        return self.call("GET", path, who or self.world.owner, **kw)

    def post(self, path: str, json: Any = None, who: Principal | None = None, **kw: Any) -> Any:
        return self.call("POST", path, who or self.world.owner, json=json, **kw)

    def patch(self, path: str, json: Any, who: Principal | None = None, **kw: Any) -> Any:
        return self.call("PATCH", path, who or self.world.owner, json=json, **kw)

    def delete(self, path: str, who: Principal | None = None, **kw: Any) -> Any:
        return self.call("DELETE", path, who or self.world.owner, **kw)

    # helpers
    def create_automation(self, name: str = "deploys", **fields: Any) -> dict[str, Any]:
        body = {"name": name, "organization_id": str(self.world.org_a.id), **fields}
        resp = self.post("/automations", body)
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()  # type: ignore[no-any-return]

    def create_trigger(self, automation_id: Any, **fields: Any) -> dict[str, Any]:
        fields.setdefault("type", "webhook")
        resp = self.post(f"/automations/{automation_id}/triggers", fields)
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()  # type: ignore[no-any-return]


def _principal(session: Session, clock: FrozenClock, user: User, scopes: list[str]) -> Principal:
    _, token = accounts.create_token(session, clock, user.email, scopes)
    return Principal(user, token)


def make_world(session: Session, clock: FrozenClock) -> World:
    org_a = f.org(session, clock, name=f"acme-{uuid.uuid4().hex[:6]}")
    org_b = f.org(session, clock, name=f"globex-{uuid.uuid4().hex[:6]}")
    owner = f.user(session, clock, org_a)
    other = f.user(session, clock, org_a)
    admin_a = f.user(session, clock, org_a, role=OrgRole.ORG_ADMIN)
    admin_b = f.user(session, clock, org_b, role=OrgRole.ORG_ADMIN)
    site = f.user(session, clock, site_role=SiteRole.SITE_ADMIN)
    world = World(
        org_a=org_a,
        org_b=org_b,
        owner=_principal(session, clock, owner, ["*"]),
        other=_principal(session, clock, other, ["*"]),
        admin_a=_principal(session, clock, admin_a, ["*"]),
        admin_b=_principal(session, clock, admin_b, ["*"]),
        site=_principal(session, clock, site, ["*"]),
    )
    for scope in ("automation:read", "automation:write", "automation:*", "chat:read"):
        world.narrow[scope] = _principal(session, clock, owner, [scope])
    return world


@pytest.fixture
def api(api_app: Flask, pg_session: Session, clock: FrozenClock) -> Iterator[Api]:
    gw = api_app.extensions["automations"]
    saved = (gw.runtime.db, gw.clock)
    gw.runtime.db = Database(pg_session.connection(), saved[0].publisher)
    gw.clock = clock
    world = make_world(pg_session, clock)
    pg_session.flush()
    try:
        yield Api(api_app.test_client(), pg_session, clock, world, api_app)
    finally:
        gw.runtime.db, gw.clock = saved


@dataclass
class Fixture:
    """An automation of ``world.owner`` in org A with both kinds of trigger, events and a chat."""

    automation: Automation
    webhook: dict[str, Any]
    cron: AutomationTrigger
    chat: Chat


@pytest.fixture
def seeded(api: Api) -> Fixture:
    s, clock, w = api.session, api.clock, api.world
    data = api.create_automation("deploys", instructions="Look at this deploy.")
    webhook = api.create_trigger(data["id"], label_paths={"repo": "repository.full_name"})
    auto = s.get(Automation, uuid.UUID(data["id"]))
    assert auto is not None
    cron = f.cron_trigger(s, clock, auto)
    chat = f.chat(
        s, clock, w.owner.user, w.org_a.id, labels={"repo": "acme/api"}, automation_id=auto.id
    )
    f.message(s, clock, chat, "first")
    f.message(s, clock, chat, "deleted", deleted=True)
    for i in range(3):
        f.event(
            s,
            clock,
            auto,
            trigger_id=uuid.UUID(webhook["id"]),
            payload={"n": i},
            status="created" if i == 2 else "filtered",
            created_chat_id=chat.id if i == 2 else None,
            received_at=clock.advance(seconds=1),
        )
    s.flush()
    assert cron.type is TriggerType.CRON
    return Fixture(automation=auto, webhook=webhook, cron=cron, chat=chat)


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    return tmp_path
