"""Fixtures of the fault-injection suite: a private PostgreSQL cluster and a private
redis-server of its own (the scenarios stop, kill and restart them, so never a server named by
AUTOMATIONS_TEST_DATABASE_URL / AUTOMATIONS_TEST_REDIS_URL nor the suite's), and a fresh
migrated database per scenario. Servers that cannot be started skip the scenarios, or fail
them under ``CI=true`` (see :mod:`tests.harness.services`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.infra.db import migrate
from shared.infra.db.engine import make_engine
from tests.faults.harness import System
from tests.harness.services import (
    ServiceUnavailable,
    ThrowawayPostgres,
    ThrowawayRedis,
    start_throwaway_postgres,
    start_throwaway_redis,
    unavailable,
)


@pytest.fixture(scope="session")
def fault_servers() -> Iterator[tuple[ThrowawayPostgres, ThrowawayRedis]]:
    try:
        pg = start_throwaway_postgres()
    except ServiceUnavailable as exc:
        unavailable(exc.kind, f"cannot start a private server for the fault tests: {exc}")
    try:
        rd = start_throwaway_redis()
    except ServiceUnavailable as exc:
        pg.close()
        unavailable(exc.kind, f"cannot start a private server for the fault tests: {exc}")
    try:
        yield pg, rd
    finally:
        rd.close()
        pg.close()


@pytest.fixture
def system(
    fault_servers: tuple[ThrowawayPostgres, ThrowawayRedis],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[System]:
    pg, rd = fault_servers
    # a previous scenario may have failed while a server was down
    if not pg.answers():
        pg.start()
    rd.start()
    redis.Redis.from_url(rd.url).flushall()
    url = pg.create_database("faults")
    migrate.upgrade(url)
    engine = make_engine(url, pool_size=2, max_overflow=2)
    sys_ = System(pg, rd, url, engine, tmp_path)
    try:
        yield sys_
    finally:
        sys_.close()
        engine.dispose()
        for text in sys_.reports:
            request.node.user_properties.append(("fault_report", text))


# The scenarios' counts travel as user properties with the test reports (also to the xdist
# controller); tests/conftest.py prints them at the end of the run.
