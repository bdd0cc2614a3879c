"""Shared fixtures: real PostgreSQL and Redis, SQLite, a frozen clock.

PostgreSQL and Redis are private throwaway servers started by this run (one pair per xdist
worker, on free ports), or the servers named by ``AUTOMATIONS_TEST_DATABASE_URL`` /
``AUTOMATIONS_TEST_REDIS_URL``; see :mod:`tests.harness.services`. An unavailable one skips
its tests with a loud summary line, or fails them under ``CI=true``.

* ``pg_session`` / ``sqlite_session`` / ``any_session``: a Session inside a transaction that is
  rolled back after the test (savepoint mode, so code under test may commit freely).
* ``pg_committed``: a separate, migrated database per xdist worker whose tables are emptied
  before each test, for tests where several connections, threads or processes must see
  committed rows (concurrency and end-to-end tests).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from shared.infra.clock import FrozenClock
from shared.infra.db import migrate
from shared.infra.db.base import metadata
from shared.infra.db.engine import make_engine
from tests.harness.services import (
    Service,
    drop_pg_database,
    find_postgres,
    find_redis,
    fresh_pg_database,
    unavailable,
)

_services: dict[str, Service] = {}


def _service(kind: str) -> Service:
    """This process's PostgreSQL or Redis (found or started once, on first use)."""
    if kind not in _services:
        _services[kind] = find_postgres() if kind == "postgres" else find_redis()
    svc = _services[kind]
    if svc.url is None:
        unavailable(kind, svc.reason)
    return svc


_fault_reports: list[str] = []
#: "postgres"/"redis" -> why its tests were skipped (or failed under CI=true)
_unavailable: dict[str, str] = {}
_UNAVAILABLE = re.compile(r"^(?:Skipped: )?(?:CI=true and )?(postgres|redis) unavailable: (.*)")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collects, in the controlling process (also under xdist), the fault scenarios' printed
    counts (tests/faults record them as user properties) and why services were unavailable
    (from the skip or failure messages of :func:`tests.harness.services.unavailable`)."""
    if report.when == "teardown":
        _fault_reports.extend(str(v) for k, v in report.user_properties if k == "fault_report")
    if report.skipped or report.failed:
        longrepr = report.longrepr
        message = longrepr[2] if isinstance(longrepr, tuple) else report.longreprtext
        for line in message.splitlines():
            match = _UNAVAILABLE.match(line.strip())
            if match:
                _unavailable.setdefault(match.group(1), match.group(2))
                break


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _fault_reports:
        terminalreporter.write_sep("=", "fault-injection scenarios")
        for text in _fault_reports:
            terminalreporter.write_line(text)
    for kind, reason in sorted(_unavailable.items()):
        what = "FAILED (CI=true)" if os.environ.get("CI", "").lower() == "true" else "SKIPPED"
        terminalreporter.write_sep(
            "!", f"{kind.upper()} TESTS {what}: {reason}", red=True, bold=True
        )
    for kind, svc in _services.items():
        if svc.throwaway:
            terminalreporter.write_line(f"{kind}: used a throwaway server at {svc.url}")


def _worker_id(config: pytest.Config) -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _run_token() -> str:
    """Distinguishes concurrent pytest runs on one machine (xdist workers of one run share it)."""
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"p{os.getpid()}"
    return uid[:8]


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str]:
    svc = _service("postgres")
    yield str(svc.url)
    svc.close()  # a throwaway server of this process; a named one is left alone


@pytest.fixture(scope="session")
def pg_url(pg_base_url: str, pytestconfig: pytest.Config) -> Iterator[str]:
    name = f"test_ca_{_run_token()}_{_worker_id(pytestconfig)}"
    url = fresh_pg_database(pg_base_url, name)
    migrate.upgrade(url)
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url, pool_size=10, max_overflow=20)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def _rollback_session(engine: Engine) -> Iterator[Session]:
    conn = engine.connect()
    trans = conn.begin()
    session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        trans.rollback()
        conn.close()


@pytest.fixture
def pg_session(pg_engine: Engine) -> Iterator[Session]:
    yield from _rollback_session(pg_engine)


@pytest.fixture
def sqlite_session(sqlite_engine: Engine) -> Iterator[Session]:
    yield from _rollback_session(sqlite_engine)


@pytest.fixture(params=["postgres", "sqlite"])
def any_session(request: pytest.FixtureRequest) -> Session:
    name = "pg_session" if request.param == "postgres" else "sqlite_session"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def pg_committed_url(pg_base_url: str, pytestconfig: pytest.Config) -> Iterator[str]:
    name = f"test_ca_{_run_token()}_{_worker_id(pytestconfig)}_c"
    url = fresh_pg_database(pg_base_url, name)
    migrate.upgrade(url)
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="module")
def pg_module_url(pg_base_url: str, pytestconfig: pytest.Config) -> Iterator[str]:
    """A migrated database of the test module's own, for module-scoped servers.

    Not the shared committed database: xdist interleaves other modules' tests, whose rows
    (e.g. secrets under a key the server is not given) would reach a server started there."""
    name = f"test_ca_{_run_token()}_{_worker_id(pytestconfig)}_m"
    url = fresh_pg_database(pg_base_url, name)
    migrate.upgrade(url)
    yield url
    drop_pg_database(url)


@pytest.fixture
def pg_scratch_url(pg_base_url: str, pytestconfig: pytest.Config) -> Iterator[str]:
    """An empty database (not migrated) of the test's own, dropped after it."""
    url = fresh_pg_database(pg_base_url, f"test_ca_{_run_token()}_{_worker_id(pytestconfig)}_s")
    yield url
    drop_pg_database(url)


@pytest.fixture
def pg_committed(pg_committed_url: str) -> Iterator[str]:
    """URL of a migrated database whose tables are empty at the start of the test."""
    engine = make_engine(pg_committed_url)
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    engine.dispose()
    yield pg_committed_url


@pytest.fixture(scope="session")
def redis_base_url() -> Iterator[str]:
    svc = _service("redis")
    yield str(svc.url)
    svc.close()  # a throwaway server of this process; a named one is left alone


@pytest.fixture
def redis_url(redis_base_url: str, pytestconfig: pytest.Config) -> Iterator[str]:
    """A Redis database (1-9) of this xdist worker's own, flushed before the test."""
    import redis

    wid = _worker_id(pytestconfig)
    # Distinct per xdist worker (workers of one run must never share a queue); 10-15 are
    # left to bench/.
    index = 1 + (int(wid[2:]) % 9 if wid.startswith("gw") else 0)
    url = f"{redis_base_url}/{index}"
    redis.Redis.from_url(url).flushdb()
    yield url


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
