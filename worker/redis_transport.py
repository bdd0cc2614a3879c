"""kombu's Redis transport with one reusable client per channel.

With ``acks_late`` every message costs the worker's main process two Redis pipelines (record
it as unacknowledged, then acknowledge it). kombu builds a new ``redis.Redis`` object for each
(``Channel.conn_or_acquire`` → ``_create_client``), and ``redis.Redis.__init__`` copies a
table of some two hundred response callbacks every time: about a fifth of the main process's
CPU per task in ``bench/pipeline.py``. The client object holds no connection of its own (it
borrows from the channel's pool per command), so one per channel and pool serves every call.

Selected by :func:`worker.celery_app.celery_config` for ``redis://`` brokers; everything else
is kombu's own transport.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

__all__ = ["Channel", "Transport"]


class Channel(kombu_redis.Channel):  # type: ignore[misc]
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
