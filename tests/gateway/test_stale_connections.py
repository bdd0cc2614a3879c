"""Webhooks after the gateway's pooled database connections died (database restart, failover,
an administrator's ``pg_terminate_backend``): they are still accepted, each once; a database
that is really unreachable answers 503 with Retry-After.

Written against behaviour only (HTTP answers and rows), not against how the gateway's engines
and pools are laid out.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from werkzeug.test import TestResponse

from tests.gateway.conftest import GatewayFactory, GatewayHarness
from tests.harness.services import free_port
from tests.pipeline.helpers import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

#: what shared/db/engine.py names every connection of the services
APP = "chat-automations"
THREADS = 6


@pytest.fixture
def admin(pg_committed: str) -> Iterator[Engine]:
    """Connections of the test's own (another application_name), never pooled."""
    engine = create_engine(
        pg_committed, poolclass=NullPool, connect_args={"application_name": "tests-admin"}
    )
    yield engine
    engine.dispose()


def _terminate_app_backends(admin: Engine) -> int:
    """Terminates every backend of the services on this database; waits until each is gone."""
    with admin.connect() as conn:
        gone = conn.execute(
            text(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name = :app"
            ),
            {"app": APP},
        ).scalars()
        results = list(gone)
    assert all(results), results
    return len(results)


def _app_backends(admin: Engine, where: str = "true") -> int:
    with admin.connect() as conn:  # a new transaction each time: pg_stat_activity is a snapshot
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    f"AND application_name = :app AND {where}"
                ),
                {"app": APP},
            ).scalar_one()
        )


def _accepted(resp: TestResponse) -> str:
    assert resp.status_code == 202, (resp.status_code, resp.data)
    body = resp.get_json()
    assert "duplicate" not in body, body
    return str(body["event_id"])


def _stored(gw: GatewayHarness) -> dict[str, str]:
    """delivery id -> event id of the stored events."""
    rows = {e.delivery_id: str(e.id) for e in gw.events() if e.delivery_id}
    assert len(rows) == len(gw.events())
    return rows


def _concurrently(gw: GatewayHarness, tid: uuid.UUID, deliveries: list[str]) -> list[TestResponse]:
    barrier = threading.Barrier(len(deliveries))
    responses: dict[str, TestResponse] = {}
    lock = threading.Lock()

    def send(delivery: str) -> None:
        client = gw.app.test_client()
        barrier.wait()
        resp = gw.post(tid, b'{"n": 1}', delivery_id=delivery, client=client)
        with lock:
            responses[delivery] = resp

    threads = [threading.Thread(target=send, args=(d,)) for d in deliveries]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(responses) == sorted(deliveries)
    return [responses[d] for d in deliveries]


def test_requests_after_the_pooled_connection_died_are_accepted(
    gw: GatewayHarness, admin: Engine, redis_url: str
) -> None:
    # one body, many deliveries: no replay window (this is about the delivery ids)
    cached, uncached = gw.seed(replay_window_seconds=0), gw.seed(replay_window_seconds=0)
    first = _accepted(gw.post(cached, delivery_id="d-1"))  # the trigger is now cached
    assert _terminate_app_backends(admin) >= 1

    # a trigger not cached yet: the lookup is the first statement on the dead connection
    second = _accepted(gw.post(uncached, delivery_id="d-2"))
    assert _terminate_app_backends(admin) >= 1
    # a cached trigger: the event's insert is the first statement on the dead connection
    third = _accepted(gw.post(cached, delivery_id="d-3"))
    fourth = _accepted(gw.post(cached, delivery_id="d-4"))  # and the pool is healthy again

    assert _stored(gw) == {"d-1": first, "d-2": second, "d-3": third, "d-4": fourth}
    assert redis.Redis.from_url(redis_url).llen("events") == 4  # each published once
    # a redelivery after all that is still recognised
    again = gw.post(cached, delivery_id="d-3")
    assert again.status_code == 202 and again.get_json() == {"event_id": third, "duplicate": True}


def test_every_request_is_accepted_when_every_pooled_connection_died(
    make_gateway: GatewayFactory, admin: Engine
) -> None:
    gw = make_gateway(db_pool_size=THREADS, db_max_overflow=2)
    tid = gw.seed(replay_window_seconds=0)  # one body, many deliveries
    ids = {"warm-0": _accepted(gw.post(tid, delivery_id="warm-0"))}

    # Warm THREADS pooled connections: hold the events table so that THREADS requests each
    # wait inside their insert, on a connection of their own, at the same time.
    warm = [f"warm-{i}" for i in range(1, THREADS + 1)]
    with admin.connect() as locker:
        locker.begin()
        locker.exec_driver_sql("LOCK TABLE automation_events IN SHARE MODE")
        done: list[list[TestResponse]] = []
        sender = threading.Thread(target=lambda: done.append(_concurrently(gw, tid, warm)))
        sender.start()
        wait_until(
            lambda: _app_backends(admin, "wait_event_type = 'Lock'") == THREADS,
            timeout=30,
            what=f"{THREADS} webhook requests waiting on the events table",
        )
        locker.commit()
    sender.join(60)
    ids.update({d: _accepted(r) for d, r in zip(warm, done[0], strict=True)})

    assert _terminate_app_backends(admin) >= THREADS
    assert _app_backends(admin) == 0

    after = [f"after-{i}" for i in range(THREADS)]
    ids.update({d: _accepted(r) for d, r in zip(after, _concurrently(gw, tid, after), strict=True)})
    for i in range(THREADS):  # and one by one afterwards
        ids[f"later-{i}"] = _accepted(gw.post(tid, delivery_id=f"later-{i}"))

    assert _stored(gw) == ids
    assert len(set(ids.values())) == len(ids)


class _Proxy:
    """A TCP forwarder to the test database's server that can be cut: :meth:`stop` drops
    every forwarded connection and stops listening (connections are refused, as when the
    server is down); :meth:`start` listens again on the same port."""

    def __init__(self, upstream: Callable[[], socket.socket]) -> None:
        self.port = free_port()
        self._upstream = upstream
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self._acceptor: threading.Thread | None = None

    def start(self) -> None:
        self._stopped.clear()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.1)
        self._acceptor = threading.Thread(target=self._accept, args=(self._listener,))
        self._acceptor.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._acceptor is not None:
            self._acceptor.join(10)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            server = self._upstream()
            with self._lock:
                self._sockets += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _upstream_of(admin: Engine) -> Callable[[], socket.socket]:
    """Connects to the server the test database is on, the way the tests reach it."""
    with admin.connect() as conn:
        row = conn.execute(
            text(
                "SELECT host(inet_server_addr()), inet_server_port(), "
                "current_setting('unix_socket_directories'), current_setting('port')"
            )
        ).one()
    host, port, socket_dirs, socket_port = row
    if host is not None:
        return lambda: socket.create_connection((host, int(port)))
    path = f"{socket_dirs.split(',')[0].strip()}/.s.PGSQL.{socket_port}"

    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        return sock

    return connect


@pytest.fixture
def proxy(admin: Engine) -> Iterator[_Proxy]:
    p = _Proxy(_upstream_of(admin))
    p.start()
    yield p
    p.stop()


def test_database_gone_after_warm_up_is_503_and_accepted_once_it_is_back(
    make_gateway: GatewayFactory, pg_committed: str, proxy: _Proxy
) -> None:
    through_proxy = (
        make_url(pg_committed)
        .difference_update_query(["host", "port"])
        .set(host="127.0.0.1", port=proxy.port)
    )
    gw = make_gateway(database_url=through_proxy.render_as_string(hide_password=False))
    # the harness's own engine: directly, not through the proxy; one body, many deliveries
    tid = gw.seed(replay_window_seconds=0)
    ids: dict[str, Any] = {"before": _accepted(gw.post(tid, delivery_id="before"))}

    proxy.stop()  # the pooled connection is cut and new ones are refused
    for _ in range(2):
        down = gw.post(tid, delivery_id="during")
        assert down.status_code == 503, down.data
        assert down.headers["Retry-After"].isdigit()
        assert down.get_json()["code"] == "unavailable"
    assert _stored(gw) == ids  # nothing was recorded

    proxy.start()
    ids["during"] = _accepted(gw.post(tid, delivery_id="during"))
    ids["after"] = _accepted(gw.post(tid, delivery_id="after"))
    assert _stored(gw) == ids
