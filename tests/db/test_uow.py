"""The unit of work on real PostgreSQL: commit then publish, never publish on rollback, a
failed publish never undoes a commit, and a connection that died never masks the outcome."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from shared.errors import is_transient_db_error
from shared.infra.db.engine import make_engine
from shared.infra.db.uow import Database, TaskMessage
from tests.harness.services import terminate_backend

pytestmark = pytest.mark.postgres


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[TaskMessage]] = []
        self.fail = fail

    def publish(self, messages: Any) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.batches.append(list(messages))


@pytest.fixture
def db_url(pg_committed: str) -> str:
    engine = make_engine(pg_committed)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS uow_probe (v text)"))
        conn.execute(text("DELETE FROM uow_probe"))
    engine.dispose()
    return pg_committed


def _values(url: str) -> list[str]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = [r[0] for r in conn.execute(text("SELECT v FROM uow_probe ORDER BY v"))]
    engine.dispose()
    return rows


def test_publishes_one_batch_after_commit_and_nothing_on_rollback(db_url: str) -> None:
    recorder = Recorder()
    db = Database(make_engine(db_url), recorder)
    with db.unit() as uow:
        uow.connection.execute(text("INSERT INTO uow_probe VALUES ('a')"))
        uow.enqueue("t", ["1"], "q")
        uow.enqueue("t", ["2"], "q")
        assert recorder.batches == []  # not before the commit
    assert [[m.args for m in b] for b in recorder.batches] == [[("1",), ("2",)]]
    with pytest.raises(RuntimeError), db.unit() as uow:
        uow.session.execute(text("INSERT INTO uow_probe VALUES ('b')"))
        uow.enqueue("t", ["3"], "q")
        raise RuntimeError("business error")
    assert len(recorder.batches) == 1 and _values(db_url) == ["a"]
    db.bind.dispose()  # type: ignore[union-attr]


def test_a_failed_publish_keeps_the_commit(db_url: str) -> None:
    db = Database(make_engine(db_url), Recorder(fail=True))
    with db.unit() as uow:
        uow.connection.execute(text("INSERT INTO uow_probe VALUES ('c')"))
        uow.enqueue("t", ["1"], "q")
    assert _values(db_url) == ["c"]
    db.bind.dispose()  # type: ignore[union-attr]


def test_a_connection_killed_after_its_statement_does_not_mask_the_outcome(
    db_url: str,
) -> None:
    """The server drops the connection after the unit's statements ran: the commit fails
    as a transient error, nothing is published, and the pool hands out a working connection
    on the retry."""
    recorder = Recorder()
    engine = make_engine(db_url, pool_size=1, max_overflow=0, pool_pre_ping=False)
    db = Database(engine, recorder)
    with pytest.raises(OperationalError) as failure, db.unit() as uow:
        uow.connection.execute(text("INSERT INTO uow_probe VALUES ('d')"))
        pid = uow.connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        uow.enqueue("t", ["1"], "q")
        terminate_backend(db_url, int(pid))
    assert is_transient_db_error(failure.value)
    assert _values(db_url) == [] and recorder.batches == []
    for _ in range(3):  # the one pool slot is back, with a live connection (no leak)
        with db.unit() as uow:
            uow.connection.execute(text("INSERT INTO uow_probe VALUES ('e')"))
            uow.enqueue("t", ["2"], "q")
    assert _values(db_url) == ["e", "e", "e"] and len(recorder.batches) == 3
    engine.dispose()
