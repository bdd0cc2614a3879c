"""kombu's Redis transport with one reusable client per channel and lighter acknowledgements.

With ``acks_late`` every message costs the worker's main process two Redis pipelines (record
it as unacknowledged, then acknowledge it). kombu builds a new ``redis.Redis`` object for each
(``Channel.conn_or_acquire`` → ``_create_client``), and ``redis.Redis.__init__`` copies a
table of some two hundred response callbacks every time: about a fifth of the main process's
CPU per task in ``bench/pipeline.py``. The client object holds no connection of its own (it
borrows from the channel's pool per command), so one per channel and pool serves every call.

The two pipelines themselves are plain (no ``MULTI``/``EXEC``: half the commands for Redis and
for the client to parse) and the unacknowledged record is encoded with orjson. The transaction
bought nothing: Redis runs a pipeline's commands in order, and the only reader of these keys,
``restore_visible``, takes only entries older than the visibility timeout (far longer than a
task may run) under a ``WATCH`` of the hash, so it never sees one half-written or half-removed.
Even if it did, the effect would be a redelivery, which the event task tolerates (idempotent).

Selected by :func:`worker.celery_app.celery_config` for ``redis://`` brokers; everything else
is kombu's own transport.
"""

from __future__ import annotations

from time import time
from typing import Any

import orjson
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps as kombu_dumps

__all__ = ["Channel", "QoS", "Transport"]


def _record(message: Any) -> str:
    """What kombu stores for an unacknowledged message (``[body, exchange, routing key]``),
    read back by kombu's restore; kombu's own encoder for what orjson refuses."""
    delivery = message.delivery_info
    value = [message._raw, delivery["exchange"], delivery["routing_key"]]
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(kombu_dumps(value))


class QoS(kombu_redis.QoS):  # type: ignore[misc]
    def append(self, message: Any, delivery_tag: str) -> None:
        with self.channel.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False)
            pipe.zadd(self.unacked_index_key, {delivery_tag: time()})
            pipe.hset(self.unacked_key, delivery_tag, _record(message))
            pipe.execute()
        virtual.QoS.append(self, message, delivery_tag)

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        if pipe is not None:  # restore's WATCH transaction
            return super()._remove_from_indices(delivery_tag, pipe)
        with self.channel.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False)
            return pipe.zrem(self.unacked_index_key, delivery_tag).hdel(
                self.unacked_key, delivery_tag
            )


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    QoS = QoS
    _sync_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        if self._sync_client is None or self._sync_client.connection_pool is not pool:
            # a new pool (the channel reconnected) gets a new client
            self._sync_client = self.Client(connection_pool=pool)
        return self._sync_client


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel
