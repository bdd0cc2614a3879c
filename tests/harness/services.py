"""Find PostgreSQL and Redis for the tests, or start throwaway ones from local binaries.

Order: the URL in ``AUTOMATIONS_TEST_DATABASE_URL`` / ``AUTOMATIONS_TEST_REDIS_URL`` (or the
local defaults), else a throwaway server started from binaries on this machine, else
"unavailable" with a reason. Under ``CI=true`` the caller turns "unavailable" into a failure.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

import psycopg2
import redis
from sqlalchemy.engine import make_url

DEFAULT_PG_URLS = ("postgresql+psycopg2:///test", "postgresql+psycopg2://127.0.0.1/test")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"


@dataclass
class Service:
    url: str | None
    reason: str = ""
    throwaway: bool = False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_answers(url: str) -> bool:
    dsn = url.replace("postgresql+psycopg2://", "postgresql://", 1)
    try:
        psycopg2.connect(dsn, connect_timeout=3).close()
        return True
    except psycopg2.Error:
        return False


def _start_throwaway_postgres() -> Service:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = bins[-1] if bins else shutil.which("initdb")
    if not initdb:
        return Service(None, "no PostgreSQL server answered and no initdb binary was found")
    bindir = os.path.dirname(initdb)
    tmp = tempfile.mkdtemp(prefix="automations-pg-")
    port = free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        runuser = shutil.which("runuser")
        if not runuser:
            return Service(None, "running as root and runuser is missing; cannot run initdb")
        shutil.chown(tmp, "postgres", "postgres")
        prefix = [runuser, "-u", "postgres", "--"]
    datadir = os.path.join(tmp, "data")
    try:
        subprocess.run(
            [*prefix, initdb, "-D", datadir, "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *prefix,
                os.path.join(bindir, "pg_ctl"),
                "-D",
                datadir,
                "-l",
                os.path.join(tmp, "log"),
                "-o",
                f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=300",
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        return Service(None, f"could not start a throwaway PostgreSQL: {exc}")

    def _stop() -> None:
        subprocess.run(
            [*prefix, os.path.join(bindir, "pg_ctl"), "-D", datadir, "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(_stop)
    base = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    conn = psycopg2.connect(base)
    conn.autocommit = True
    conn.cursor().execute("CREATE DATABASE test")
    conn.close()
    return Service(f"postgresql+psycopg2://postgres@127.0.0.1:{port}/test", throwaway=True)


def find_postgres() -> Service:
    configured = os.environ.get("AUTOMATIONS_TEST_DATABASE_URL")
    candidates = (configured,) if configured else DEFAULT_PG_URLS
    for url in candidates:
        if _pg_answers(url):
            return Service(url)
    if configured:
        return Service(None, f"AUTOMATIONS_TEST_DATABASE_URL={configured} does not answer")
    return _start_throwaway_postgres()


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def find_redis() -> Service:
    configured = os.environ.get("AUTOMATIONS_TEST_REDIS_URL")
    url = configured or DEFAULT_REDIS_URL
    if _redis_answers(url):
        return Service(url.rstrip("/"))
    if configured:
        return Service(None, f"AUTOMATIONS_TEST_REDIS_URL={configured} does not answer")
    binary = shutil.which("redis-server")
    if not binary:
        return Service(None, "no Redis answered on 127.0.0.1:6379 and redis-server is not on PATH")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(proc.kill)
    url = f"redis://127.0.0.1:{port}"
    for _ in range(100):
        if _redis_answers(url):
            return Service(url, throwaway=True)
        time.sleep(0.05)
    return Service(None, "a throwaway redis-server did not answer")


# --- restartable throwaway servers (fault-injection tests stop and restart them) ------------


def _pg_bindir() -> str | None:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = bins[-1] if bins else shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


class ThrowawayPostgres:
    """A private PostgreSQL cluster on a free port that can be stopped and restarted.

    The cluster keeps its port and data across :meth:`stop`/:meth:`start`. :meth:`close`
    stops it and removes its files (also registered with ``atexit``). Raises ``RuntimeError``
    from :meth:`start` when no PostgreSQL binaries are available.
    """

    def __init__(self, max_connections: int = 300) -> None:
        bindir = _pg_bindir()
        if bindir is None:
            raise RuntimeError("no initdb binary was found")
        self.bindir = bindir
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="automations-faults-pg-")
        self.datadir = os.path.join(self.tmp, "data")
        self.logfile = os.path.join(self.tmp, "log")
        self.max_connections = max_connections
        self._prefix: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            runuser = shutil.which("runuser")
            if not runuser:
                raise RuntimeError("running as root and runuser is missing; cannot run initdb")
            shutil.chown(self.tmp, "postgres", "postgres")
            self._prefix = [runuser, "-u", "postgres", "--"]
        self._closed = False
        self._initialised = False
        atexit.register(self.close)

    @property
    def base_url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` maintenance database."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*self._prefix, os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, *args],
            check=check,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        if not self._initialised:
            subprocess.run(
                [
                    *self._prefix,
                    os.path.join(self.bindir, "initdb"),
                    "-D",
                    self.datadir,
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
            self._initialised = True
        self._pg_ctl(
            "-l",
            self.logfile,
            "-o",
            f"-p {self.port} -k {self.tmp} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c max_connections={self.max_connections}",
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients and shut down cleanly;
        ``immediate``: like a crash, recovery on the next start)."""
        self._pg_ctl("-m", mode, "-w", "stop", check=False)

    def restart(self, down_seconds: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode)
        if down_seconds:
            time.sleep(down_seconds)
        self.start()

    def answers(self) -> bool:
        return _pg_answers(self.base_url)

    def create_database(self, name: str) -> str:
        """(Re)create database ``name``; return its SQLAlchemy URL."""
        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres"
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._initialised:
            self.stop("immediate")
        shutil.rmtree(self.tmp, ignore_errors=True)


class ThrowawayRedis:
    """A private redis-server on a free port without persistence: :meth:`stop` then
    :meth:`start` brings it back *empty* on the same port. :meth:`close` (also registered
    with ``atexit``) stops it for good."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("redis-server is not on PATH")
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        atexit.register(self.close)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _redis_answers(self.url):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.proc.returncode}")
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer in {timeout}s")

    def stop(self) -> None:
        """Kill the server (SIGKILL: nothing is saved; it comes back empty)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def answers(self) -> bool:
        return _redis_answers(self.url)

    def close(self) -> None:
        self.stop()


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
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    if migrated:
        from shared.infra.db import migrate

        migrate.upgrade(url)
    return url


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    admin = _admin_connection(url, "postgres" if name != "postgres" else "template1")
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()
