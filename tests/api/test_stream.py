"""``GET /api/v1/chats/<id>/stream`` against a real HTTP server, in both transports: Redis
pub/sub on PostgreSQL, and the embedded mode (SQLite, datagram sockets, no Redis).

Subscribe first, then the snapshot: an event published and a message committed between the
two both reach the client; events are relayed; another user's chat is 404; keep-alive
comments come at the configured interval; a client that goes away releases the subscription.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from shared import accounts
from shared.chats import live
from shared.infra.clock import system_clock
from shared.infra.config import Settings
from shared.infra.db import migrate
from shared.infra.db.engine import make_engine
from shared.infra.db.uow import Database
from shared.models import Chat, ChatStatus, OrgRole
from tests import factories as f
from webhook_gateway.api.stream import StreamConfig, configure_streams
from webhook_gateway.app import create_app

#: a bound on every wait (a failure, not a timing assertion)
WAIT = 10.0


@dataclass
class World:
    settings: Settings
    app: Flask
    base: str
    config: StreamConfig
    db: Database
    chat_id: uuid.UUID
    owner_token: str
    stranger_token: str
    mode: str

    def url(self, chat_id: uuid.UUID | None = None) -> str:
        return f"{self.base}/api/v1/chats/{chat_id or self.chat_id}/stream"

    def open(self, token: str | None = None) -> requests.Response:
        return requests.get(
            self.url(),
            headers={"Authorization": f"Bearer {token or self.owner_token}"},
            stream=True,
            timeout=(5, WAIT),
        )

    def publish(self, event: str, data: dict[str, Any]) -> None:
        live.live_events(self.settings).publish(self.chat_id, event, data)

    def subscriptions(self) -> int:
        if self.mode == "redis":
            client = redis.Redis.from_url(str(self.settings.broker_url))
            ((_, count),) = client.pubsub_numsub(live.channel(self.chat_id))
            return int(count)
        sub = live.live_subscriber(self.settings)
        assert isinstance(sub, live.LocalLiveSubscriber)
        return sub.count(self.chat_id)


class Events:
    """Reads Server-Sent Events: ``(event, data)``, or ``(":", text)`` for a comment."""

    def __init__(self, resp: requests.Response) -> None:
        self._lines = resp.iter_lines(chunk_size=1, decode_unicode=True)

    def next(self) -> tuple[str, Any]:
        event, data = "", ""
        for line in self._lines:
            if line.startswith(":"):
                return ":", line[1:].strip()
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
            elif line == "" and event:
                return event, orjson.loads(data)
        raise EOFError

    def next_event(self) -> tuple[str, Any]:
        """The next event, skipping keep-alive comments."""
        while True:
            kind, data = self.next()
            if kind != ":":
                return kind, data


def _serve(app: Flask) -> tuple[BaseWSGIServer, str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def _settings(mode: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    if mode == "redis":
        return Settings(
            database_url=request.getfixturevalue("pg_committed"),
            broker_url=request.getfixturevalue("redis_url"),
            data_dir=tmp_path,
            auth_failure_limit=0,
        )
    settings = Settings(data_dir=tmp_path, auth_failure_limit=0)
    migrate.upgrade(settings.effective_database_url)
    return settings


@pytest.fixture(params=["redis", "embedded"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    mode = request.param
    if mode == "redis":
        request.applymarker(pytest.mark.redis)
    settings = _settings(mode, tmp_path, request)
    engine = make_engine(settings.effective_database_url)
    db = Database(engine)
    with db.unit() as uow:
        s = uow.session
        org_a = f.org(s, system_clock, name=f"a-{uuid.uuid4().hex[:6]}")
        org_b = f.org(s, system_clock, name=f"b-{uuid.uuid4().hex[:6]}")
        owner = f.user(s, system_clock, org_a)
        stranger = f.user(s, system_clock, org_b, role=OrgRole.ORG_ADMIN)
        chat = f.chat(s, system_clock, owner, org_a.id, status=ChatStatus.PENDING)
        f.message(s, system_clock, chat, "hello")
        _, owner_token = accounts.create_token(s, system_clock, owner.email)
        _, stranger_token = accounts.create_token(s, system_clock, stranger.email)
        chat_id = chat.id
    app = create_app(settings)
    config = configure_streams(app, keepalive_seconds=WAIT * 3, max_streams=None)
    server, base = _serve(app)
    try:
        yield World(settings, app, base, config, db, chat_id, owner_token, stranger_token, mode)
    finally:
        server.shutdown()
        app.extensions["automations"].dispose()
        engine.dispose()


def _wait_for(predicate: Any) -> bool:
    import time

    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_snapshot_first_then_relayed_events(world: World) -> None:
    with world.open() as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["Cache-Control"] == "no-store"
        events = Events(resp)
        kind, snap = events.next_event()
        assert kind == "snapshot"
        assert snap["status"] == "pending"
        assert snap["retry"] is None and snap["last_error"] is None
        assert [m["content"] for m in snap["messages"]] == ["hello"]

        world.publish("status", {"status": "running"})
        world.publish("delta", {"text": "Hel"})
        world.publish("delta", {"text": "lo!"})
        world.publish("error", {"last_error": {"kind": "timeout", "message": "stream closed"}})
        assert events.next_event() == ("status", {"status": "running"})
        assert events.next_event() == ("delta", {"text": "Hel"})
        assert events.next_event() == ("delta", {"text": "lo!"})
        assert events.next_event() == (
            "error",
            {"last_error": {"kind": "timeout", "message": "stream closed"}},
        )


def test_what_happens_between_subscribe_and_snapshot_is_not_lost(world: World) -> None:
    """A message committed and an event published after the subscription was armed but before
    the snapshot was read: the message is in the snapshot, the event follows it."""

    def meanwhile(chat_id: uuid.UUID) -> None:
        with world.db.unit() as uow:
            chat = uow.session.get(Chat, chat_id)
            assert chat is not None
            f.message(uow.session, system_clock, chat, "meanwhile")
        world.publish("status", {"status": "running"})

    world.config.after_subscribe = meanwhile
    with world.open() as resp:
        events = Events(resp)
        kind, snap = events.next_event()
        assert kind == "snapshot"
        assert [m["content"] for m in snap["messages"]] == ["hello", "meanwhile"]
        assert events.next_event() == ("status", {"status": "running"})


def test_snapshot_holds_the_last_50_messages(world: World) -> None:
    with world.db.unit() as uow:
        chat = uow.session.get(Chat, world.chat_id)
        assert chat is not None
        for i in range(60):
            f.message(uow.session, system_clock, chat, f"m{i}")
    with world.open() as resp:
        kind, snap = Events(resp).next_event()
    assert kind == "snapshot"
    assert [m["content"] for m in snap["messages"]] == [f"m{i}" for i in range(10, 60)]


def test_a_chat_the_caller_may_not_read_is_404(world: World) -> None:
    resp = world.open(world.stranger_token)
    assert resp.status_code == 404
    assert resp.json()["code"] == "not_found"
    resp = requests.get(world.url(uuid.uuid4()), headers={}, timeout=WAIT)
    assert resp.status_code == 401
    resp = requests.get(
        world.url(uuid.uuid4()),
        headers={"Authorization": f"Bearer {world.owner_token}"},
        timeout=WAIT,
    )
    assert resp.status_code == 404
    assert world.config.open_streams == 0


def test_keepalive_comment_when_idle(world: World) -> None:
    world.config.keepalive_seconds = 0.2
    with world.open() as resp:
        events = Events(resp)
        assert events.next()[0] == "snapshot"
        assert events.next() == (":", "keep-alive")
        assert events.next() == (":", "keep-alive")
        world.publish("status", {"status": "waiting"})
        assert events.next_event() == ("status", {"status": "waiting"})


def test_client_going_away_releases_the_subscription(world: World) -> None:
    world.config.keepalive_seconds = 0.1  # the server notices at its next write
    resp = world.open()
    events = Events(resp)
    assert events.next()[0] == "snapshot"
    assert _wait_for(lambda: world.subscriptions() == 1)
    assert world.config.open_streams == 1
    resp.close()
    assert _wait_for(lambda: world.subscriptions() == 0)
    assert _wait_for(lambda: world.config.open_streams == 0)


def test_a_gateway_process_serves_only_its_share(world: World) -> None:
    world.config.max_streams = 1
    with world.open() as first:
        assert Events(first).next()[0] == "snapshot"
        second = world.open()
        assert second.status_code == 503
        assert second.headers["Retry-After"]
        assert "automations stream" in second.json()["message"]


def test_an_event_too_large_for_a_datagram_brings_a_fresh_snapshot(world: World) -> None:
    if world.mode != "embedded":
        pytest.skip("Redis carries any size")
    with world.open() as resp:
        events = Events(resp)
        assert events.next_event()[0] == "snapshot"
        world.publish("delta", {"text": "x" * (live.MAX_DATAGRAM + 1)})
        kind, snap = events.next_event()
        assert kind == "snapshot"
        assert [m["content"] for m in snap["messages"]] == ["hello"]


# The transports on their own ---------------------------------------------------------------


def test_embedded_transport_in_a_data_dir_too_long_for_a_socket_address(tmp_path: Path) -> None:
    directory = tmp_path / ("d" * 120) / "live"
    sub = live.LocalLiveSubscriber(directory)
    try:
        chat_id = uuid.uuid4()
        s = sub.subscribe(chat_id)
        live.LocalLiveEvents(directory).publish(chat_id, "status", {"status": "running"})
        assert s.get(WAIT) == live.LiveEvent("status", {"status": "running"})
        s.close()
        assert sub.count(chat_id) == 0
    finally:
        sub.close()


def test_a_socket_left_by_a_killed_process_is_removed_by_the_next_publish(
    tmp_path: Path,
) -> None:
    import socket

    directory = tmp_path / "live"
    directory.mkdir()
    stale = directory / "999999-dead.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(stale))
    sock.close()  # the file stays, nobody is bound: as after SIGKILL
    live.LocalLiveEvents(directory).publish(uuid.uuid4(), "status", {"status": "running"})
    assert not stale.exists()


def test_publish_never_raises_when_redis_is_down() -> None:
    """Publishing only queues: the background sender meets the refused connection and drops
    the events (a lost hint is harmless)."""
    pub = live.RedisLiveEvents("redis://127.0.0.1:1/0")
    for _ in range(live.PUBLISH_QUEUE_SIZE + 10):  # past the queue's bound, too
        pub.publish(uuid.uuid4(), "delta", {"text": "x"})


def test_events_of_other_chats_are_not_relayed(world: World) -> None:
    with world.open() as resp:
        events = Events(resp)
        assert events.next_event()[0] == "snapshot"
        live.live_events(world.settings).publish(uuid.uuid4(), "status", {"status": "error"})
        world.publish("status", {"status": "waiting"})
        assert events.next_event() == ("status", {"status": "waiting"})
