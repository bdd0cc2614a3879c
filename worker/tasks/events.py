"""Event pipeline tasks: process one event, sweep stuck ``pending`` events.

Both are thin: the domain code lives in :mod:`shared.events`; here are only the unit of work
and the failure handling of ``process_event``:

* a transient database error (unreachable, deadlock, SQLite "database is locked"): nothing
  could be written, so the event is *not* marked ``error``; the base class's policy retries
  the task with back-off, and once retries are exhausted the event stays ``pending`` for the
  sweeper (which parks it after its own attempts), with the error noted for it to quote;
* anything else: the pipeline's transaction is rolled back and the event is marked ``error``
  with the message in a fresh unit of work (SPEC 5 step 8).
"""

from __future__ import annotations

import functools
import logging
import uuid

from celery import shared_task

from shared.chats.messages import enqueue_run_chat
from shared.errors import TransientDatabaseError, describe_error
from shared.events.backends import open_store
from shared.events.options import PipelineOptions
from shared.events.pipeline import mark_failed, note_transient_error, process_event
from shared.events.sweeper import sweep_and_republish
from shared.infra.config import Settings
from shared.infra.queues import PROCESS_EVENT, QUEUE_EVENTS, QUEUE_MAINTENANCE, SWEEP_PENDING_EVENTS
from shared.models.enums import EventStatus
from worker.tasks.base import AutomationsTask

log = logging.getLogger(__name__)

#: outcomes that leave a user message for the chat runner to answer
_RUNS_CHAT = (EventStatus.CREATED, EventStatus.CONTINUED)


@functools.lru_cache(maxsize=8)
def _options(settings: Settings) -> PipelineOptions:
    return PipelineOptions.from_settings(settings)


@shared_task(name=PROCESS_EVENT, base=AutomationsTask, bind=True, queue=QUEUE_EVENTS)
def process_event_task(self: AutomationsTask, event_id: str) -> str | None:
    """Run the pipeline for one event id (a UUID string). Idempotent."""
    try:
        eid = uuid.UUID(str(event_id))
    except ValueError:
        log.error("process_event: not an event id: %r", event_id)
        return None
    clock = self.runtime.clock
    options = _options(self.runtime.settings)
    try:
        try:
            with self.unit_of_work() as uow:
                outcome = process_event(open_store(uow.connection, options), clock, eid, options)
                if outcome.applied and outcome.status in _RUNS_CHAT and outcome.chat_id:
                    # published after commit; a chat a runner holds or that is paused is not
                    # claimable and the message is a no-op (its follow-up rule applies)
                    enqueue_run_chat(uow, outcome.chat_id)
        except TransientDatabaseError:
            raise
        except Exception as exc:
            log.exception("process_event %s failed", eid)
            with self.unit_of_work() as uow:
                mark_failed(uow.connection, clock, eid, describe_error(exc))
            return "error"
    except TransientDatabaseError as exc:
        if _retries_left(self, eid, exc):
            raise  # the base class's policy retries it
        return None
    return str(outcome.status) if outcome.status is not None else None


def _retries_left(task: AutomationsTask, event_id: uuid.UUID, exc: BaseException) -> bool:
    """Whether the policy will retry; when it will not, the event is left ``pending`` for the
    sweeper with the error noted."""
    retries = int(task.request.retries or 0)
    if retries < task.max_retries:
        log.warning(
            "process_event %s: database unavailable (%s); retry %d/%d",
            event_id,
            exc,
            retries + 1,
            task.max_retries,
        )
        return True
    log.error(
        "process_event %s: database still unavailable after %d retries (%s); "
        "leaving the event pending for the sweeper",
        event_id,
        retries,
        exc,
    )
    try:  # best effort: the sweeper quotes it when it parks the event
        with task.unit_of_work() as uow:
            note_transient_error(uow.connection, event_id, str(exc))
    except Exception:
        pass
    return False


@shared_task(
    name=SWEEP_PENDING_EVENTS,
    base=AutomationsTask,
    bind=True,
    queue=QUEUE_MAINTENANCE,
    periodic=True,
    autoretry_for=(),
)
def sweep_pending_events(self: AutomationsTask) -> dict[str, int]:
    """Re-publish ``pending`` events that nobody processed; park hopeless ones."""
    rt = self.runtime
    with self.unit_of_work() as uow:
        result = sweep_and_republish(uow, rt.clock, rt.settings)
    if result.republish or result.parked:
        log.info(
            "sweeper: re-published %d pending events, parked %d",
            len(result.republish),
            len(result.parked),
        )
    return {"republished": len(result.republish), "parked": len(result.parked)}
