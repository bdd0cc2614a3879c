"""Fixtures of the fault-injection suite: a private PostgreSQL cluster and a private
redis-server (the scenarios stop and restart them, so never the shared ones on 5432/6379),
and a fresh migrated database per scenario."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.infra.db import migrate
from shared.infra.db.engine import make_engine
from tests.faults.harness import System
from tests.harness.services import ThrowawayPostgres, ThrowawayRedis

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def fault_servers() -> Iterator[tuple[ThrowawayPostgres, ThrowawayRedis]]:
    pg: ThrowawayPostgres | None = None
    rd: ThrowawayRedis | None = None
    try:
        pg = ThrowawayPostgres()
        pg.start()
        rd = ThrowawayRedis()
        rd.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        reason = f"cannot start private PostgreSQL/Redis for fault tests: {exc} {detail[-500:]!r}"
        for server in (pg, rd):
            if server is not None:
                server.close()
        if IN_CI:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    yield pg, rd
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


# The counts of every scenario at the end of the run, also under xdist (user properties
# travel with the test reports to the controller). These hooks are active when this file
# is an initial conftest (``pytest tests/faults``); for the whole suite under xdist the same
# two hooks belong in tests/conftest.py.
