"""Event pipeline tasks: process one event, sweep stuck ``pending`` events.

Both are thin: the domain code lives in :mod:`shared.pipeline`; here are only transactions,
error classification and publishing after commit.

Failure handling of ``process_event``:

* the database is unreachable (or a deadlock / serialization failure, or SQLite's "database
  is locked"): nothing could be written, so the event is *not* marked ``error``; the task is
  retried with exponential back-off, and once retries are exhausted the event stays
  ``pending`` for the sweeper (which parks it after its own attempts).
* anything else: the pipeline's transaction is rolled back and the event is marked ``error``
  with the message in a fresh transaction (SPEC 5 step 8).
"""

from __future__ import annotations

import logging
import random
import uuid
from typing import Any

from celery import Celery

from shared.events.options import PipelineOptions
from shared.events.pipeline import describe_error, mark_failed, note_transient_error, process_event
from shared.events.sweeper import sweep_pending
from shared.infra.queues import PROCESS_EVENT, QUEUE_EVENTS, QUEUE_MAINTENANCE, SWEEP_PENDING_EVENTS
from worker.tasks.base import DbTask, is_transient_db_error, periodic_tick

log = logging.getLogger(__name__)

MAX_RETRIES = 6
RETRY_BASE_SECONDS = 1.0
RETRY_CAP_SECONDS = 60.0


def retry_countdown(retries: int) -> float:
    """1 s doubling up to 60 s, with ±20 % jitter so a recovered database is not stampeded."""
    delay = min(RETRY_BASE_SECONDS * 2**retries, RETRY_CAP_SECONDS)
    return delay * random.uniform(0.8, 1.2)


def register(app: Celery) -> None:
    @app.task(
        name=PROCESS_EVENT,
        base=DbTask,
        bind=True,
        queue=QUEUE_EVENTS,
        max_retries=MAX_RETRIES,
    )
    def process_event_task(self: DbTask, event_id: str) -> str | None:
        """Run the pipeline for one event id (a UUID string). Idempotent."""
        try:
            eid = uuid.UUID(str(event_id))
        except ValueError:
            log.error("process_event: not an event id: %r", event_id)
            return None
        rt = self.runtime
        options = _options(self)
        try:
            with self.event_transaction() as conn:
                outcome = process_event(conn, rt.clock, eid, options)
        except Exception as exc:
            if is_transient_db_error(exc):
                _retry_later(self, eid, exc)
                return None
            log.exception("process_event %s failed", eid)
            try:
                with self.connection() as conn:
                    mark_failed(conn, rt.clock, eid, describe_error(exc))
            except Exception as exc2:
                if is_transient_db_error(exc2):
                    _retry_later(self, eid, exc2)
                    return None
                raise
            return "error"
        if outcome.applied:
            log.debug("event %s: %s", eid, outcome.status)
        return str(outcome.status) if outcome.status is not None else None

    @app.task(name=SWEEP_PENDING_EVENTS, base=DbTask, bind=True, queue=QUEUE_MAINTENANCE)
    @periodic_tick
    def sweep_pending_events(self: DbTask) -> dict[str, int]:
        """Re-publish ``pending`` events that nobody processed; park hopeless ones."""
        rt = self.runtime
        s = rt.settings
        with self.transaction() as uow:
            result = sweep_pending(
                uow.session,
                rt.clock,
                min_age_seconds=s.sweeper_min_age_seconds,
                batch_size=s.sweeper_batch_size,
                max_attempts=s.sweeper_max_attempts,
            )
            ids = [str(i) for i in result.republish]
            if ids:
                uow.after_commit(lambda: self.runtime.publish_events(ids))
        if ids or result.parked:
            log.info(
                "sweeper: re-published %d pending events, parked %d",
                len(ids),
                len(result.parked),
            )
        return {"republished": len(ids), "parked": len(result.parked)}


def _options(task: DbTask) -> PipelineOptions:
    rt: Any = task.runtime
    options = getattr(rt, "pipeline_options", None)
    if options is None:
        options = PipelineOptions.from_settings(rt.settings)
        rt.pipeline_options = options
    return options  # type: ignore[no-any-return]


def _retry_later(task: DbTask, event_id: uuid.UUID, exc: BaseException) -> None:
    retries = int(task.request.retries or 0)
    if retries < MAX_RETRIES:
        log.warning(
            "process_event %s: database unavailable (%s); retry %d/%d",
            event_id,
            describe_error(exc),
            retries + 1,
            MAX_RETRIES,
        )
        raise task.retry(exc=exc, countdown=retry_countdown(retries), max_retries=MAX_RETRIES)
    log.error(
        "process_event %s: database still unavailable after %d retries (%s); "
        "leaving the event pending for the sweeper",
        event_id,
        retries,
        describe_error(exc),
    )
    try:  # best effort: the sweeper quotes it when it parks the event
        with task.transaction() as uow:
            note_transient_error(uow.session, event_id, describe_error(exc))
    except Exception:
        pass
