"""The worker's Celery application: the shared configuration, the tasks and beat's schedule."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from shared.infra.broker import celery_config
from shared.infra.clock import Clock
from shared.infra.config import Settings
from shared.infra.runtime import Runtime
from worker.schedule import beat_schedule


def create_celery(settings: Settings, *, clock: Clock | None = None) -> Celery:
    """The app with every task registered; ``clock`` replaces the system clock (tests)."""
    import worker.tasks  # noqa: F401  (registers the shared tasks)
    from worker.tasks.base import lower_pool_priority

    app = Celery("automations", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.conf.beat_schedule = beat_schedule(settings)
    app.conf["automations_settings"] = settings
    runtime = Runtime(settings, clock=clock, celery=app)
    app.automations_runtime = runtime  # type: ignore[attr-defined]

    @worker_process_init.connect(weak=False)
    def _reset(**_: Any) -> None:  # a prefork child: its own connections, lower priority
        runtime.reset_after_fork()
        lower_pool_priority(settings.worker_pool_nice)

    app.finalize(auto=True)
    return app
