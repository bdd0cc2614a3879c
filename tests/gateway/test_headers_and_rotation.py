"""Stored headers and event types, signature failure reasons, and immediate secret rotation
(SPEC 4.2.1, 4.2.2), against real PostgreSQL.

The rotation tests run the gateway with a trigger cache far longer than SPEC's 5 s bound, so
that passing them shows the cache is not what makes a regenerated secret work.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from shared import accounts
from shared.events.ingest import (
    MAX_EVENT_TYPE_LENGTH,
    MAX_HEADER_VALUE_CHARS,
    MAX_STORED_HEADERS,
    SECRET_HEADERS,
)
from shared.infra.clock import FrozenClock
from shared.infra.config import Settings
from shared.infra.db import migrate
from shared.infra.db.engine import make_engine
from shared.models import Automation, AutomationEvent, AutomationTrigger, EventStatus, User
from shared.triggers.lookup import (
    ACCEPT_MAX_AGE_SECONDS,
    FORCED_RELOAD_INTERVAL_SECONDS,
    TriggerCache,
)
from shared.triggers.signatures import sign_github, sign_standard
from tests.gateway.conftest import SECRET, GatewayFactory, GatewayHarness, url_for
from webhook_gateway import ingress
from webhook_gateway.app import create_app

BODY = b'{"action": "opened", "type": "invoice.paid"}'
OTHER = "1f" * 32
LONG_TTL = 60.0


def _only_event(gw: GatewayHarness) -> AutomationEvent:
    [event] = gw.events()
    return event


def _reasons(gw: GatewayHarness) -> dict[str, int]:
    """Bad-signature rows as reason → occurrences; fails if a reason has two rows."""
    rows = [e for e in gw.events() if e.status is EventStatus.ERROR]
    reasons = {r.payload["_signature_failed"]: r.occurrences for r in rows}
    assert len(reasons) == len(rows)
    return reasons


# --- stored headers and event types (SPEC 4.2.1) ---------------------------------------------


def test_accepted_event_stores_headers_lower_cased_without_secrets(gw: GatewayHarness) -> None:
    tid = gw.seed()
    secrets = {
        "Authorization": "Bearer sk-top-secret-1",
        "Proxy-Authorization": "Basic c2VjcmV0LTI=",
        "Cookie": "session=secret-3",
        "Set-Cookie": "session=secret-4",
        "X-Hub-Signature": "sha1=" + "5" * 40,
        "X-Gitlab-Token": "secret-6",
    }
    resp = gw.post(
        tid,
        BODY,
        delivery_id="d-1",
        headers={"X-GitHub-Event": "pull_request", "User-Agent": "GitHub-Hookshot/abc", **secrets},
    )
    assert resp.status_code == 202
    event = _only_event(gw)
    assert event.event_type == "pull_request"
    stored = event.headers
    assert stored is not None
    assert stored["x-github-event"] == "pull_request"
    assert stored["x-github-delivery"] == "d-1"
    assert stored["user-agent"] == "GitHub-Hookshot/abc"
    assert stored["content-type"] == "application/json"
    assert all(name == name.lower() for name in stored)
    assert not SECRET_HEADERS & set(stored)
    assert "x-hub-signature-256" not in stored
    dump = str(stored)
    for value in [*secrets.values(), sign_github(SECRET, BODY)]:
        assert value not in dump


def test_standard_webhooks_type_comes_from_the_body(gw: GatewayHarness) -> None:
    tid = gw.seed()
    assert gw.post(tid, BODY, scheme="standard", delivery_id="msg_1").status_code == 202
    event = _only_event(gw)
    assert event.event_type == "invoice.paid"
    assert event.headers is not None
    assert event.headers["webhook-id"] == "msg_1"
    assert "webhook-timestamp" in event.headers
    assert "webhook-signature" not in event.headers


@pytest.mark.parametrize(
    ("body", "scheme", "headers", "expected"),
    [
        # the first present header wins: GitHub, GitLab, Bitbucket
        (BODY, "github", {"X-Event-Key": "repo:push", "X-Gitlab-Event": "Push Hook"}, "Push Hook"),
        (BODY, "github", {"X-Event-Key": "repo:push", "X-GitHub-Event": "push"}, "push"),
        (BODY, "github", {"X-Event-Key": "repo:push"}, "repo:push"),
        (BODY, "github", {"X-GitHub-Event": "  ", "X-Event-Key": "repo:push"}, "repo:push"),
        # a header also wins over a Standard Webhooks body
        (BODY, "standard", {"X-GitHub-Event": "push"}, "push"),
        # the body's "type" counts only for Standard Webhooks requests
        (BODY, "github", {}, None),
        (b'{"type": 7}', "standard", {}, None),
        (b'[{"type": "x"}]', "standard", {}, None),
        (b"type=invoice.paid", "standard", {}, None),
        (b'{"type": "big", "n": 123456789012345678901234567890}', "standard", {}, "big"),
        (b'{"type": "nul\\u0000here"}', "standard", {}, "nul\ufffdhere"),
    ],
    ids=[
        "gitlab-before-bitbucket",
        "github-first",
        "bitbucket",
        "empty-header-skipped",
        "header-over-body",
        "github-body-type-ignored",
        "non-string-type",
        "array-body",
        "not-json",
        "big-integer",
        "nul-replaced",
    ],
)
def test_event_type_sources(
    gw: GatewayHarness, body: bytes, scheme: str, headers: dict[str, str], expected: str | None
) -> None:
    tid = gw.seed()
    assert gw.post(tid, body, scheme=scheme, headers=headers).status_code == 202
    assert _only_event(gw).event_type == expected


def test_standard_type_of_a_truncated_body_is_read_from_the_whole_body(
    make_gateway: GatewayFactory,
) -> None:
    gw = make_gateway(stored_payload_max_bytes=1024)
    tid = gw.seed()
    body = b'{"pad": "' + b"x" * 4000 + b'", "type": "late.type"}'
    assert gw.post(tid, body, scheme="standard").status_code == 202
    event = _only_event(gw)
    assert event.payload.get("_truncated") is True
    assert event.event_type == "late.type"


def test_stored_headers_and_event_type_are_bounded(gw: GatewayHarness) -> None:
    tid = gw.seed()
    many = {f"X-Extra-{i:03d}": f"value-{i}" for i in range(MAX_STORED_HEADERS + 50)}
    long_value = "v" * (MAX_HEADER_VALUE_CHARS * 5)
    long_type = "t" * (MAX_EVENT_TYPE_LENGTH + 100)
    headers = {"X-GitHub-Event": long_type, "X-Long": long_value, **many}
    assert gw.post(tid, BODY, headers=headers).status_code == 202
    event = _only_event(gw)
    assert event.event_type == long_type[:MAX_EVENT_TYPE_LENGTH]
    assert event.headers is not None
    assert len(event.headers) == MAX_STORED_HEADERS
    assert all(len(value) <= MAX_HEADER_VALUE_CHARS for value in event.headers.values())
    # the first headers are kept, the rest dropped
    assert event.headers["x-long"] == long_value[:MAX_HEADER_VALUE_CHARS]
    assert "x-extra-000" in event.headers and "x-extra-149" not in event.headers


def test_a_duplicate_delivery_keeps_the_original_headers(gw: GatewayHarness) -> None:
    tid = gw.seed()
    gw.post(tid, BODY, delivery_id="d-1", headers={"X-GitHub-Event": "push"})
    again = gw.post(tid, BODY, delivery_id="d-1", headers={"X-GitHub-Event": "ping"})
    assert again.get_json()["duplicate"] is True
    event = _only_event(gw)
    assert event.event_type == "push"
    assert event.headers is not None and event.headers["x-github-event"] == "push"


# --- signature failure reasons (SPEC 4.2.1) ---------------------------------------------------


def _standard(secret: str, ts: int, **override: str) -> dict[str, str]:
    headers = {
        "webhook-id": "msg_r",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_standard(secret, "msg_r", ts, BODY),
    }
    headers.update(override)
    return headers


def test_each_reason_is_recorded_as_its_own_folded_row(gw: GatewayHarness) -> None:
    """The reported incident: two wrong signatures and two stale timestamps used to fold into
    one row saying ``invalid`` with four occurrences."""
    tid = gw.seed()
    now = int(gw.clock.now().timestamp())

    def post(headers: dict[str, str]) -> str:
        resp = gw.client.post(url_for(tid), data=BODY, headers=headers)
        assert resp.status_code == 401
        body = resp.get_json()
        assert set(body) == {"code", "message"} and body["code"] == "invalid_signature"
        return str(body["message"])

    wrong = {"X-Hub-Signature-256": sign_github(OTHER, BODY)}
    assert post(wrong).startswith("signature invalid:")
    assert post(_standard(SECRET, now - 3600)).startswith("signature timestamp_out_of_tolerance:")
    assert post(wrong).startswith("signature invalid:")
    assert post(_standard(SECRET, now + 3600)).startswith("signature timestamp_out_of_tolerance:")
    assert _reasons(gw) == {"invalid": 2, "timestamp_out_of_tolerance": 2}

    gh_malformed = post({"X-Hub-Signature-256": "sha256=abc"})
    assert gh_malformed.startswith("signature malformed:") and "sha256=" in gh_malformed
    std_malformed = post(_standard(SECRET, now, **{"webhook-timestamp": "soon"}))
    assert std_malformed.startswith("signature malformed:") and "v1," in std_malformed
    post(_standard(SECRET, now, **{"webhook-signature": "v2,AAAA"}))
    assert post({}).startswith("signature missing:")
    assert _reasons(gw) == {
        "invalid": 2,
        "timestamp_out_of_tolerance": 2,
        "malformed": 3,
        "missing": 1,
    }
    with gw.engine.connect() as conn:
        with_headers = conn.execute(
            text("SELECT count(*) FROM automation_events WHERE headers IS NOT NULL")
        ).scalar_one()
    assert with_headers == 0  # the rejected requests' headers are not kept at all


def test_reasons_fold_separately_on_sqlite(tmp_path: Path, clock: FrozenClock) -> None:
    db_url = f"sqlite:///{tmp_path / 'automations.db'}"
    migrate.upgrade(db_url)
    app = create_app(Settings(data_dir=tmp_path, database_url=db_url), clock=clock)
    engine = make_engine(db_url)
    gw = GatewayHarness(
        app, app.test_client(), clock, engine, app.extensions["automations"].settings
    )
    try:
        tid = gw.seed()
        assert gw.post(tid, secret=OTHER).status_code == 401
        assert gw.post(tid, secret=None).status_code == 401
        assert gw.post(tid, secret=OTHER).status_code == 401
        assert _reasons(gw) == {"invalid": 2, "missing": 1}
        assert gw.post(tid, headers={"X-GitHub-Event": "push"}).status_code == 202
        accepted = [e for e in gw.events() if e.status is EventStatus.PENDING]
        assert [(e.event_type, e.headers and e.headers["x-github-event"]) for e in accepted] == [
            ("push", "push")
        ]
    finally:
        engine.dispose()
        app.extensions["automations"].dispose()


# --- immediate secret rotation (SPEC 4.2.2) ---------------------------------------------------


def _regenerate_through_the_api(gw: GatewayHarness, trigger_id: uuid.UUID) -> str:
    """Regenerate the secret without overlap through the API; returns the new hex secret."""
    with Session(gw.engine) as session:
        trigger = session.get(AutomationTrigger, trigger_id)
        assert trigger is not None
        automation = session.get(Automation, trigger.automation_id)
        assert automation is not None
        owner = session.get(User, automation.owner_id)
        assert owner is not None
        _, token = accounts.create_token(session, gw.clock, owner.email, ["*"])
        automation_id = automation.id
        session.commit()
    resp = gw.client.post(
        f"/api/v1/automations/{automation_id}/triggers/{trigger_id}/regenerate-secret",
        json={"previous_valid_for_seconds": 0},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 200, resp.get_json()
    new_secret = resp.get_json()["webhook_secret"]
    assert isinstance(new_secret, str) and new_secret != SECRET
    return new_secret


def _count_loads(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """Record every database load of a trigger by the ingress."""
    loads: list[uuid.UUID] = []
    real: Callable[..., Any] = ingress.load_trigger

    def counting(session: Any, keyring: Any, trigger_id: uuid.UUID) -> Any:
        loads.append(trigger_id)
        return real(session, keyring, trigger_id)

    monkeypatch.setattr(ingress, "load_trigger", counting)
    return loads


def test_regenerated_secret_is_valid_at_once_and_the_old_one_rejected(
    make_gateway: GatewayFactory,
) -> None:
    gw = make_gateway(trigger_cache_seconds=LONG_TTL)
    tid = gw.seed()
    assert gw.post(tid).status_code == 202  # the old secret is now cached
    new_secret = _regenerate_through_the_api(gw, tid)
    # no clock advance at all: the cache entry is as young as it gets
    assert gw.post(tid, secret=new_secret).status_code == 202
    assert gw.post(tid, secret=SECRET).status_code == 401
    assert gw.post(tid, secret=new_secret, scheme="standard").status_code == 202
    assert _reasons(gw) == {"invalid": 1}


def test_rotation_reaches_two_gateway_processes(make_gateway: GatewayFactory) -> None:
    """Two app instances are two processes' worth of caches; only the first serves the
    API call that regenerates the secret."""
    first = make_gateway(trigger_cache_seconds=LONG_TTL)
    second = make_gateway(trigger_cache_seconds=LONG_TTL)
    tid = first.seed()
    assert first.post(tid).status_code == 202
    assert second.post(tid).status_code == 202
    new_secret = _regenerate_through_the_api(first, tid)
    assert second.post(tid, secret=new_secret).status_code == 202
    assert first.post(tid, secret=new_secret).status_code == 202
    assert second.post(tid, secret=SECRET).status_code == 401
    assert first.post(tid, secret=SECRET).status_code == 401


def test_a_replaced_secret_is_rejected_within_5_seconds_without_new_traffic(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody sends with the new secret, so no failure refreshes the cache: the cached
    snapshot stops accepting on its own once it is ACCEPT_MAX_AGE_SECONDS old."""
    assert ACCEPT_MAX_AGE_SECONDS < 5
    gw = make_gateway(trigger_cache_seconds=LONG_TTL)
    tid = gw.seed()
    assert gw.post(tid).status_code == 202
    gw.update_trigger(tid, webhook_secret=OTHER)  # replaced without overlap
    loads = _count_loads(monkeypatch)
    gw.clock.advance(seconds=ACCEPT_MAX_AGE_SECONDS)
    assert gw.post(tid).status_code == 401
    assert gw.post(tid, secret=OTHER).status_code == 202
    assert loads == [tid]  # one fresh load, which the cache then serves


def test_a_flood_of_bad_signatures_reloads_at_most_once_per_interval(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = make_gateway(trigger_cache_seconds=LONG_TTL)
    tid = gw.seed()
    assert gw.post(tid).status_code == 202
    loads = _count_loads(monkeypatch)
    for _ in range(20):
        assert gw.post(tid, secret=OTHER).status_code == 401
    assert loads == [tid]
    # failures that no secret could fix never reload
    assert gw.post(tid, secret=None).status_code == 401
    assert gw.post(tid, headers={"X-Hub-Signature-256": "sha256=zz"}).status_code == 401
    assert loads == [tid]
    # the bound a flood puts on rotation: within the interval after a forced reload, a new
    # secret waits for the next one
    gw.update_trigger(tid, webhook_secret=OTHER)
    assert gw.post(tid, secret=OTHER).status_code == 401
    gw.clock.advance(seconds=FORCED_RELOAD_INTERVAL_SECONDS)
    assert gw.post(tid, secret=OTHER).status_code == 202
    assert loads == [tid, tid]
    assert _reasons(gw) == {"invalid": 21, "missing": 1, "malformed": 1}


def test_a_forced_reload_sees_a_deleted_trigger(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(trigger_cache_seconds=LONG_TTL)
    tid = gw.seed()
    assert gw.post(tid).status_code == 202
    with gw.engine.begin() as conn:
        conn.execute(delete(AutomationTrigger).where(AutomationTrigger.id == tid))
    assert gw.post(tid, secret=OTHER).status_code == 404
    with Session(gw.engine) as session:
        assert session.scalars(select(AutomationEvent.status)).all() == [EventStatus.PENDING]


def test_trigger_cache_forced_reload_claims_and_accept_age() -> None:
    clock = FrozenClock()
    cache = TriggerCache(clock, LONG_TTL, forced_reload_interval=1.0, accept_max_age=4.0)
    tid = uuid.uuid4()
    assert cache.claim_forced_reload(tid)  # nothing cached: the caller's snapshot is stale
    cache.put(tid, None)
    assert cache.claim_forced_reload(tid)
    assert not cache.claim_forced_reload(tid)
    cache.put(tid, None)  # the reload's result keeps the claim
    assert not cache.claim_forced_reload(tid)
    clock.advance(seconds=0.999)
    assert not cache.claim_forced_reload(tid)
    clock.advance(seconds=0.002)
    assert cache.claim_forced_reload(tid)
    entry = cache.entry(tid)
    assert entry is not None and cache.may_accept(entry)
    clock.advance(seconds=4)
    assert not cache.may_accept(entry)
    assert cache.entry(tid) is not None  # still cached for the TTL (misses, status)
    clock.advance(seconds=-60)  # a clock stepped back expires the entry and the claim
    assert cache.entry(tid) is None
    assert cache.claim_forced_reload(tid)
