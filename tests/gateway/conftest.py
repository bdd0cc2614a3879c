"""Fixtures for the webhook ingress tests: a gateway app on real PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from shared.infra.clock import FrozenClock
from shared.infra.config import Settings
from shared.infra.crypto import Keyring
from shared.infra.db.engine import make_engine
from shared.models import AutomationEvent, AutomationStatus, AutomationTrigger
from shared.triggers.signatures import sign_github, sign_standard
from tests import factories
from webhook_gateway.app import create_app
from webhook_gateway.context import Gateway

SECRET = "c0ffee" * 10 + "beef"  # 64 hex characters
assert len(SECRET) == 64


def url_for(trigger_id: Any) -> str:
    return f"/api/v1/automations/triggers/{trigger_id}/webhook"


@dataclass
class GatewayHarness:
    app: Flask
    client: FlaskClient
    clock: FrozenClock
    engine: Engine
    settings: Settings
    _engines: list[Engine] = field(default_factory=list)

    def seed(
        self,
        *,
        status: AutomationStatus = AutomationStatus.ACTIVE,
        secret: str = SECRET,
        encrypt_with: Keyring | None = None,
        previous: str | None = None,
        previous_expires_at: datetime | None = None,
        cron: bool = False,
        replay_window_seconds: int | None = None,
    ) -> uuid.UUID:
        """Commit an automation with one trigger; returns the trigger id. The trigger has
        the default replay window unless ``replay_window_seconds`` is given (0: tests that
        send one body several times as distinct deliveries)."""
        with Session(self.engine, expire_on_commit=False) as session:
            auto = factories.automation(session, self.clock, status=status)
            if cron:
                trig = factories.cron_trigger(session, self.clock, auto)
            else:
                kw: dict[str, Any] = {}
                if replay_window_seconds is not None:
                    kw["replay_window_seconds"] = replay_window_seconds
                stored, key_id = secret, None
                if encrypt_with is not None:
                    stored, key_id = encrypt_with.encrypt(secret)
                if previous is not None:
                    prev_stored, prev_key = previous, None
                    if encrypt_with is not None:
                        prev_stored, prev_key = encrypt_with.encrypt(previous)
                    kw.update(
                        previous_webhook_secret=prev_stored,
                        previous_webhook_secret_key_id=prev_key,
                        previous_secret_expires_at=previous_expires_at,
                    )
                trig = factories.webhook_trigger(
                    session,
                    self.clock,
                    auto,
                    webhook_secret=stored,
                    webhook_secret_key_id=key_id,
                    **kw,
                )
            session.commit()
            return trig.id

    def update_trigger(self, trigger_id: uuid.UUID, **values: Any) -> None:
        with Session(self.engine) as session:
            trig = session.get(AutomationTrigger, trigger_id)
            assert trig is not None
            for key, value in values.items():
                setattr(trig, key, value)
            session.commit()

    def events(self) -> list[AutomationEvent]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(
                session.scalars(select(AutomationEvent).order_by(AutomationEvent.received_at))
            )

    def post(
        self,
        trigger_id: Any,
        body: bytes = b'{"action": "opened"}',
        *,
        secret: str | None = SECRET,
        scheme: str = "github",
        delivery_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        client: FlaskClient | None = None,
    ) -> TestResponse:
        return (client or self.client).post(
            url_for(trigger_id),
            data=body,
            headers=signed_headers(
                body, secret, scheme, delivery_id, self.clock.now().timestamp(), headers
            ),
        )


def signed_headers(
    body: bytes,
    secret: str | None,
    scheme: str = "github",
    delivery_id: str | None = None,
    now: float = 0.0,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if scheme == "github":
        if secret is not None:
            headers["X-Hub-Signature-256"] = sign_github(secret, body)
        if delivery_id is not None:
            headers["X-GitHub-Delivery"] = delivery_id
    else:
        webhook_id = delivery_id or f"msg_{uuid.uuid4().hex}"
        headers["webhook-id"] = webhook_id
        headers["webhook-timestamp"] = str(int(now))
        if secret is not None:
            headers["webhook-signature"] = sign_standard(secret, webhook_id, int(now), body)
    headers.update(extra or {})
    return headers


GatewayFactory = Callable[..., GatewayHarness]


@pytest.fixture
def make_gateway(
    pg_committed: str, redis_url: str, tmp_path: Path, clock: FrozenClock
) -> Iterator[GatewayFactory]:
    engines: list[Engine] = []
    gateways: list[Gateway] = []

    def build(**overrides: Any) -> GatewayHarness:
        values: dict[str, Any] = {
            "database_url": pg_committed,
            "broker_url": redis_url,
            "data_dir": tmp_path,
        }
        values.update(overrides)
        settings = Settings(**values)
        app = create_app(settings, clock=clock)
        engine = make_engine(pg_committed)
        engines.append(engine)
        gateways.append(app.extensions["automations"])
        return GatewayHarness(app, app.test_client(), clock, engine, settings)

    yield build
    for engine in engines:
        engine.dispose()
    for gw in gateways:
        gw.dispose()


@pytest.fixture
def gw(make_gateway: GatewayFactory) -> GatewayHarness:
    return make_gateway()
