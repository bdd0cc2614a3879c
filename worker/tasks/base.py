"""The one task base class: it owns the unit of work and the retry policy.

Tasks are module-level functions (``@shared_task(base=AutomationsTask, bind=True, ...)``):

* ``with self.unit_of_work() as uow:`` gives the task its transaction; business code never
  commits, and asks for follow-up tasks with ``uow.enqueue`` (published after the commit);
* a transient database error (unreachable, restarted, deadlock, SQLite "locked", pool
  exhausted) leaves the unit as :class:`~shared.errors.TransientDatabaseError`, which the
  declarative policy below retries with Celery's own exponential back-off and jitter;
* beat's periodic ticks set ``periodic=True``: one that cannot reach the database is done by
  the next tick anyway, so it logs one warning line instead of a traceback and a retry.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery, Task, shared_task

from shared.errors import TransientDatabaseError, describe_error, is_transient_db_error
from shared.infra.db.uow import UnitOfWork
from shared.infra.queues import PING
from shared.infra.runtime import Runtime

log = logging.getLogger(__name__)


def runtime_of(app: Celery) -> Runtime:
    """The app's per-process :class:`Runtime` (made on first use)."""
    rt: Runtime | None = getattr(app, "automations_runtime", None)
    if rt is None:
        rt = Runtime(app.conf["automations_settings"], celery=app)
        app.automations_runtime = rt  # type: ignore[attr-defined]
    return rt


class AutomationsTask(Task):  # type: ignore[misc]
    abstract = True

    # The retry policy (Celery's autoretry): 1 s doubling up to 60 s, full jitter, 6 times.
    autoretry_for = (TransientDatabaseError,)
    retry_backoff = True
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 6
    #: beat's ticks: a transient database error is one warning line, no retry
    periodic = False

    @property
    def runtime(self) -> Runtime:
        return runtime_of(self.app)

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        try:
            with self.runtime.unit_of_work() as uow:
                yield uow
        except TransientDatabaseError:
            raise
        except Exception as exc:
            if is_transient_db_error(exc):
                raise TransientDatabaseError(describe_error(exc)) from exc
            raise

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.periodic:
            return super().__call__(*args, **kwargs)
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            if not is_transient_db_error(exc):
                raise
            log.warning("%s skipped: database unavailable (%s)", self.name, describe_error(exc))
            return None


@shared_task(name=PING, base=AutomationsTask, bind=True, ignore_result=False, autoretry_for=())
def ping(self: AutomationsTask) -> str:
    """Liveness probe for workers: answers when the worker and its database answer."""
    with self.unit_of_work() as uow:
        uow.connection.exec_driver_sql("SELECT 1")
    return "pong"


def lower_pool_priority(nice: int) -> None:
    """Run this prefork pool process ``nice`` steps nicer than the worker's main process.

    The main process hands every message to a pool process and acknowledges it to the
    broker, one at a time: when the pool processes (and PostgreSQL) keep the CPUs busy, it
    waits in the run queue and every pool process idles until it gets its next message. With
    the pool processes at a lower priority the dispatcher runs as soon as it has work
    (docs/performance.md). Relative to the parent and absolute, so applying it twice changes
    nothing.
    """
    if nice <= 0:
        return
    try:
        parent = os.getpriority(os.PRIO_PROCESS, os.getppid())
        os.setpriority(os.PRIO_PROCESS, 0, min(parent + nice, 19))
    except OSError as exc:  # not permitted here: keep the inherited priority
        log.warning("could not lower the pool process priority: %s", exc)
