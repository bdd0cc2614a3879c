"""Live chat events (SPEC 9 "Live stream"): what the runner tells open streams as it happens.

The runner publishes, the stream endpoint subscribes. Events are hints for live viewers, never
the record: the database is. A viewer subscribes first, then reads the snapshot, so nothing
that commits after the snapshot is missed; an event published before the snapshot only
repeats what the snapshot shows.

Event names (``event``) and their ``data``:

* ``status``  ``{"status": "running" | "waiting" | "pending" | "paused" | "error"}``
* ``delta``   ``{"text": "..."}``: streamed text of the reply being written (combined, not
  per token)
* ``message`` ``{"message": <the API's ChatMessage JSON>}``: a message was stored
* ``retry``   ``{"retry": {"attempt", "kind", "delay_ms", "retrying_at"}}``
* ``error``   ``{"last_error": {...}}``

A subscriber may also receive ``resync`` (no data): some events could not be delivered (too
large for a datagram, or the subscriber fell behind); the stream answers it with a fresh
``snapshot``.

Two transports, picked by :func:`live_events` / :func:`live_subscriber` from the settings:

* **Redis pub/sub** (a Redis broker, i.e. fleets): one channel per chat (:func:`channel`).
  Publishing hands the event to a per-process background thread that sends whatever has
  queued up in one pipelined round trip, so :meth:`RedisLiveEvents.publish` never waits for
  the network (the runner calls it from its event loop, a delta batch every ~100 ms per
  turn) and never raises; when Redis is down or the queue is full, events are dropped.
  Every subscription is one redis-py ``PubSub`` (one connection) and waits for Redis to
  confirm the SUBSCRIBE before the caller reads its snapshot.
* **UNIX datagram sockets** in ``<data dir>/live/`` (embedded mode, no Redis). Every
  process that serves streams binds one socket there; a publisher sends each event, as one
  non-blocking datagram, to every socket in the directory (listed on every publish, so a
  subscriber bound a moment ago is never missed). This was chosen over polling the database
  because it carries ``delta`` events and costs nothing while nobody watches, and over a
  table because it needs no schema and no writes to the single SQLite writer. A socket
  file nobody is bound to any more (a killed process) is removed by the next publisher that
  gets ``ECONNREFUSED``. Events too large for one datagram reach subscribers as ``resync``.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

if TYPE_CHECKING:
    import redis

    from shared.infra.config import Settings

__all__ = [
    "EVENTS",
    "LiveEvent",
    "LiveEvents",
    "LiveSubscriber",
    "LocalLiveEvents",
    "LocalLiveSubscriber",
    "NullLiveEvents",
    "RedisLiveEvents",
    "RedisLiveSubscriber",
    "Subscription",
    "channel",
    "live_events",
    "live_subscriber",
]

log = logging.getLogger(__name__)

#: every event name a stream may carry (besides ``snapshot``, which the endpoint builds)
EVENTS = ("status", "delta", "message", "retry", "error")
#: events not delivered (too large, or a subscriber behind): the stream sends a new snapshot
RESYNC = "resync"
#: largest datagram we send; Linux allows about 200 KiB with the default buffer sizes
MAX_DATAGRAM = 192 * 1024
#: events a publisher process holds for Redis before it drops new ones
PUBLISH_QUEUE_SIZE = 10_000
#: events one subscription holds for a slow stream before it asks for a resync
SUBSCRIPTION_QUEUE_SIZE = 1_000


def channel(chat_id: uuid.UUID) -> str:
    """The pub/sub channel of one chat."""
    return f"automations:chat:{chat_id}"


@dataclass(frozen=True)
class LiveEvent:
    event: str
    data: dict[str, Any]


class LiveEvents(Protocol):
    def publish(self, chat_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
        """Tell the chat's open streams; never raises (a lost hint is harmless)."""


class Subscription(Protocol):
    def get(self, timeout: float) -> LiveEvent | None:
        """The next event, or None after ``timeout`` seconds without one."""

    def close(self) -> None:
        """Stop receiving; idempotent."""


class LiveSubscriber(Protocol):
    def subscribe(self, chat_id: uuid.UUID) -> Subscription:
        """Start receiving the chat's events; active on return (subscribe first, then read)."""


class NullLiveEvents:
    """Publishes nothing: for callers without live viewers (tests, tools)."""

    def publish(self, chat_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
        return None


def _encode(chat_id: uuid.UUID, event: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps({"chat_id": str(chat_id), "event": event, "data": data})


def _decode(raw: bytes) -> tuple[str, LiveEvent] | None:
    try:
        obj = orjson.loads(raw)
        return str(obj["chat_id"]), LiveEvent(str(obj["event"]), dict(obj.get("data") or {}))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("ignoring a malformed live event")
        return None


# Redis -------------------------------------------------------------------------------------


class RedisLiveEvents:
    """Publishes through a background thread (see the module docstring); fork-safe: a forked
    child starts its own thread on its first publish."""

    def __init__(self, url: str) -> None:
        import redis

        self._client: redis.Redis = redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=2
        )
        self._queue: queue.Queue[tuple[str, bytes]] = queue.Queue(PUBLISH_QUEUE_SIZE)
        self._lock = threading.Lock()
        self._pid = 0

    def publish(self, chat_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
        try:
            if self._pid != os.getpid():
                self._start()
            self._queue.put_nowait((channel(chat_id), _encode(chat_id, event, data)))
        except queue.Full:
            log.debug("live events: queue full, event dropped")
        except Exception:  # never raise into the runner
            log.warning("live events: publish failed", exc_info=True)

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.Queue(PUBLISH_QUEUE_SIZE)  # a parent's items stay its own
            threading.Thread(target=self._send_loop, name="live-events", daemon=True).start()
            self._pid = os.getpid()

    def _send_loop(self) -> None:
        q = self._queue
        while True:
            batch = [q.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < 500:
                    batch.append(q.get_nowait())
            try:
                pipe = self._client.pipeline(transaction=False)
                for name, payload in batch:
                    pipe.publish(name, payload)
                pipe.execute()
            except Exception as exc:
                log.warning("live events: %d dropped (%s)", len(batch), type(exc).__name__)
                time.sleep(1.0)  # Redis is down: do not spin; events meanwhile are dropped


class RedisSubscription:
    def __init__(self, client: redis.Redis, chat_id: uuid.UUID, confirm_timeout: float) -> None:
        self._pubsub = client.pubsub()
        self._pubsub.subscribe(channel(chat_id))
        # SUBSCRIBE is only in effect once Redis answered it: wait for that answer, so that an
        # event published after we return reaches us (subscribe first, then read)
        deadline = time.monotonic() + confirm_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise TimeoutError("Redis did not confirm the subscription")
            msg = self._pubsub.get_message(timeout=remaining)
            if msg is not None and msg["type"] == "subscribe":
                break

    def get(self, timeout: float) -> LiveEvent | None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            msg = self._pubsub.get_message(timeout=max(0.0, remaining))
            if msg is not None and msg["type"] == "message":
                decoded = _decode(msg["data"])
                if decoded is not None:
                    return decoded[1]
            elif msg is None and time.monotonic() >= deadline:
                return None

    def close(self) -> None:
        # closing the PubSub drops its connection, which ends the subscription on the server
        with contextlib.suppress(Exception):
            self._pubsub.close()


class RedisLiveSubscriber:
    def __init__(self, url: str, confirm_timeout: float = 5.0) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_connect_timeout=2)
        self._confirm_timeout = confirm_timeout

    def subscribe(self, chat_id: uuid.UUID) -> Subscription:
        return RedisSubscription(self._client, chat_id, self._confirm_timeout)


# Embedded: UNIX datagram sockets -----------------------------------------------------------

#: AF_UNIX addresses are limited to 107 bytes on Linux (103 on macOS)
MAX_SOCKET_PATH = 100
_dir_fds: dict[Path, int] = {}


def _address(path: Path) -> str:
    """``path``, or when it is too long for a socket address, the same file reached through
    an open descriptor of its directory (``/proc/self/fd/N/name``, Linux)."""
    if len(os.fsencode(str(path))) <= MAX_SOCKET_PATH or not os.path.isdir("/proc/self/fd"):
        return str(path)
    fd = _dir_fds.get(path.parent)
    if fd is None:
        fd = _dir_fds[path.parent] = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{path.name}"


class LocalLiveEvents:
    """Sends each event as one datagram to every stream process's socket in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._endpoint: socket.socket | None = None
        self._pid = 0

    def _socket(self) -> socket.socket:
        if self._endpoint is None or self._pid != os.getpid():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_DATAGRAM + 4096)
            self._endpoint, self._pid = sock, os.getpid()
        return self._endpoint

    def publish(self, chat_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
        try:
            self._publish(chat_id, event, data)
        except Exception:  # never raise into the runner
            log.warning("live events: publish failed", exc_info=True)

    def _publish(self, chat_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
        try:
            entries = [e.path for e in os.scandir(self._dir) if e.name.endswith(".sock")]
        except FileNotFoundError:
            return  # no stream process has ever listened here
        if not entries:
            return
        payload = _encode(chat_id, event, data)
        if len(payload) > MAX_DATAGRAM:
            payload = _encode(chat_id, RESYNC, {})
        sock = self._socket()
        for path in entries:
            try:
                sock.sendto(payload, _address(Path(path)))
            except OSError as exc:
                if exc.errno == errno.ECONNREFUSED:  # nobody bound: a dead process's file
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                elif exc.errno == errno.EMSGSIZE:
                    with contextlib.suppress(OSError):
                        sock.sendto(_encode(chat_id, RESYNC, {}), path)
                # EAGAIN (the receiver is behind), ENOENT (just removed): a lost hint


class _LocalSubscription:
    def __init__(self, owner: LocalLiveSubscriber, key: str) -> None:
        self._owner, self.key = owner, key
        self.queue: queue.Queue[LiveEvent] = queue.Queue(SUBSCRIPTION_QUEUE_SIZE)
        self.overflowed = False
        self._closed = False

    def deliver(self, event: LiveEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.overflowed = True

    def get(self, timeout: float) -> LiveEvent | None:
        if self.overflowed:
            self.overflowed = False
            with contextlib.suppress(queue.Empty):
                while True:
                    self.queue.get_nowait()
            return LiveEvent(RESYNC, {})
        try:
            return self.queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner.release(self)


class LocalLiveSubscriber:
    """One datagram socket per process in ``directory`` and a thread that hands each event to
    the subscriptions of its chat. The socket is bound on creation, so a subscription is
    active as soon as :meth:`subscribe` returns."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
        self._endpoint = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            self._endpoint.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self._endpoint.bind(_address(self.path))
        atexit.register(self.close)
        self._subs: dict[str, set[_LocalSubscription]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._receive_loop, name="live-recv", daemon=True)
        self._thread.start()

    def subscribe(self, chat_id: uuid.UUID) -> Subscription:
        sub = _LocalSubscription(self, str(chat_id))
        with self._lock:
            self._subs.setdefault(sub.key, set()).add(sub)
        return sub

    def release(self, sub: _LocalSubscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.key]

    def count(self, chat_id: uuid.UUID) -> int:
        """Open subscriptions of the chat in this process (tests, metrics)."""
        with self._lock:
            return len(self._subs.get(str(chat_id), ()))

    def _receive_loop(self) -> None:
        while True:
            try:
                raw = self._endpoint.recv(MAX_DATAGRAM + 1024)
            except OSError:
                return  # closed
            if self._closed:
                return  # shut down: recv answers b"" from now on
            decoded = _decode(raw)
            if decoded is None:
                continue
            key, event = decoded
            with self._lock:
                subs = list(self._subs.get(key, ()))
            for sub in subs:
                sub.deliver(event)

    def close(self) -> None:
        """Unbind (tests, process exit); a file left by a killed process is removed by the
        next publisher."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            self._endpoint.shutdown(socket.SHUT_RDWR)
        self._endpoint.close()


# Choosing one ------------------------------------------------------------------------------

_publishers: dict[str, LiveEvents] = {}
_subscribers: dict[str, LiveSubscriber] = {}
_choose_lock = threading.Lock()


def _redis_url(settings: Settings) -> str | None:
    url = settings.effective_broker_url
    return url if url.startswith(("redis://", "rediss://", "unix://")) else None


def live_directory(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "live"


def live_events(settings: Settings) -> LiveEvents:
    """The process's publisher for these settings: Redis pub/sub when the broker is Redis,
    else datagrams to the stream processes of this data directory. Cached per process."""
    url = _redis_url(settings)
    key = url or f"local:{live_directory(settings)}"
    with _choose_lock:
        pub = _publishers.get(key)
        if pub is None:
            pub = RedisLiveEvents(url) if url else LocalLiveEvents(live_directory(settings))
            _publishers[key] = pub
        return pub


def live_subscriber(settings: Settings) -> LiveSubscriber:
    """The process's subscriber for these settings (see :func:`live_events`)."""
    url = _redis_url(settings)
    key = url or f"local:{live_directory(settings)}"
    with _choose_lock:
        sub = _subscribers.get(key)
        if sub is None:
            sub = RedisLiveSubscriber(url) if url else LocalLiveSubscriber(live_directory(settings))
            _subscribers[key] = sub
        return sub


@contextlib.contextmanager
def subscription(subscriber: LiveSubscriber, chat_id: uuid.UUID) -> Iterator[Subscription]:
    sub = subscriber.subscribe(chat_id)
    try:
        yield sub
    finally:
        sub.close()
