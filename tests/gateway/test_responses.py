"""Each row of SPEC 4.2, against real PostgreSQL and Redis through the Flask app."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.events.ingest import BAD_SIGNATURE_ERROR
from shared.infra.config import Settings
from shared.infra.queues import QUEUE_EVENTS
from shared.models import AutomationEvent, AutomationStatus, EventStatus
from tests.gateway.conftest import GatewayFactory, GatewayHarness, url_for
from tests.harness.services import free_port
from webhook_gateway.app import create_app


def _queued(redis_url: str) -> int:
    return int(redis.Redis.from_url(redis_url).llen("events"))


def test_accepted_commits_a_pending_event_and_publishes_it(
    gw: GatewayHarness, redis_url: str
) -> None:
    tid = gw.seed()
    resp = gw.post(tid, b'{"action":"opened","number":7}', delivery_id="d-1")
    assert resp.status_code == 202
    event_id = resp.get_json()["event_id"]
    [event] = gw.events()
    assert str(event.id) == event_id
    assert event.status is EventStatus.PENDING
    assert event.payload == {"action": "opened", "number": 7}
    assert event.pending_payload is None
    assert event.delivery_id == "d-1"
    assert event.trigger_id == tid
    assert event.received_at == gw.clock.now()
    assert _queued(redis_url) == 1
    message = redis.Redis.from_url(redis_url).lindex("events", 0)
    assert message is not None and event_id.encode() in message


def test_same_delivery_id_answers_with_the_original_event(
    gw: GatewayHarness, redis_url: str
) -> None:
    tid = gw.seed()
    for header in ("X-GitHub-Delivery", "webhook-id", "Idempotency-Key"):
        delivery = f"{header}-abc"
        # a body of its own each time: an identical one would be a duplicate by its body
        first = gw.post(tid, f'{{"header": "{header}"}}'.encode(), headers={header: delivery})
        again = gw.post(tid, b'{"other": "body"}', headers={header: delivery})
        assert first.status_code == again.status_code == 202
        assert again.get_json() == {"event_id": first.get_json()["event_id"], "duplicate": True}
    assert len(gw.events()) == 3
    assert _queued(redis_url) == 3  # duplicates are not published again


def test_delivery_id_header_preference_and_scope(gw: GatewayHarness) -> None:
    # one body, several deliveries: no replay window (this is about the delivery ids)
    tid, other = gw.seed(replay_window_seconds=0), gw.seed(replay_window_seconds=0)
    both = {"X-GitHub-Delivery": "gh-1", "Idempotency-Key": "idem-1"}
    first = gw.post(tid, headers=both).get_json()["event_id"]
    # the GitHub id wins: the same GitHub id with another Idempotency-Key is a duplicate
    dup = gw.post(tid, headers={"X-GitHub-Delivery": "gh-1", "Idempotency-Key": "x"})
    assert dup.get_json()["event_id"] == first
    # delivery ids are unique per trigger only
    assert "duplicate" not in gw.post(other, headers=both).get_json()
    # no delivery id: no deduplication
    ids = {gw.post(tid).get_json()["event_id"] for _ in range(2)}
    assert len(ids) == 2
    # an over-long id is stored as a digest and still deduplicates exactly
    long_a, long_b = "a" * 300, "a" * 299 + "b"
    ev_a = gw.post(tid, headers={"X-GitHub-Delivery": long_a}).get_json()["event_id"]
    ev_b = gw.post(tid, headers={"X-GitHub-Delivery": long_b}).get_json()["event_id"]
    assert ev_a != ev_b
    assert gw.post(tid, headers={"X-GitHub-Delivery": long_a}).get_json()["event_id"] == ev_a
    stored = {e.delivery_id for e in gw.events() if e.delivery_id}
    assert all(len(d) <= 200 for d in stored)


def test_disabled_automation_is_ignored_and_nothing_is_stored(gw: GatewayHarness) -> None:
    tid = gw.seed(status=AutomationStatus.DISABLED)
    resp = gw.post(tid)
    assert resp.status_code == 202
    assert resp.get_json() == {"status": "ignored"}
    assert gw.events() == []


def test_preview_automation_accepts(gw: GatewayHarness) -> None:
    tid = gw.seed(status=AutomationStatus.PREVIEW)
    assert gw.post(tid).status_code == 202
    assert [e.status for e in gw.events()] == [EventStatus.PENDING]


def test_bad_signature_is_401_and_a_throttled_error_event(gw: GatewayHarness) -> None:
    tid = gw.seed()
    missing = gw.post(tid, secret=None)
    assert missing.status_code == 401
    assert missing.get_json()["code"] == "invalid_signature"
    assert missing.get_json()["message"].startswith("signature missing: ")
    for _ in range(20):  # a flood within one minute folds into one row per reason
        wrong = gw.post(tid, secret="0" * 64)
        assert wrong.status_code == 401
        assert wrong.get_json()["code"] == "invalid_signature"
        assert wrong.get_json()["message"].startswith("signature invalid: ")
        assert set(wrong.get_json()) == {"code", "message"}
    rows = gw.events()
    assert [(r.payload["_signature_failed"], r.occurrences) for r in rows] == [
        ("missing", 1),
        ("invalid", 20),
    ]
    for row in rows:
        assert row.status is EventStatus.ERROR
        assert row.error == BAD_SIGNATURE_ERROR
        assert row.delivery_id is None
        assert "opened" not in str(row.payload)  # the unauthenticated body is not stored
    gw.clock.advance(seconds=61)
    gw.post(tid, secret="0" * 64)
    assert [r.occurrences for r in gw.events()] == [1, 20, 1]


def test_a_signed_retry_of_a_rejected_delivery_is_accepted(gw: GatewayHarness) -> None:
    tid = gw.seed()
    assert gw.post(tid, secret="0" * 64, delivery_id="same").status_code == 401
    resp = gw.post(tid, delivery_id="same")
    assert resp.status_code == 202 and "duplicate" not in resp.get_json()


def test_unknown_malformed_and_cron_ids_get_identical_404s(gw: GatewayHarness) -> None:
    cron_id = gw.seed(cron=True)
    responses = [
        gw.post(uuid.uuid4()),
        gw.post("not-a-uuid"),
        gw.post("x" * 500),
        gw.post(""),
        gw.post(cron_id),
    ]
    assert {r.status_code for r in responses} == {404}
    assert len({r.data for r in responses}) == 1
    assert responses[0].get_json() == {"code": "not_found", "message": "no such webhook trigger"}
    assert gw.events() == []


def test_other_methods_on_the_webhook_path_are_405(gw: GatewayHarness) -> None:
    tid = gw.seed()
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        resp = gw.client.open(url_for(tid), method=method)
        assert resp.status_code == 405, method
        assert resp.get_json()["code"] == "method_not_allowed"
        assert "POST" in resp.headers["Allow"]
    assert gw.client.post(url_for(tid) + "/extra").status_code == 404
    assert gw.events() == []


def test_flask_route_answers_like_the_middleware(gw: GatewayHarness) -> None:
    """The middleware serves every POST; the Flask route behind it (reached when the app is
    called without it) gives the same answers, access-log line included."""
    from webhook_gateway.ingress import IngressMiddleware

    tid = gw.seed()
    middleware = gw.app.wsgi_app
    assert isinstance(middleware, IngressMiddleware)
    through_middleware = gw.post(tid, delivery_id="same-1")
    gw.app.wsgi_app = middleware.app  # type: ignore[method-assign]
    try:
        via_flask = gw.post(tid, delivery_id="same-1")
        unknown = gw.post(uuid.uuid4())
        accepted = gw.post(tid, b'{"action": "closed"}', delivery_id="same-2")
    finally:
        gw.app.wsgi_app = middleware  # type: ignore[method-assign]
    assert through_middleware.status_code == via_flask.status_code == 202
    assert via_flask.get_json() == {
        "event_id": through_middleware.get_json()["event_id"],
        "duplicate": True,
    }
    assert unknown.status_code == 404
    assert unknown.data == gw.post(uuid.uuid4()).data
    assert accepted.status_code == 202
    assert through_middleware.headers["Content-Type"] == accepted.headers["Content-Type"]
    assert accepted.headers["X-Content-Type-Options"] == "nosniff"
    assert len(gw.events()) == 2


def test_body_over_the_limit_is_413(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(max_body_bytes=1024)
    tid = gw.seed()
    at_limit = b'"' + b"a" * 1022 + b'"'
    assert len(at_limit) == 1024
    ok = gw.post(tid, at_limit)
    assert ok.status_code == 202, ok.data
    over = gw.post(tid, at_limit + b" ")
    assert over.status_code == 413
    assert over.get_json()["code"] == "payload_too_large"
    assert len(gw.events()) == 1
    assert gw.events()[0].payload == "a" * 1022


def test_database_down_is_503_with_retry_after(tmp_path: Path, redis_url: str) -> None:
    dead = f"postgresql+psycopg2://127.0.0.1:{free_port()}/nothing"
    app = create_app(Settings(database_url=dead, broker_url=redis_url, data_dir=tmp_path))
    resp = app.test_client().post(url_for(uuid.uuid4()), data=b"{}")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"].isdigit()
    assert resp.get_json()["code"] == "unavailable"
    assert b"Traceback" not in resp.data


def test_database_lost_after_the_lookup_is_503(gw: GatewayHarness) -> None:
    tid = gw.seed()
    assert gw.post(tid).status_code == 202  # the trigger is now cached
    gateway = gw.app.extensions["automations"]
    dead = Settings(
        database_url=f"postgresql+psycopg2://127.0.0.1:{free_port()}/nothing",
        data_dir=gw.settings.data_dir,
    )
    from shared.infra.db.engine import engine_from_settings
    from shared.infra.db.uow import Database

    publisher = gateway.runtime.db.publisher
    gateway.dispose()
    gateway.runtime.db = Database(engine_from_settings(dead), publisher)
    resp = gw.post(tid, delivery_id="lost")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"]
    assert len(gw.events()) == 1  # nothing new was stored


def test_broker_down_after_commit_still_202_and_event_stays_pending(
    make_gateway: GatewayFactory,
) -> None:
    from webhook_gateway.metrics import PUBLISH_FAILURES

    gw = make_gateway(broker_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    tid = gw.seed()
    before = PUBLISH_FAILURES._value.get()
    resp = gw.post(tid, b'{"n": 1}')
    assert resp.status_code == 202
    with Session(gw.engine) as session:
        event = session.get(AutomationEvent, uuid.UUID(resp.get_json()["event_id"]))
        assert event is not None and event.status is EventStatus.PENDING
        assert session.scalar(select(func.count()).select_from(AutomationEvent)) == 1
    assert PUBLISH_FAILURES._value.get() == before + 1


def test_a_publish_refused_after_the_202_is_counted_and_the_event_stays_pending(
    make_gateway: GatewayFactory, redis_url: str
) -> None:
    """The 202 does not wait for Redis's reply: a refusal shows on the next webhook, which
    counts and logs it; the refused event stays pending for the sweeper."""
    import time

    from webhook_gateway.metrics import PUBLISH_FAILURES

    gw = make_gateway()
    tid = gw.seed()
    admin = redis.Redis.from_url(redis_url)
    admin.set(QUEUE_EVENTS, "not a list")
    before = PUBLISH_FAILURES._value.get()
    first = gw.post(tid, b'{"n": 1}', delivery_id="refused")
    assert first.status_code == 202
    time.sleep(0.2)
    admin.delete(QUEUE_EVENTS)
    second = gw.post(tid, b'{"n": 2}', delivery_id="accepted")
    assert second.status_code == 202
    assert PUBLISH_FAILURES._value.get() == before + 1
    assert admin.llen(QUEUE_EVENTS) == 1
    queued = json.loads(admin.lindex(QUEUE_EVENTS, 0))["headers"]["argsrepr"]
    assert second.get_json()["event_id"] in queued
    with Session(gw.engine) as session:
        event = session.get(AutomationEvent, uuid.UUID(first.get_json()["event_id"]))
        assert event is not None and event.status is EventStatus.PENDING
