"""PostgreSQL and Redis for the tests: private throwaway servers by default, shared ones only
when named.

Default: each pytest process (each xdist worker; started lazily, when its first test needs
the service) starts a throwaway PostgreSQL cluster and a throwaway redis-server on free
ports, with pytest-postgresql's ``PostgreSQLExecutor`` and pytest-redis's ``RedisExecutor``
(mirakuru executors) from the binaries on this machine (``/usr/lib/postgresql/*/bin/pg_ctl``,
``redis-server`` on ``PATH``), and stops them and removes their files at the end of the run.
As root, ``pg_ctl``/``initdb`` run as the ``postgres`` user (``runuser``), since PostgreSQL
refuses to run as root. Nothing ever touches a server the run did not start unless named:

``AUTOMATIONS_TEST_DATABASE_URL``
    SQLAlchemy URL of a PostgreSQL server to use instead, e.g.
    ``postgresql+psycopg2://postgres@127.0.0.1:5432/postgres``. Its database is only the
    maintenance connection: the tests create, migrate and drop databases named ``test_ca_*``
    on that server (the role needs ``CREATEDB``).
``AUTOMATIONS_TEST_REDIS_URL``
    URL of a Redis server to use instead, e.g. ``redis://127.0.0.1:6379`` (any database
    number is ignored): the tests use and flush databases 0-9 there (bench/ uses 10-15).

A named server that does not answer is "unavailable" (there is no fallback to a throwaway
one), as is a throwaway server that cannot be started (no binaries, no ``postgres`` user
when running as root). :func:`unavailable` turns that into a skip with a reason (the run ends
with a loud summary line, see ``tests/conftest.py``), or into a test failure under
``CI=true``.

:class:`ThrowawayPostgres` and :class:`ThrowawayRedis` are the one server abstraction: the
suite's fixtures use them through :func:`find_postgres` / :func:`find_redis`, and the
fault-injection scenarios (``tests/faults``) start their own pair and stop, kill and restart
them; those scenarios never use named servers.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import redis
from mirakuru.exceptions import ExecutorError
from pytest_postgresql.exceptions import ExecutableMissingException, PostgreSQLUnsupported
from pytest_postgresql.executors import PostgreSQLExecutor
from pytest_redis.exception import RedisMisconfigured, RedisUnsupported, UnixSocketTooLong
from pytest_redis.executor import RedisExecutor
from sqlalchemy.engine import make_url

DATABASE_URL_VAR = "AUTOMATIONS_TEST_DATABASE_URL"
REDIS_URL_VAR = "AUTOMATIONS_TEST_REDIS_URL"
IN_CI = os.environ.get("CI", "").lower() == "true"

_START_ERRORS = (
    ExecutorError,  # mirakuru: timeout, exited with an error, port already taken
    OSError,
    subprocess.SubprocessError,
    ExecutableMissingException,
    PostgreSQLUnsupported,
    RedisMisconfigured,
    RedisUnsupported,
    UnixSocketTooLong,
    psycopg2.Error,
    redis.RedisError,
)


class ServiceUnavailable(RuntimeError):
    """A throwaway server cannot be started; ``kind`` is ``postgres`` or ``redis``."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def unavailable(kind: str, reason: str) -> NoReturn:
    """Skip the test (fail it under ``CI=true``): ``kind`` (postgres, redis) is unavailable.

    ``tests/conftest.py`` recognises the message and repeats it in the run's summary."""
    if IN_CI:
        pytest.fail(f"CI=true and {kind} unavailable: {reason}", pytrace=False)
    pytest.skip(f"{kind} unavailable: {reason}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_answers(url: str) -> bool:
    u = make_url(url)
    try:
        psycopg2.connect(
            dbname=u.database,
            user=u.username,
            password=u.password,
            host=u.host,
            port=u.port,
            connect_timeout=3,
        ).close()
        return True
    except psycopg2.Error:
        return False


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def _tail(path: Path, chars: int = 800) -> str:
    try:
        return path.read_text(errors="replace")[-chars:].strip()
    except OSError:
        return ""


# --- the servers -------------------------------------------------------------------------


def _find_pg_ctl() -> str | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return found[-1] if found else shutil.which("pg_ctl")


class ThrowawayPostgres:
    """A private PostgreSQL cluster on a free port (pytest-postgresql's ``PostgreSQLExecutor``)
    that can be stopped and restarted: it keeps its port and data across :meth:`stop` /
    :meth:`start`. :meth:`close` stops it and removes its files (also registered with
    ``atexit``). Raises :class:`ServiceUnavailable` when it cannot be created or started."""

    def __init__(self, max_connections: int = 300) -> None:
        pg_ctl = _find_pg_ctl()
        if pg_ctl is None:
            raise ServiceUnavailable(
                "postgres", "no pg_ctl in /usr/lib/postgresql/*/bin or on PATH"
            )
        runuser = shutil.which("runuser")
        as_root = os.geteuid() == 0
        if as_root:  # initdb and postgres refuse to run as root
            if runuser is None:
                raise ServiceUnavailable("postgres", "running as root and runuser is missing")
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceUnavailable(
                    "postgres", "running as root and there is no postgres user to run initdb"
                ) from None
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="automations-pg-"))
        self._closed = False
        executable = pg_ctl
        if as_root:
            shutil.chown(self.tmp, "postgres", "postgres")
            # the executor runs "<executable> initdb|start|stop|status ...": run pg_ctl as
            # postgres (pg_ctl finds initdb and postgres beside itself)
            wrapper = self.tmp / "pg_ctl"
            wrapper.write_text(f'#!/bin/sh\nexec {runuser} -u postgres -- {pg_ctl} "$@"\n')
            wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            executable = str(wrapper)
        self.executable = executable
        self.datadir = self.tmp / "data"
        self.logfile = self.tmp / "postgresql.log"
        self.executor = PostgreSQLExecutor(
            executable=executable,
            host="127.0.0.1",
            port=self.port,
            datadir=str(self.datadir),
            unixsocketdir=str(self.tmp),
            logfile=str(self.logfile),
            startparams="-w",
            dbname="postgres",
            user="postgres",
            timeout=120,
            # fsync is already off (-F), which loses nothing unless the machine crashes; keep
            # synchronous_commit on: the fault scenarios crash the server and count commits
            postgres_options=f"-c listen_addresses=127.0.0.1 -c max_connections={max_connections}",
        )
        atexit.register(self.close)

    @property
    def base_url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` maintenance database."""
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the server (``initdb`` on the first start); return when it accepts
        connections."""
        if self.executor.running():
            return
        self.executor.kill()  # forget a launcher left from before a stop or a crash
        try:
            self.executor.start()
        except _START_ERRORS as exc:
            raise ServiceUnavailable(
                "postgres",
                f"could not start a throwaway PostgreSQL on port {self.port}: {exc}; "
                f"log: {_tail(self.logfile) or '(empty)'}",
            ) from exc

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients and shut down cleanly;
        ``immediate``: like a crash, recovery on the next start)."""
        if self.executor.running():
            if mode == "fast":
                self.executor.stop()
            else:
                subprocess.run(
                    [self.executable, "stop", "-D", str(self.datadir), "-m", mode, "-w"],
                    capture_output=True,
                    timeout=120,
                    check=False,
                )
        self.executor.kill()  # SIGKILL whatever of ours is left; forget the launcher

    def answers(self) -> bool:
        return pg_answers(self.base_url)

    def create_database(self, name: str) -> str:
        """(Re)create database ``name``; return its SQLAlchemy URL."""
        return fresh_pg_database(self.base_url, name)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


class ThrowawayRedis:
    """A private redis-server on a free port (pytest-redis's ``RedisExecutor``) without
    persistence: :meth:`stop` then :meth:`start` brings it back *empty* on the same port.
    :meth:`close` (also registered with ``atexit``) stops it for good and removes its files.
    Raises :class:`ServiceUnavailable` when it cannot be created or started."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailable("redis", "redis-server is not on PATH")
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="automations-redis-"))
        self._closed = False
        self.executor = RedisExecutor(
            executable=binary,
            databases=16,  # the tests use 0-9, bench/ 10-15
            redis_timeout=0,  # never disconnect idle clients
            loglevel="warning",
            host="127.0.0.1",
            port=self.port,
            startup_timeout=30,
            datadir=self.tmp,
        )
        self.logfile = self.tmp / f"redis-server.{self.port}.log"
        atexit.register(self.close)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.executor.running():
            return
        self.executor.kill()  # forget a process that died or was killed
        (self.tmp / f"dump.{self.port}.rdb").unlink(missing_ok=True)  # start empty
        try:
            self.executor.start()
            # no snapshots: redis-server's built-in save points would otherwise write one
            # (and a stop would bring the data back)
            redis.Redis.from_url(self.url).config_set("save", "")
        except _START_ERRORS as exc:
            raise ServiceUnavailable(
                "redis",
                f"could not start a throwaway redis-server on port {self.port}: {exc}; "
                f"log: {_tail(self.logfile) or '(empty)'}",
            ) from exc

    def stop(self) -> None:
        """Kill the server (SIGKILL: nothing is saved; it comes back empty)."""
        self.executor.kill()

    def answers(self) -> bool:
        return redis_answers(self.url)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


_Server = TypeVar("_Server", "ThrowawayPostgres", "ThrowawayRedis")


def _started(make: Callable[[], _Server]) -> _Server:
    """A started server from ``make`` (one more port tried if the first was taken)."""
    for attempt in range(2):
        server = make()
        try:
            server.start()
            return server
        except ServiceUnavailable:
            server.close()
            if attempt:
                raise
    raise AssertionError("unreachable")


def start_throwaway_postgres(max_connections: int = 300) -> ThrowawayPostgres:
    """A started :class:`ThrowawayPostgres`."""
    return _started(lambda: ThrowawayPostgres(max_connections))


def start_throwaway_redis() -> ThrowawayRedis:
    """A started :class:`ThrowawayRedis`."""
    return _started(ThrowawayRedis)


# --- what the suite uses -------------------------------------------------------------------


@dataclass
class Service:
    """A server for the tests: ``url`` is None when unavailable (``reason`` says why);
    ``server`` is the throwaway server this process started (None for a named one)."""

    url: str | None
    reason: str = ""
    server: ThrowawayPostgres | ThrowawayRedis | None = None

    @property
    def throwaway(self) -> bool:
        return self.server is not None

    def close(self) -> None:
        """Stop the throwaway server, if any (a named server is left alone)."""
        if self.server is not None:
            self.server.close()


def find_postgres() -> Service:
    """The server named by ``AUTOMATIONS_TEST_DATABASE_URL``, else a new throwaway one."""
    named = os.environ.get(DATABASE_URL_VAR, "").strip()
    if named:
        if pg_answers(named):
            return Service(named)
        return Service(None, f"{DATABASE_URL_VAR}={named} does not answer")
    try:
        server = start_throwaway_postgres()
    except ServiceUnavailable as exc:
        return Service(None, exc.reason)
    return Service(server.base_url, server=server)


def find_redis() -> Service:
    """The server named by ``AUTOMATIONS_TEST_REDIS_URL`` (without its database number),
    else a new throwaway one."""
    named = os.environ.get(REDIS_URL_VAR, "").strip()
    if named:
        parts = urlsplit(named)
        url = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        if redis_answers(url):
            return Service(url)
        return Service(None, f"{REDIS_URL_VAR}={named} does not answer")
    try:
        server = start_throwaway_redis()
    except ServiceUnavailable as exc:
        return Service(None, exc.reason)
    return Service(server.url, server=server)


# --- databases -------------------------------------------------------------------------------


def _admin_connection(url: str, dbname: str | None = None) -> psycopg2.extensions.connection:
    u = make_url(url)
    conn = psycopg2.connect(
        dbname=dbname or u.database, user=u.username, host=u.host, port=u.port, password=u.password
    )
    conn.autocommit = True
    return conn


def terminate_backend(url: str, pid: int) -> None:
    """Terminate PostgreSQL backend ``pid`` (what an administrator or a server restart does to
    a connection) and wait until it is really gone."""
    admin = _admin_connection(url)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
            row = cur.fetchone()
    finally:
        admin.close()
    assert row is not None and row[0] is True, f"backend {pid} was not terminated"


def fresh_pg_database(base_url: str, name: str, *, migrated: bool = False) -> str:
    """(Re)create database ``name`` on the server of ``base_url``; returns its URL."""
    admin = _admin_connection(base_url)
    try:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        admin.close()
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    if migrated:
        from shared.infra.db import migrate

        migrate.upgrade(url)
    return url


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    admin = _admin_connection(url, "postgres" if name != "postgres" else "template1")
    try:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()
