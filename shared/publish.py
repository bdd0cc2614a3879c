"""Publishing ``process_event(event_id)`` after the event row is committed.

The one way every producer enqueues events: the gateway after its insert, cron dispatch
after a batch of fires, the sweeper when it re-publishes.

On a Redis broker the message is written with one ``LPUSH`` on a pooled client, in exactly
the format Celery's Redis transport writes (task protocol 2, JSON body, base64 body
encoding): ``celery.send_task`` costs about half a millisecond of CPU per call on this path
(it builds a new Redis client per publish), which is a large share of the ingress budget.
Other brokers (the embedded SQLAlchemy one, AMQP) go through ``send_task``.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import orjson
from celery import Celery

from shared.tasknames import PROCESS_EVENT, QUEUE_EVENTS

__all__ = ["CeleryPublisher", "EventPublisher", "RedisPublisher", "make_publisher"]

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class EventPublisher(Protocol):
    def publish(self, event_id: uuid.UUID | str) -> None:
        """Enqueue the event for a worker; raises when the broker is unreachable."""

    def publish_many(self, event_ids: Sequence[uuid.UUID | str]) -> None:
        """Enqueue several, in order, over one connection; raises when the broker fails."""


class CeleryPublisher:
    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def publish(self, event_id: uuid.UUID | str) -> None:
        self.celery.send_task(PROCESS_EVENT, args=[str(event_id)], queue=QUEUE_EVENTS)

    def publish_many(self, event_ids: Sequence[uuid.UUID | str]) -> None:
        with self.celery.producer_or_acquire() as producer:
            for event_id in event_ids:
                self.celery.send_task(
                    PROCESS_EVENT, args=[str(event_id)], queue=QUEUE_EVENTS, producer=producer
                )


class RedisPublisher:
    """Writes Celery protocol-2 messages for :data:`PROCESS_EVENT` straight to the queue list."""

    def __init__(self, broker_url: str, transport_options: dict[str, Any] | None = None) -> None:
        import redis

        opts = transport_options or {}
        self.client = redis.Redis.from_url(
            broker_url,
            socket_timeout=opts.get("socket_timeout", 5),
            socket_connect_timeout=opts.get("socket_connect_timeout", 3),
        )
        self._origin = f"gen{os.getpid()}@{socket.gethostname()}"
        self._reply_to = str(uuid.uuid4())

    def message(self, event_id: uuid.UUID | str) -> bytes:
        task_id = str(uuid.uuid4())
        args = [str(event_id)]
        body = orjson.dumps([args, {}, _EMBED])
        return orjson.dumps(
            {
                "body": base64.b64encode(body).decode("ascii"),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": {
                    "lang": "py",
                    "task": PROCESS_EVENT,
                    "id": task_id,
                    "shadow": None,
                    "eta": None,
                    "expires": None,
                    "group": None,
                    "group_index": None,
                    "retries": 0,
                    "timelimit": [None, None],
                    "root_id": task_id,
                    "parent_id": None,
                    "argsrepr": repr(args),
                    "kwargsrepr": "{}",
                    "origin": self._origin,
                    "ignore_result": False,
                    "replaced_task_nesting": 0,
                    "stamped_headers": None,
                    "stamps": {},
                },
                "properties": {
                    "correlation_id": task_id,
                    "reply_to": self._reply_to,
                    "delivery_mode": 2,
                    "delivery_info": {"exchange": "", "routing_key": QUEUE_EVENTS},
                    "priority": 0,
                    "body_encoding": "base64",
                    "delivery_tag": str(uuid.uuid4()),
                },
            }
        )

    def publish(self, event_id: uuid.UUID | str) -> None:
        self.client.lpush(QUEUE_EVENTS, self.message(event_id))

    def publish_many(self, event_ids: Sequence[uuid.UUID | str]) -> None:
        if not event_ids:
            return
        # LPUSH of several values pushes them in order, so workers (BRPOP) take the first
        # first; one round trip for the whole batch.
        self.client.lpush(QUEUE_EVENTS, *(self.message(e) for e in event_ids))


def make_publisher(celery: Celery) -> EventPublisher:
    """The fast Redis path for a plain ``redis://``/``rediss://`` broker, else ``send_task``."""
    url = str(celery.conf.broker_url or "")
    if url.startswith(("redis://", "rediss://")) and ";" not in url:
        return RedisPublisher(url, dict(celery.conf.broker_transport_options or {}))
    return CeleryPublisher(celery)
