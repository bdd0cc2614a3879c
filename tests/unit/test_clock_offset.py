"""AUTOMATIONS_CLOCK_OFFSET_SECONDS shifts every process's clock the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.infra.clock import OffsetClock, clock_with_offset, system_clock
from shared.infra.config import Settings
from shared.infra.runtime import Runtime
from webhook_gateway.app import create_app
from worker.celery_app import create_celery


def _close_to(actual: datetime, expected: datetime) -> bool:
    return abs(actual - expected) < timedelta(seconds=5)


def test_offset_clock_and_default() -> None:
    assert clock_with_offset(0) is system_clock
    shifted = clock_with_offset(-3600)
    assert isinstance(shifted, OffsetClock)
    assert _close_to(shifted.now(), datetime.now(UTC) - timedelta(hours=1))


def test_every_process_takes_the_offset_from_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, broker_url="memory://", clock_offset_seconds=90)
    expected = datetime.now(UTC) + timedelta(seconds=90)
    assert _close_to(Runtime(settings).clock.now(), expected)
    app = create_celery(settings)
    assert _close_to(app.automations_runtime.clock.now(), expected)  # type: ignore[attr-defined]
    gateway = create_app(settings).extensions["automations"]
    assert _close_to(gateway.clock.now(), expected)
    assert gateway.runtime.clock is gateway.clock
