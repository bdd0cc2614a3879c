"""Publishing ``process_event(event_id)`` after the event row is committed.

The one way every producer enqueues events: the gateway after its insert, cron dispatch
after a batch of fires, the sweeper when it re-publishes.

On a Redis broker the message is written with one ``LPUSH``, in exactly the format Celery's
Redis transport writes (task protocol 2, JSON body, base64 body encoding): ``celery.send_task``
costs about half a millisecond of CPU per call on this path (it builds a new Redis client per
publish), which is a large share of the ingress budget. The command goes out pre-encoded on
a connection kept per thread: redis-py's client and pool (command packing, pool lock, a
readiness poll per checkout) cost about as much CPU again as the round trip itself.
Other brokers (the embedded SQLAlchemy one, AMQP) go through ``send_task``.

The gateway publishes with :meth:`~EventPublisher.publish_unconfirmed`: the command is on
its way to Redis before the 202 goes out, but the request does not wait for Redis's reply;
the reply is read on the thread's next publish. The event is committed either way and the
answer is 202 either way (SPEC 4: a failed publish leaves the event ``pending`` for the
sweeper), so the wait bought nothing but a second blocking round trip per webhook, the
most expensive single step of the request. A failure is still counted and logged, by
the publish that detects it.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import threading
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from celery import Celery

from shared.infra.queues import PROCESS_EVENT, QUEUE_EVENTS

__all__ = [
    "CeleryPublisher",
    "EventPublisher",
    "PublishFailure",
    "RedisPublisher",
    "make_publisher",
]

log = logging.getLogger(__name__)

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
#: unconfirmed commands a thread may have outstanding before it waits for the oldest reply
MAX_UNCONFIRMED = 64


@dataclass(frozen=True)
class PublishFailure:
    """Events whose publish turned out to have failed (they stay ``pending``)."""

    event_ids: tuple[str, ...]
    error: BaseException


class EventPublisher(Protocol):
    def publish(self, event_id: uuid.UUID | str) -> None:
        """Enqueue the event for a worker; raises when the broker is unreachable."""

    def publish_many(self, event_ids: Sequence[uuid.UUID | str]) -> None:
        """Enqueue several, in order, over one connection; raises when the broker fails."""

    def publish_unconfirmed(self, event_id: uuid.UUID | str) -> list[PublishFailure]:
        """Send the event to the broker without waiting for its confirmation. Returns the
        publishes found to have failed: earlier unconfirmed ones, and this one if it could
        not be sent."""

    def confirm(self) -> list[PublishFailure]:
        """Wait for the confirmations of this thread's unconfirmed publishes; the failures."""


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

    def publish_unconfirmed(self, event_id: uuid.UUID | str) -> list[PublishFailure]:
        try:
            self.publish(event_id)  # kombu confirms as it sends
        except Exception as exc:
            return [PublishFailure((str(event_id),), exc)]
        return []

    def confirm(self) -> list[PublishFailure]:
        return []


@dataclass
class _Line:
    """A thread's connection and the event ids of its commands still awaiting a reply."""

    pid: int
    conn: Any
    unconfirmed: deque[tuple[str, ...]] = field(default_factory=deque)


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
        self._local = threading.local()

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
        self._lpush([event_id])

    def publish_many(self, event_ids: Sequence[uuid.UUID | str]) -> None:
        if not event_ids:
            return
        # LPUSH of several values pushes them in order, so workers (BRPOP) take the first
        # first; one round trip for the whole batch.
        self._lpush(event_ids)

    def publish_unconfirmed(self, event_id: uuid.UUID | str) -> list[PublishFailure]:
        line = self._line()
        # Replies that arrived meanwhile are read without waiting; a connection the server
        # closed shows here too (its end of file is readable), before anything is sent on it.
        failures = self._read_replies(line, wait_for=len(line.unconfirmed) - MAX_UNCONFIRMED + 1)
        if not line.unconfirmed and self._closed(line):
            line.conn.disconnect()
        ids = (str(event_id),)
        try:
            self._send(line, [_pack_lpush([self.message(event_id)])], failures, confirm=False)
        except Exception as exc:  # a timeout, say, or Redis unreachable twice
            return [*failures, PublishFailure(ids, exc)]
        line.unconfirmed.append(ids)
        return failures

    def confirm(self) -> list[PublishFailure]:
        line = self._line()
        return self._read_replies(line, wait_for=len(line.unconfirmed))

    def _line(self) -> _Line:
        """This thread's connection, made from the client's pool settings (host, database,
        timeouts, TLS) but not checked out of it. A forked child makes its own and leaves the
        parent's socket alone."""
        line: _Line | None = getattr(self._local, "line", None)
        if line is None or line.pid != os.getpid():
            line = self._local.line = _Line(
                os.getpid(), self.client.connection_pool.make_connection()
            )
        return line

    def _read_replies(self, line: _Line, wait_for: int) -> list[PublishFailure]:
        """Read the replies of unconfirmed commands, oldest first: the first ``wait_for``
        waiting if need be, then those already there."""
        from redis.exceptions import ResponseError

        failures: list[PublishFailure] = []
        while line.unconfirmed:
            try:
                if wait_for <= 0 and not line.conn.can_read(timeout=0):
                    break
                line.conn.read_response(disable_decoding=True)
            except ResponseError as exc:  # the server refused this one command
                failures.append(PublishFailure(line.unconfirmed.popleft(), exc))
            except BaseException as exc:
                return failures + self._drop(line, exc)
            else:
                line.unconfirmed.popleft()
            wait_for -= 1
        return failures

    @staticmethod
    def _closed(line: _Line) -> bool:
        """Whether a connected line has something to read although no reply is expected:
        the server's end of file (or junk), either way the connection is done for. An
        unconnected line is not probed: connecting is the send's job, and doing it here too
        would double the wait when Redis is unreachable."""
        from redis.exceptions import ConnectionError as RedisConnectionError

        if line.conn._sock is None:  # redis-py's own marker of an unconnected Connection
            return False
        try:
            return bool(line.conn.can_read(timeout=0))
        except RedisConnectionError:
            return True

    def _drop(self, line: _Line, exc: BaseException) -> list[PublishFailure]:
        """Close a broken connection (the next command reconnects); every command still
        unconfirmed on it counts as failed."""
        line.conn.disconnect()
        failures = [PublishFailure(ids, exc) for ids in line.unconfirmed]
        line.unconfirmed.clear()
        return failures

    def _send(
        self, line: _Line, packed: list[bytes], failures: list[PublishFailure], *, confirm: bool
    ) -> None:
        """Send one command (connecting if need be) and, with ``confirm``, read its reply (an
        error reply is raised as ResponseError). A connection the server dropped (a Redis
        restart, an idle timeout) is replaced and the command sent once more; should the
        first one have been applied after all, the event is queued twice, which
        ``process_event`` shrugs off: it only acts on a ``pending`` event. Commands left
        unconfirmed on a dropped connection are added to ``failures``."""
        from redis.exceptions import ConnectionError as RedisConnectionError

        for retry in (False, True):
            try:
                line.conn.send_packed_command(packed, check_health=False)
                if confirm:
                    line.conn.read_response()
                return
            except BaseException as exc:
                # also for any other error: a half-sent command or half-read reply must not
                # be mistaken for the next one's
                failures += self._drop(line, exc)
                if retry or not isinstance(exc, RedisConnectionError):
                    raise

    def _lpush(self, event_ids: Sequence[uuid.UUID | str]) -> None:
        """One confirmed ``LPUSH`` (see :meth:`_send`)."""
        line = self._line()
        failures = self._read_replies(line, wait_for=len(line.unconfirmed))
        for failure in failures:
            log.warning(
                "publishing events %s failed; they stay pending for the sweeper: %s",
                ", ".join(failure.event_ids),
                failure.error,
            )
        # nothing is unconfirmed now, so a dropped connection cannot add failures
        self._send(line, [_pack_lpush([self.message(e) for e in event_ids])], [], confirm=True)


_LPUSH_HEAD = b"\r\n$5\r\nLPUSH\r\n$%d\r\n%s\r\n" % (len(QUEUE_EVENTS), QUEUE_EVENTS.encode())


def _pack_lpush(messages: list[bytes]) -> bytes:
    """``LPUSH events <messages…>`` in RESP, as redis-py would pack it."""
    parts = [b"*%d" % (len(messages) + 2), _LPUSH_HEAD]
    for message in messages:
        parts += (b"$%d\r\n" % len(message), message, b"\r\n")
    return b"".join(parts)


def make_publisher(celery: Celery) -> EventPublisher:
    """The fast Redis path for a plain ``redis://``/``rediss://`` broker, else ``send_task``."""
    url = str(celery.conf.broker_url or "")
    if url.startswith(("redis://", "rediss://")) and ";" not in url:
        return RedisPublisher(url, dict(celery.conf.broker_transport_options or {}))
    return CeleryPublisher(celery)
