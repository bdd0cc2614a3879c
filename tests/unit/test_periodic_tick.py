"""Beat's ticks ride out a database outage quietly; real bugs still surface."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from shared.infra.config import Settings
from shared.infra.queues import DISPATCH_CRON, PURGE_EVENTS, SWEEP_PENDING_EVENTS
from tests.harness.services import free_port
from worker.celery_app import create_celery
from worker.tasks.base import AutomationsTask


@pytest.mark.parametrize("task", [SWEEP_PENDING_EVENTS, DISPATCH_CRON, PURGE_EVENTS])
def test_tick_without_database_logs_one_warning(
    task: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"postgresql+psycopg2://nobody@127.0.0.1:{free_port()}/nothing",
        broker_url="memory://",
    )
    app = create_celery(settings)
    with caplog.at_level(logging.WARNING):
        result = app.tasks[task].apply()
    assert result.successful() and result.get() is None
    warnings = [r for r in caplog.records if "skipped: database unavailable" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert warnings[0].exc_info is None  # one line, no traceback


def test_other_errors_still_raise(tmp_path: Path) -> None:
    app = create_celery(Settings(data_dir=tmp_path, broker_url="memory://"))

    @app.task(base=AutomationsTask, periodic=True, autoretry_for=(), name="test.broken")
    def broken() -> int:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        broken()
    assert broken.apply().failed()
