"""The worker's Redis transport: kombu's, with one reusable client per channel."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis
from kombu import Connection

from shared.infra.config import Settings
from worker.celery_app import celery_config, create_celery
from worker.redis_transport import Channel, Transport


def test_redis_brokers_use_it_and_other_brokers_do_not(tmp_path: Path) -> None:
    redis = Settings(broker_url="redis://127.0.0.1:6379/3", data_dir=tmp_path)
    assert celery_config(redis)["broker_transport"] == "worker.redis_transport:Transport"
    embedded = Settings(data_dir=tmp_path)
    assert celery_config(embedded)["broker_transport"] is None
    tls = Settings(broker_url="rediss://cache.example:6380/0", data_dir=tmp_path)
    assert celery_config(tls)["broker_transport"] is None  # kombu's own, with its TLS handling


def test_one_sync_client_per_channel_and_pool(redis_url: str) -> None:
    with Connection(redis_url, transport=Transport) as conn:
        channel = conn.default_channel
        assert isinstance(channel, Channel)
        first = channel._create_client()
        assert channel._create_client() is first
        with channel.conn_or_acquire() as client:
            assert client is first
        # the event loop's client (BRPOP) is kombu's own, separate one
        assert channel._create_client(asynchronous=True) is not first
        # a replaced pool (after a reconnect) gets a new client on that pool
        channel._pool = None
        renewed = channel._create_client()
        assert renewed is not first
        assert renewed.connection_pool is channel.pool


def test_messages_round_trip_with_acks_through_it(redis_url: str, tmp_path: Path) -> None:
    """Publish, consume with acks (the QoS pipelines that use the shared client), and leave
    nothing unacknowledged behind."""
    app = create_celery(Settings(broker_url=redis_url, data_dir=tmp_path), include_tasks=False)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with app.connection_for_write() as conn:
        assert isinstance(conn.default_channel, Channel)
        simple = conn.SimpleQueue(queue)
        for i in range(20):
            simple.put({"n": i})
        got = []
        for _ in range(20):
            message = simple.get(timeout=5)
            got.append(message.payload["n"])
            message.ack()
        assert got == list(range(20))
        client = conn.default_channel._create_client()
        assert client.hlen("unacked") == 0
        simple.close()
    app.close()


def test_an_unacknowledged_message_is_recorded_and_restored_intact(
    redis_url: str, tmp_path: Path
) -> None:
    """The plain (non-MULTI) pipelines record a delivered message the way kombu's restore
    reads it: restored, it is delivered again with the same body and headers."""
    app = create_celery(Settings(broker_url=redis_url, data_dir=tmp_path), include_tasks=False)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        client = channel._create_client()
        simple = conn.SimpleQueue(queue)
        simple.put({"n": 1, "text": "é ☃"}, headers={"h": "v"})
        first = simple.get(timeout=5)  # delivered, not acknowledged
        tag = first.delivery_tag
        assert client.hexists("unacked", tag) and client.zscore("unacked_index", tag) is not None
        channel.qos.restore_by_tag(tag, client)  # what restore_visible does after the timeout
        assert not client.hexists("unacked", tag)
        again = simple.get(timeout=5)
        assert again.payload == {"n": 1, "text": "é ☃"} == first.payload
        assert again.headers["h"] == "v"
        again.ack()
        assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0
        simple.close()
    app.close()


def test_an_error_reply_is_raised_and_the_connection_stays_usable(redis_url: str) -> None:
    key = f"test-unacked-{uuid.uuid4().hex[:8]}"
    options = {"unacked_key": key, "unacked_index_key": f"{key}-index"}
    with Connection(redis_url, transport=Transport, transport_options=options) as conn:
        channel = conn.default_channel
        client = channel._create_client()
        client.set(key, "not a hash")
        try:
            with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
                channel.qos.ack("some-tag")
            # nothing left unread on the pool's connections: the next commands answer right
            client.delete(key)
            channel.qos.ack("some-tag")
            assert client.ping() is True and client.exists(key) == 0
        finally:
            client.delete(key, f"{key}-index")
