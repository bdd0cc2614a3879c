"""Metrics, logs, the Redis publisher's message format, and embedded (SQLite) mode."""

from __future__ import annotations

import base64
import json
import logging
import re
import uuid
from pathlib import Path

import pytest
from kombu import Connection

from shared.infra.broker import CeleryPublisher, RedisPublisher, make_publisher
from shared.infra.clock import FrozenClock
from shared.infra.config import Settings
from shared.infra.db import migrate
from shared.infra.queues import PROCESS_EVENT, QUEUE_EVENTS
from tests.gateway.conftest import SECRET, GatewayFactory, GatewayHarness, url_for
from webhook_gateway.app import create_app
from webhook_gateway.metrics import OUTCOMES


def _counters(gw: GatewayHarness) -> dict[str, float]:
    text = gw.client.get("/metrics").text
    found = re.findall(r'automations_webhook_requests_total\{outcome="(\w+)"\} ([0-9.e+]+)', text)
    return {name: float(value) for name, value in found}


def test_metrics_count_every_outcome(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(max_body_bytes=64)
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
    text = gw.client.get("/metrics").text
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


def test_redis_publisher_writes_what_celery_would(redis_url: str) -> None:
    from worker.celery_app import create_celery

    celery = create_celery(Settings(broker_url=redis_url), include_tasks=False)
    publisher = make_publisher(celery)
    assert isinstance(publisher, RedisPublisher)
    event_id = uuid.uuid4()
    publisher.publish(event_id)
    CeleryPublisher(celery).publish(event_id)
    import redis

    raw = redis.Redis.from_url(redis_url).lrange(QUEUE_EVENTS, 0, -1)
    ours, theirs = (json.loads(m) for m in raw)
    assert ours.keys() == theirs.keys()
    assert ours["headers"].keys() == theirs["headers"].keys()
    assert ours["properties"].keys() == theirs["properties"].keys()
    assert ours["properties"]["delivery_info"] == theirs["properties"]["delivery_info"]
    # kombu consumes our message like Celery's own: same task, args, and embed
    with Connection(redis_url) as conn:
        queue = conn.SimpleQueue(QUEUE_EVENTS)
        messages = [queue.get(timeout=2) for _ in range(2)]
        queue.close()
    for message in messages:
        assert message.headers["task"] == PROCESS_EVENT
        assert message.payload[0] == [str(event_id)]
        assert message.payload[1] == {}
        message.ack()


@pytest.mark.parametrize("kind", ["redis", "celery"])
def test_publish_many_keeps_order_in_one_batch(redis_url: str, kind: str) -> None:
    """Cron dispatch and the sweeper publish batches; workers must get them oldest first."""
    from worker.celery_app import create_celery

    celery = create_celery(Settings(broker_url=redis_url), include_tasks=False)
    publisher = make_publisher(celery) if kind == "redis" else CeleryPublisher(celery)
    ids = [uuid.uuid4() for _ in range(5)]
    publisher.publish_many(ids)
    publisher.publish_many([])
    with Connection(redis_url) as conn:
        queue = conn.SimpleQueue(QUEUE_EVENTS)
        got = [queue.get(timeout=2) for _ in ids]
        for message in got:
            message.ack()
        queue.close()
    import redis

    assert redis.Redis.from_url(redis_url).llen(QUEUE_EVENTS) == 0  # nothing else was queued
    assert [m.payload[0] for m in got] == [[str(i)] for i in ids]
    assert {m.headers["task"] for m in got} == {PROCESS_EVENT}


def test_embedded_mode_on_sqlite(tmp_path: Path, clock: FrozenClock) -> None:
    db_url = f"sqlite:///{tmp_path / 'automations.db'}"
    migrate.upgrade(db_url)
    settings = Settings(data_dir=tmp_path, database_url=db_url)  # embedded broker
    app = create_app(settings, clock=clock)
    assert isinstance(app.extensions["automations.ingress"].publisher, CeleryPublisher)
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


def test_redis_publisher_survives_a_dropped_connection(redis_url: str) -> None:
    """The publisher keeps one connection per thread; when Redis drops it (restart, idle
    timeout) the next publish goes out on a new one instead of failing."""
    import redis

    admin = redis.Redis.from_url(redis_url)
    publisher = RedisPublisher(redis_url)
    publisher.publish(uuid.uuid4())
    mine, db = admin.client_id(), admin.connection_pool.connection_kwargs["db"]
    killed = 0
    for client in admin.client_list():
        if int(client["id"]) != mine and int(client["db"]) == db:
            killed += admin.client_kill_filter(_id=client["id"])
    assert killed >= 1
    publisher.publish(uuid.uuid4())
    publisher.publish_many([uuid.uuid4(), uuid.uuid4()])
    assert admin.llen(QUEUE_EVENTS) == 4


def test_redis_publisher_connection_per_thread_and_per_process(redis_url: str) -> None:
    """Threads publish concurrently on their own connections; a forked child makes its own
    instead of writing into the parent's socket."""
    import os
    import threading

    import redis

    admin = redis.Redis.from_url(redis_url)
    publisher = RedisPublisher(redis_url)
    publisher.publish(uuid.uuid4())
    errors: list[BaseException] = []

    def publish_many() -> None:
        try:
            for _ in range(50):
                publisher.publish(uuid.uuid4())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    pid = os.fork()
    if pid == 0:  # child: publish on a connection of its own, then leave without cleanup
        try:
            publisher.publish(uuid.uuid4())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    publisher.publish(uuid.uuid4())  # the parent's connection is intact
    messages = admin.lrange(QUEUE_EVENTS, 0, -1)
    assert len(messages) == 1 + 8 * 50 + 2
    assert all(json.loads(m)["headers"]["task"] == PROCESS_EVENT for m in messages)


def test_unconfirmed_publishes_reach_the_queue(redis_url: str) -> None:
    """The gateway's publish sends without waiting for the reply; the replies are read later,
    and a thread never has more than MAX_UNCONFIRMED of them outstanding."""
    import redis

    from shared.infra.broker import MAX_UNCONFIRMED

    publisher = RedisPublisher(redis_url)
    ids = [uuid.uuid4() for _ in range(3 * MAX_UNCONFIRMED)]
    for event_id in ids:
        assert publisher.publish_unconfirmed(event_id) == []
        assert len(publisher._line().unconfirmed) <= MAX_UNCONFIRMED
    assert publisher.confirm() == []
    assert len(publisher._line().unconfirmed) == 0
    raw = redis.Redis.from_url(redis_url).lrange(QUEUE_EVENTS, 0, -1)
    assert [json.loads(base64.b64decode(json.loads(m)["body"]))[0][0] for m in reversed(raw)] == [
        str(i) for i in ids
    ]
    publisher.publish(uuid.uuid4())  # a confirmed publish on the same connection still works
    assert redis.Redis.from_url(redis_url).llen(QUEUE_EVENTS) == len(ids) + 1


def test_a_refused_unconfirmed_publish_is_reported_by_the_next_one(redis_url: str) -> None:
    import time

    import redis
    from redis.exceptions import ResponseError

    admin = redis.Redis.from_url(redis_url)
    admin.set(QUEUE_EVENTS, "not a list")  # LPUSH now answers WRONGTYPE
    publisher = RedisPublisher(redis_url)
    refused, accepted = uuid.uuid4(), uuid.uuid4()
    assert publisher.publish_unconfirmed(refused) == []
    time.sleep(0.2)  # the error reply is in the socket now
    admin.delete(QUEUE_EVENTS)
    failures = publisher.publish_unconfirmed(accepted)
    assert [f.event_ids for f in failures] == [(str(refused),)]
    assert isinstance(failures[0].error, ResponseError)
    assert publisher.confirm() == []
    assert admin.llen(QUEUE_EVENTS) == 1


def test_unconfirmed_publish_after_the_server_dropped_the_connection(redis_url: str) -> None:
    """A connection Redis closed is noticed before anything is sent on it: the next publish
    goes out on a new connection instead of into a dead socket."""
    import time

    import redis

    admin = redis.Redis.from_url(redis_url)
    publisher = RedisPublisher(redis_url)
    assert publisher.publish_unconfirmed(uuid.uuid4()) == []
    assert publisher.confirm() == []
    mine, db = admin.client_id(), admin.connection_pool.connection_kwargs["db"]
    for client in admin.client_list():
        if int(client["id"]) != mine and int(client["db"]) == db:
            admin.client_kill_filter(_id=client["id"])
    time.sleep(0.2)
    assert publisher.publish_unconfirmed(uuid.uuid4()) == []
    assert publisher.confirm() == []
    assert admin.llen(QUEUE_EVENTS) == 2


def test_unconfirmed_publish_to_an_unreachable_broker_reports_the_event(redis_url: str) -> None:
    """Nothing listening: the publish does not raise, it returns the event as failed (the
    gateway counts it; the event stays pending for the sweeper)."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from tests.harness.services import free_port

    publisher = RedisPublisher(f"redis://127.0.0.1:{free_port()}/0")
    event_id = uuid.uuid4()
    failures = publisher.publish_unconfirmed(event_id)
    assert [f.event_ids for f in failures] == [(str(event_id),)]
    assert isinstance(failures[0].error, RedisConnectionError)
    assert publisher.confirm() == []
    with pytest.raises(RedisConnectionError):
        publisher.publish(event_id)  # the confirmed publish raises, as the sweeper expects
