"""Issue 16, webhook ingress: deduplication on signed identity only (Standard Webhooks'
``webhook-id``; GitHub-style: the delivery headers and a replay window over the body), 404
for a trigger deleted while cached, the signature before the automation's status, one
canonical webhook path, and ``nosniff`` on every answer the ingress writes itself.

Against real PostgreSQL and Redis through the gateway app (tests/gateway/conftest.py).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from shared import accounts
from shared.events.ingest import BAD_SIGNATURE_ERROR, record_event, replay_digest
from shared.events.payload import prepare_payload
from shared.infra.clock import FrozenClock
from shared.models import (
    AutomationEvent,
    AutomationStatus,
    AutomationTrigger,
    EventStatus,
    TriggerType,
    User,
)
from shared.models.automation import REPLAY_WINDOW_DEFAULT_SECONDS, REPLAY_WINDOW_MAX_SECONDS
from shared.triggers.lookup import TriggerSnapshot
from shared.triggers.signatures import Scheme, sign_github
from tests import factories
from tests.gateway.conftest import SECRET, GatewayFactory, GatewayHarness, url_for
from webhook_gateway import ingress

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

BODY = b'{"action": "opened", "number": 7}'


def _queued(redis_url: str) -> int:
    return int(redis.Redis.from_url(redis_url).llen("events"))


def _accepted(resp: TestResponse) -> str:
    assert resp.status_code == 202, (resp.status_code, resp.data)
    body = resp.get_json()
    assert "duplicate" not in body, body
    return str(body["event_id"])


def _duplicate_of(resp: TestResponse, event_id: str) -> None:
    assert resp.status_code == 202, (resp.status_code, resp.data)
    assert resp.get_json() == {"event_id": event_id, "duplicate": True}


@pytest.fixture
def outcomes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The metric outcome of every webhook request, in order."""
    seen: list[str] = []
    real = ingress.observe

    def record(outcome: str, seconds: float) -> None:
        seen.append(outcome)
        real(outcome, seconds)

    monkeypatch.setattr(ingress, "observe", record)
    yield seen


# 1. Standard Webhooks: the signed webhook-id is the only delivery id -----------------------


def test_standard_webhooks_replay_with_a_fresh_unsigned_delivery_id_is_a_duplicate(
    gw: GatewayHarness, redis_url: str
) -> None:
    tid = gw.seed()
    first = _accepted(gw.post(tid, BODY, scheme="standard", delivery_id="msg_1"))
    for extra in (
        {"X-GitHub-Delivery": "fresh-1"},
        {"X-GitHub-Delivery": "fresh-2", "Idempotency-Key": "fresh-3"},
        {"Idempotency-Key": "fresh-4"},
    ):
        replay = gw.post(tid, BODY, scheme="standard", delivery_id="msg_1", headers=extra)
        _duplicate_of(replay, first)
    assert [e.delivery_id for e in gw.events()] == ["msg_1"]
    assert _queued(redis_url) == 1


def test_standard_webhooks_new_message_ids_are_new_events_whatever_the_unsigned_headers(
    gw: GatewayHarness,
) -> None:
    """An unsigned delivery header neither names a Standard Webhooks event nor makes two of
    them one; the same body under two signed ids is two events (no replay window for a
    scheme that signs its id)."""
    tid = gw.seed()
    same = {"X-GitHub-Delivery": "always-the-same"}
    a = _accepted(gw.post(tid, BODY, scheme="standard", delivery_id="msg_a", headers=same))
    b = _accepted(gw.post(tid, BODY, scheme="standard", delivery_id="msg_b", headers=same))
    assert a != b
    assert sorted(e.delivery_id or "" for e in gw.events()) == ["msg_a", "msg_b"]
    assert all(e.body_sha256 is None for e in gw.events())


# 1. GitHub-style: the replay window over the body --------------------------------------------


def test_github_style_replay_of_a_body_within_the_window_is_a_duplicate(
    gw: GatewayHarness, redis_url: str
) -> None:
    tid = gw.seed()
    first = _accepted(gw.post(tid, BODY, delivery_id="gh-1"))
    _duplicate_of(gw.post(tid, BODY, delivery_id="gh-2"), first)  # a fresh delivery id
    _duplicate_of(gw.post(tid, BODY), first)  # no delivery id
    _duplicate_of(gw.post(tid, BODY, headers={"Idempotency-Key": "k"}), first)
    gw.clock.advance(seconds=REPLAY_WINDOW_DEFAULT_SECONDS - 1)
    _duplicate_of(gw.post(tid, BODY, delivery_id="gh-3"), first)
    [event] = gw.events()
    assert event.delivery_id == "gh-1"
    assert event.body_sha256 is not None and len(event.body_sha256) == 64
    assert _queued(redis_url) == 1
    # another body is another event; the same body on another trigger too
    _accepted(gw.post(tid, BODY + b" ", delivery_id="gh-4"))
    _accepted(gw.post(gw.seed(), BODY, delivery_id="gh-1"))


def test_github_redelivery_after_the_window_is_still_recognised_by_its_delivery_id(
    gw: GatewayHarness,
) -> None:
    tid = gw.seed(replay_window_seconds=60)
    first = _accepted(gw.post(tid, BODY, delivery_id="gh-1"))
    gw.clock.advance(seconds=3600)
    _duplicate_of(gw.post(tid, BODY, delivery_id="gh-1"), first)


def test_the_same_body_after_the_window_is_a_new_event(gw: GatewayHarness) -> None:
    tid = gw.seed(replay_window_seconds=60)
    first = _accepted(gw.post(tid, BODY))
    gw.clock.advance(seconds=59)
    _duplicate_of(gw.post(tid, BODY), first)
    gw.clock.advance(seconds=1)  # 60 s after the first: the window is over
    second = _accepted(gw.post(tid, BODY))
    assert second != first
    # the window now runs from the second event
    gw.clock.advance(seconds=30)
    _duplicate_of(gw.post(tid, BODY), second)


def test_the_default_window_ends_after_a_day(gw: GatewayHarness) -> None:
    tid = gw.seed()
    first = _accepted(gw.post(tid, BODY))
    # set the original back instead of moving the clock
    with Session(gw.engine) as session:
        event = session.get(AutomationEvent, uuid.UUID(first))
        assert event is not None
        event.received_at = gw.clock.now() - timedelta(seconds=REPLAY_WINDOW_DEFAULT_SECONDS)
        session.commit()
    assert _accepted(gw.post(tid, BODY)) != first


def test_window_zero_turns_the_body_check_off(gw: GatewayHarness) -> None:
    tid = gw.seed(replay_window_seconds=0)
    ids = {_accepted(gw.post(tid, BODY)) for _ in range(3)}
    assert len(ids) == 3
    assert all(e.body_sha256 is None for e in gw.events())


def test_a_bad_signature_does_not_open_or_use_the_window(gw: GatewayHarness) -> None:
    tid = gw.seed()
    assert gw.post(tid, BODY, secret="0" * 64).status_code == 401
    _accepted(gw.post(tid, BODY))  # the rejected request stored no hash


def test_concurrent_identical_bodies_make_exactly_one_event(
    make_gateway: GatewayFactory, redis_url: str
) -> None:
    """Real PostgreSQL, one thread per request, released together: one event, and every
    answer names it."""
    threads = 8
    gw = make_gateway(db_pool_size=threads, db_max_overflow=2)
    tid = gw.seed()
    _accepted(gw.post(tid, b'{"warm": "up"}'))  # cache the trigger
    barrier = threading.Barrier(threads)
    answers: list[TestResponse] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        client = gw.app.test_client()
        barrier.wait()
        resp = gw.post(tid, BODY, delivery_id=f"race-{n}", client=client)
        with lock:
            answers.append(resp)

    workers = [threading.Thread(target=send, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    assert len(answers) == threads
    assert {r.status_code for r in answers} == {202}
    ids = {r.get_json()["event_id"] for r in answers}
    assert len(ids) == 1
    assert sum("duplicate" not in r.get_json() for r in answers) == 1
    stored = [e for e in gw.events() if e.payload == {"action": "opened", "number": 7}]
    assert [str(e.id) for e in stored] == list(ids)
    assert _queued(redis_url) == 2  # the warm-up and the one event


# 2. a trigger deleted while cached: 404, never 500 ----------------------------------------


def _token_for_owner(gw: GatewayHarness, trigger_id: uuid.UUID) -> tuple[uuid.UUID, str]:
    with Session(gw.engine, expire_on_commit=False) as session:
        trig = session.get(AutomationTrigger, trigger_id)
        assert trig is not None
        owner = session.get(User, trig.automation.owner_id)
        assert owner is not None
        _, token = accounts.create_token(session, gw.clock, owner.email, ["*"])
        session.commit()
        return trig.automation_id, token


def test_a_signed_webhook_for_a_trigger_deleted_while_cached_is_404(
    gw: GatewayHarness, outcomes: list[str]
) -> None:
    tid = gw.seed()
    automation_id, token = _token_for_owner(gw, tid)
    _accepted(gw.post(tid, BODY))  # the trigger is now cached
    deleted = gw.client.delete(
        f"/api/v1/automations/{automation_id}/triggers/{tid}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert deleted.status_code == 204, deleted.data
    unknown = gw.post(uuid.uuid4())
    outcomes.clear()
    gone = gw.post(tid, b'{"after": "delete"}')  # within the cache's age (frozen clock)
    assert gone.status_code == 404, gone.data
    assert gone.data == unknown.data
    assert outcomes == ["not_found"]
    again = gw.post(tid, b'{"again": 1}')  # the cached trigger was dropped
    assert again.status_code == 404
    assert outcomes == ["not_found", "not_found"]
    assert [e.payload for e in gw.events()] == [{"action": "opened", "number": 7}]


def test_an_unsigned_webhook_for_a_trigger_deleted_while_cached_is_404(
    gw: GatewayHarness, outcomes: list[str]
) -> None:
    """The bad-signature row cannot be written either (its foreign key fails): 404 too."""
    tid = gw.seed()
    _accepted(gw.post(tid, BODY))
    with Session(gw.engine) as session:
        trig = session.get(AutomationTrigger, tid)
        session.delete(trig)
        session.commit()
    outcomes.clear()
    resp = gw.post(tid, BODY, secret=None)
    assert resp.status_code == 404, resp.data
    assert resp.get_json()["code"] == "not_found"
    assert outcomes == ["not_found"]


# 3. verify before revealing ----------------------------------------------------------------


def test_a_disabled_automation_reveals_nothing_to_an_unsigned_or_wrongly_signed_request(
    gw: GatewayHarness,
) -> None:
    active, disabled = gw.seed(), gw.seed(status=AutomationStatus.DISABLED)
    for kwargs in ({"secret": None}, {"secret": "0" * 64}):
        to_active = gw.post(active, BODY, **kwargs)
        to_disabled = gw.post(disabled, BODY, **kwargs)
        assert to_active.status_code == to_disabled.status_code == 401
        assert to_active.data == to_disabled.data
        assert sorted(to_active.headers.items()) == sorted(to_disabled.headers.items())
    signed = gw.post(disabled, BODY)
    assert signed.status_code == 202
    assert signed.get_json() == {"status": "ignored"}
    # a rejected request is recorded the same way for both; the ignored one not at all
    rows = {
        trigger: [(e.status, e.error, e.payload["_signature_failed"]) for e in events]
        for trigger, events in _by_trigger(gw).items()
    }
    expected = [
        (EventStatus.ERROR, BAD_SIGNATURE_ERROR, "missing"),
        (EventStatus.ERROR, BAD_SIGNATURE_ERROR, "invalid"),
    ]
    assert rows == {active: expected, disabled: expected}


def _by_trigger(gw: GatewayHarness) -> dict[uuid.UUID | None, list[AutomationEvent]]:
    out: dict[uuid.UUID | None, list[AutomationEvent]] = {}
    for event in gw.events():
        out.setdefault(event.trigger_id, []).append(event)
    return out


# 4. the canonical webhook path --------------------------------------------------------------

_PREFIX = "/api/v1/automations/triggers/"


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(lambda t: f"{_PREFIX}{str(t).upper()}/webhook", id="upper-case"),
        pytest.param(
            lambda t: f"{_PREFIX}{str(t)[:9]}{str(t)[9:].upper()}/webhook", id="mixed-case"
        ),
        pytest.param(lambda t: f"{_PREFIX}{{{t}}}/webhook", id="braces"),
        pytest.param(lambda t: f"{_PREFIX}urn:uuid:{t}/webhook", id="urn"),
        pytest.param(lambda t: f"{_PREFIX}{t.hex}/webhook", id="no-dashes"),
        pytest.param(lambda t: f"{_PREFIX}/{t}/webhook", id="doubled-slash-before"),
        pytest.param(lambda t: f"{_PREFIX}{t}//webhook", id="doubled-slash-after"),
        pytest.param(lambda t: f"/api/v1/automations//triggers/{t}/webhook", id="doubled-inside"),
        pytest.param(lambda t: f"{_PREFIX}{t}%20/webhook", id="trailing-space"),
    ],
)
def test_only_the_canonical_trigger_id_is_served(gw: GatewayHarness, spelling: Any) -> None:
    tid = gw.seed()
    unknown = gw.post(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign_github(SECRET, BODY),
    }
    resp = gw.client.post(spelling(tid), data=BODY, headers=headers)
    assert resp.status_code == 404, (resp.status_code, resp.data)
    assert resp.data == unknown.data
    assert gw.events() == []
    _accepted(gw.client.post(url_for(tid), data=BODY, headers=headers))  # the canonical one


def test_the_flask_route_refuses_non_canonical_ids_too(gw: GatewayHarness) -> None:
    """Without the middleware (``app.wsgi_app`` unwrapped) the route answers the same."""
    tid = gw.seed()
    middleware = gw.app.wsgi_app
    assert isinstance(middleware, ingress.IngressMiddleware)
    gw.app.wsgi_app = middleware.app  # type: ignore[method-assign]
    try:
        upper = gw.post(str(tid).upper())
        doubled = gw.client.post(f"{_PREFIX}/{tid}/webhook", data=BODY)
    finally:
        gw.app.wsgi_app = middleware  # type: ignore[method-assign]
    assert upper.status_code == 404 and upper.get_json()["code"] == "not_found"
    assert doubled.status_code == 404
    assert gw.events() == []


# 5. nosniff on every answer the ingress writes ----------------------------------------------


def test_every_ingress_answer_says_nosniff(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(max_body_bytes=64)
    tid = gw.seed()
    disabled = gw.seed(status=AutomationStatus.DISABLED)
    answers = {
        "accepted": gw.post(tid, BODY),
        "duplicate": gw.post(tid, BODY),
        "ignored": gw.post(disabled, BODY),
        "bad_signature": gw.post(tid, BODY, secret=None),
        "not_found": gw.post(uuid.uuid4()),
        "too_large": gw.post(tid, b"[" + b"1," * 40 + b"1]"),
    }
    assert [r.status_code for r in answers.values()] == [202, 202, 202, 401, 404, 413]
    for outcome, resp in answers.items():
        assert resp.headers.get_all("X-Content-Type-Options") == ["nosniff"], outcome


# API and storage of the setting ----------------------------------------------------------


def test_replay_window_is_a_trigger_setting_of_the_api(gw: GatewayHarness) -> None:
    tid = gw.seed()
    automation_id, token = _token_for_owner(gw, tid)
    auth = {"Authorization": f"Bearer {token}"}
    base = f"/api/v1/automations/{automation_id}/triggers"

    created = gw.client.post(
        base, json={"type": "webhook", "replay_window_seconds": 60}, headers=auth
    )
    assert created.status_code == 201, created.data
    assert created.get_json()["replay_window_seconds"] == 60
    new_id = created.get_json()["id"]
    default = gw.client.post(base, json={"type": "webhook"}, headers=auth).get_json()
    assert default["replay_window_seconds"] == REPLAY_WINDOW_DEFAULT_SECONDS
    cron = gw.client.post(base, json={"type": "cron", "cron_schedule": "0 9 * * *"}, headers=auth)
    assert cron.status_code == 201 and cron.get_json()["replay_window_seconds"] is None

    patched = gw.client.patch(f"{base}/{new_id}", json={"replay_window_seconds": 0}, headers=auth)
    assert patched.status_code == 200, patched.data
    assert patched.get_json()["replay_window_seconds"] == 0
    assert gw.client.get(f"{base}/{new_id}", headers=auth).get_json()["replay_window_seconds"] == 0
    with Session(gw.engine) as session:
        stored = session.scalar(
            select(AutomationTrigger.replay_window_seconds).where(
                AutomationTrigger.id == uuid.UUID(new_id)
            )
        )
    assert stored == 0

    for bad in (-1, REPLAY_WINDOW_MAX_SECONDS + 1, 1.5, "60", None, True):
        resp = gw.client.patch(
            f"{base}/{new_id}", json={"replay_window_seconds": bad}, headers=auth
        )
        assert resp.status_code == 400, (bad, resp.data)
        assert "replay_window_seconds" in resp.get_json()["message"], bad
    at_max = gw.client.patch(
        f"{base}/{new_id}", json={"replay_window_seconds": REPLAY_WINDOW_MAX_SECONDS}, headers=auth
    )
    assert at_max.status_code == 200
    refused = gw.client.post(
        base,
        json={"type": "cron", "cron_schedule": "0 9 * * *", "replay_window_seconds": 60},
        headers=auth,
    )
    assert refused.status_code == 400
    assert refused.get_json()["message"].startswith("replay_window_seconds: cron triggers")
    cron_id = cron.get_json()["id"]
    refused = gw.client.patch(f"{base}/{cron_id}", json={"replay_window_seconds": 5}, headers=auth)
    assert refused.status_code == 400


def test_the_database_refuses_an_out_of_range_window(gw: GatewayHarness) -> None:
    tid = gw.seed()
    for bad in (-1, REPLAY_WINDOW_MAX_SECONDS + 1):
        with pytest.raises(IntegrityError, match="ck_automation_triggers_replay_window_range"):
            gw.update_trigger(tid, replay_window_seconds=bad)
    with Session(gw.engine) as session:
        auto = factories.automation(session, gw.clock)
        trig = factories.webhook_trigger(session, gw.clock, auto)
        session.commit()
        assert trig.replay_window_seconds == REPLAY_WINDOW_DEFAULT_SECONDS


def test_record_event_applies_the_window_on_both_backends(
    any_session: Session, clock: FrozenClock
) -> None:
    """The domain function alone, on PostgreSQL and SQLite (embedded mode)."""
    auto = factories.automation(any_session, clock)
    trig = factories.webhook_trigger(any_session, clock, auto, replay_window_seconds=60)
    snapshot = TriggerSnapshot(
        trigger_id=trig.id,
        automation_id=auto.id,
        type=TriggerType.WEBHOOK,
        automation_status=AutomationStatus.ACTIVE,
        replay_window_seconds=60,
    )
    payload = prepare_payload(BODY, 65536)
    digest = replay_digest(snapshot, Scheme.GITHUB, BODY)
    assert digest is not None
    assert replay_digest(snapshot, Scheme.STANDARD, BODY) is None

    def record(delivery_id: str | None) -> tuple[uuid.UUID, bool]:
        got = record_event(any_session, clock, snapshot, delivery_id, payload, body_sha256=digest)
        return got.event_id, got.duplicate

    first, duplicate = record("a")
    assert not duplicate
    assert record("b") == (first, True)
    assert record(None) == (first, True)
    clock.advance(seconds=60)
    second, duplicate = record(None)
    assert second != first and not duplicate
