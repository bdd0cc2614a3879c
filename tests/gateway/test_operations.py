"""Metrics, logs, the publisher, and embedded (SQLite) mode."""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from shared.infra.broker import Publisher, event_message, producer_app
from shared.infra.clock import FrozenClock
from shared.infra.config import Settings
from shared.infra.db import migrate
from shared.infra.queues import PROCESS_EVENT, QUEUE_EVENTS
from tests.gateway.conftest import SECRET, GatewayFactory, GatewayHarness, url_for
from webhook_gateway.app import create_app
from webhook_gateway.metrics import OUTCOMES

METRICS_TOKEN = "metrics-token-" + "m" * 24


def _scrape(gw: GatewayHarness) -> str:
    resp = gw.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert resp.status_code == 200
    return resp.text


def _counters(gw: GatewayHarness) -> dict[str, float]:
    text = _scrape(gw)
    found = re.findall(r'automations_webhook_requests_total\{outcome="(\w+)"\} ([0-9.e+]+)', text)
    return {name: float(value) for name, value in found}


def test_metrics_count_every_outcome(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(max_body_bytes=64, metrics_token=METRICS_TOKEN)
    active = gw.seed()
    from shared.models import AutomationStatus

    disabled = gw.seed(status=AutomationStatus.DISABLED)
    before = _counters(gw)
    assert set(OUTCOMES) <= set(before)
    gw.post(active, delivery_id="m1")  # accepted
    gw.post(active, delivery_id="m1")  # duplicate
    gw.post(disabled)  # ignored
    gw.post(active, secret="0" * 64)  # bad_signature
    gw.post(uuid.uuid4())  # not_found
    gw.post(active, b"[" + b"1," * 40 + b"1]")  # too_large
    after = _counters(gw)
    for outcome in ("accepted", "duplicate", "ignored", "bad_signature", "not_found", "too_large"):
        assert after[outcome] == before[outcome] + 1, outcome
    text = _scrape(gw)
    assert "automations_webhook_request_duration_seconds_bucket" in text
    assert "automations_webhook_publish_failures_total" in text


def test_access_logs_carry_no_secrets_or_payloads(
    gw: GatewayHarness, caplog: pytest.LogCaptureFixture
) -> None:
    from shared.infra.logs import JsonFormatter

    tid = gw.seed()
    marker = "PAYLOAD-MARKER-" + uuid.uuid4().hex
    body = json.dumps({"secret_field": marker}).encode()
    with caplog.at_level(logging.DEBUG):
        assert gw.post(tid, body, delivery_id="log-1").status_code == 202
        assert gw.post(tid, body, secret="0" * 64).status_code == 401
    formatted = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert marker not in formatted
    assert SECRET not in formatted
    assert "sha256=" not in formatted
    access = [r for r in caplog.records if r.name == "automations.access"]
    assert [(r.status, r.outcome) for r in access] == [(202, "accepted"), (401, "bad_signature")]  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(access[0]))
    assert line["path"] == url_for(tid)
    assert line["body_size"] == len(body)
    assert line["duration_ms"] >= 0


def _consume(redis_url: str, n: int, queue_name: str = QUEUE_EVENTS, **options: Any) -> list[Any]:
    with Connection(redis_url, transport_options=options) as conn:
        queue = conn.SimpleQueue(queue_name)
        got = [queue.get(timeout=2) for _ in range(n)]
        for message in got:
            message.ack()
        queue.close()
    return got


def test_publisher_sends_celerys_own_messages(redis_url: str) -> None:
    """What the publisher sends is Celery's message (kombu consumes it like any task)."""
    publisher = Publisher(producer_app(Settings(broker_url=redis_url)))
    event_id = uuid.uuid4()
    publisher.publish([event_message(event_id)])
    [message] = _consume(redis_url, 1)
    assert message.headers["task"] == PROCESS_EVENT
    assert message.headers["id"] and message.headers["root_id"] == message.headers["id"]
    assert message.payload[0] == [str(event_id)]
    assert message.payload[1] == {}
    assert message.delivery_info["routing_key"] == QUEUE_EVENTS


def test_publisher_honours_the_global_keyprefix(redis_url: str) -> None:
    import redis

    app = producer_app(Settings(broker_url=redis_url))
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "global_keyprefix": "tenant-a:",
    }
    Publisher(app).publish([event_message(uuid.uuid4())])
    admin = redis.Redis.from_url(redis_url)
    assert admin.llen(QUEUE_EVENTS) == 0
    assert admin.llen(f"tenant-a:{QUEUE_EVENTS}") == 1
    [message] = _consume(redis_url, 1, global_keyprefix="tenant-a:")
    assert message.headers["task"] == PROCESS_EVENT


def test_a_batch_keeps_its_order(redis_url: str) -> None:
    """Cron dispatch and the sweeper publish batches; workers must get them oldest first."""
    import redis

    publisher = Publisher(producer_app(Settings(broker_url=redis_url)))
    ids = [uuid.uuid4() for _ in range(5)]
    publisher.publish([event_message(i) for i in ids])
    publisher.publish([])
    got = _consume(redis_url, len(ids))
    assert redis.Redis.from_url(redis_url).llen(QUEUE_EVENTS) == 0  # nothing else was queued
    assert [m.payload[0] for m in got] == [[str(i)] for i in ids]
    assert {m.headers["task"] for m in got} == {PROCESS_EVENT}


def test_embedded_mode_on_sqlite(tmp_path: Path, clock: FrozenClock) -> None:
    db_url = f"sqlite:///{tmp_path / 'automations.db'}"
    migrate.upgrade(db_url)
    settings = Settings(data_dir=tmp_path, database_url=db_url)  # embedded broker
    app = create_app(settings, clock=clock)
    assert isinstance(app.extensions["automations"].runtime.publisher, Publisher)
    from shared.infra.db.engine import make_engine

    engine = make_engine(db_url)
    gw = GatewayHarness(app, app.test_client(), clock, engine, settings)
    try:
        tid = gw.seed()
        first = gw.post(tid, b'{"hello": "sqlite"}', delivery_id="s-1")
        assert first.status_code == 202
        again = gw.post(tid, b'{"hello": "sqlite"}', delivery_id="s-1")
        assert again.get_json() == {"event_id": first.get_json()["event_id"], "duplicate": True}
        assert gw.post(tid, secret="0" * 64).status_code == 401
        assert gw.post(tid, secret="0" * 64).status_code == 401
        pending, error = gw.events()
        assert pending.payload == {"hello": "sqlite"} and pending.delivery_id == "s-1"
        assert error.occurrences == 2
        # the task was published to the embedded broker
        celery = app.extensions["automations"].celery
        with celery.connection_for_read() as conn:
            message = conn.SimpleQueue(QUEUE_EVENTS).get(timeout=5)
            assert message.payload[0] == [first.get_json()["event_id"]]
            message.ack()
    finally:
        engine.dispose()
        app.extensions["automations"].dispose()


def test_publisher_survives_a_dropped_connection(redis_url: str) -> None:
    """When Redis drops the producer's connection (restart, idle timeout) the next publish
    goes out on a new one instead of failing (kombu's publish retry policy)."""
    import redis

    admin = redis.Redis.from_url(redis_url)
    publisher = Publisher(producer_app(Settings(broker_url=redis_url)))
    publisher.publish([event_message(uuid.uuid4())])
    mine, db = admin.client_id(), admin.connection_pool.connection_kwargs["db"]
    killed = 0
    for client in admin.client_list():
        if int(client["id"]) != mine and int(client["db"]) == db:
            killed += admin.client_kill_filter(_id=client["id"])
    assert killed >= 1
    publisher.publish([event_message(uuid.uuid4())])
    publisher.publish([event_message(uuid.uuid4()), event_message(uuid.uuid4())])
    assert admin.llen(QUEUE_EVENTS) == 4


def test_publisher_is_safe_across_threads(redis_url: str) -> None:
    """Threads publish concurrently, each batch on a producer of the app's pool."""
    import threading

    import redis

    publisher = Publisher(producer_app(Settings(broker_url=redis_url)))
    errors: list[BaseException] = []

    def publish_many() -> None:
        try:
            for _ in range(25):
                publisher.publish([event_message(uuid.uuid4())])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    messages = redis.Redis.from_url(redis_url).lrange(QUEUE_EVENTS, 0, -1)
    assert len(messages) == 8 * 25
    assert all(json.loads(m)["headers"]["task"] == PROCESS_EVENT for m in messages)


def test_publish_to_an_unreachable_broker_raises_and_is_reported() -> None:
    """Nothing listening: the publish raises (the unit of work logs it and the event stays
    pending for the sweeper) and the failure callback counts the batch."""
    from tests.harness.services import free_port

    failed: list[int] = []
    publisher = Publisher(
        producer_app(Settings(broker_url=f"redis://127.0.0.1:{free_port()}/0")),
        on_failure=lambda messages: failed.append(len(messages)),
    )
    with pytest.raises(Exception):  # noqa: B017 - kombu's OperationalError
        publisher.publish([event_message(uuid.uuid4()), event_message(uuid.uuid4())])
    assert failed == [2]
