"""The worker's Celery application: the shared configuration, the tasks and beat's schedule."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from celery import Celery, current_task
from celery.signals import after_setup_logger, after_setup_task_logger, worker_process_init
from celery.utils.log import get_multiprocessing_logger

from shared.infra.broker import celery_config
from shared.infra.clock import Clock
from shared.infra.config import Settings
from shared.infra.logs import JsonFormatter
from shared.infra.queues import (
    AUTO_ARCHIVE,
    CHAT_RETENTION,
    DISPATCH_CRON,
    PROCESS_EVENT,
    PURGE_EVENTS,
    QUEUE_CHATS,
    QUEUE_EVENTS,
    QUEUE_MAINTENANCE,
    QUEUE_NOTIFICATIONS,
    RECOVER_CHATS,
    REQUEUE_NOTIFICATION_EMAILS,
    RUN_CHAT,
    SEND_NOTIFICATION_EMAIL,
    SWEEP_PENDING_EVENTS,
)
from shared.infra.runtime import Runtime
from worker.schedule import beat_schedule


def create_celery(settings: Settings, *, clock: Clock | None = None) -> Celery:
    """The app with every task registered; ``clock`` replaces the system clock (tests)."""
    import worker.tasks  # noqa: F401  (registers the shared tasks)
    from worker.tasks.base import lower_pool_priority

    app = Celery("automations", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.conf.beat_schedule = beat_schedule(settings)
    app.conf.task_routes = task_routes()
    app.conf["automations_settings"] = settings
    runtime = Runtime(settings, clock=clock, celery=app)
    app.automations_runtime = runtime  # type: ignore[attr-defined]

    @worker_process_init.connect(weak=False)
    def _reset(**_: Any) -> None:  # a prefork child: its own connections, lower priority
        runtime.reset_after_fork()
        lower_pool_priority(settings.worker_pool_nice)

    app.finalize(auto=True)
    _json_logging(app)
    return app


def task_routes() -> dict[str, dict[str, str]]:
    """Each task's queue, for messages sent without one (the tasks name theirs too)."""
    return {
        PROCESS_EVENT: {"queue": QUEUE_EVENTS},
        RUN_CHAT: {"queue": QUEUE_CHATS},
        RECOVER_CHATS: {"queue": QUEUE_MAINTENANCE},
        SWEEP_PENDING_EVENTS: {"queue": QUEUE_MAINTENANCE},
        DISPATCH_CRON: {"queue": QUEUE_MAINTENANCE},
        PURGE_EVENTS: {"queue": QUEUE_MAINTENANCE},
        AUTO_ARCHIVE: {"queue": QUEUE_MAINTENANCE},
        CHAT_RETENTION: {"queue": QUEUE_MAINTENANCE},
        SEND_NOTIFICATION_EMAIL: {"queue": QUEUE_NOTIFICATIONS},
        REQUEUE_NOTIFICATION_EMAILS: {"queue": QUEUE_MAINTENANCE},
    }


# Logging ------------------------------------------------------------------------------------
#
# Celery sets up logging itself in the worker and in beat (app.log.setup): with
# worker_hijack_root_logger it replaces the root logger's handlers with its own stderr handler,
# gives the task logger ("celery.task") and billiard's multiprocessing logger handlers of
# their own, and redirects the worker's stdout/stderr to the "celery.redirected" logger. The
# two signals below then put JsonFormatter on all of those handlers, so Celery's loggers
# ("celery", "celery.worker", "celery.beat", ...), the task loggers, the redirected output
# and our own loggers all write JSON lines. (The setup_logging signal would skip Celery's
# setup altogether, including the stdout redirection.)


class TaskContext(logging.Filter):
    """Adds ``task_id`` and ``task_name`` to records logged while a task runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        task = current_task
        if task and task.request.id is not None:
            record.task_id = task.request.id
            record.task_name = task.name
        return True


class QuietTicks(logging.Filter):
    """Celery's routine INFO lines about beat's periodic ticks at DEBUG.

    Beat's "Scheduler: Sending due task", the worker's "Task ... received", "... succeeded" and
    "Discarding revoked task" (an expired tick) for a task in ``tasks`` become DEBUG records:
    dropped unless the process logs at DEBUG. An idle tick is then silent at INFO; a tick that
    did something says so in its own INFO line (e.g. "cron dispatch: 2 fire(s) ..."), and
    failures (ERROR) are untouched.
    """

    def __init__(self, tasks: Collection[str], level: int) -> None:
        super().__init__()
        self.tasks = frozenset(tasks)
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not record.name.startswith("celery"):
            return True
        if not self._about_tick(record):
            return True
        if self.level > logging.DEBUG:
            return False
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return True

    def _about_tick(self, record: logging.LogRecord) -> bool:
        # the worker's task lines carry their context as the public ``data`` extra
        data = getattr(record, "data", None)
        if isinstance(data, dict):
            return data.get("name") in self.tasks
        args = record.args if isinstance(record.args, tuple) else ()
        return any(isinstance(arg, str) and arg in self.tasks for arg in args)


def tick_task_names(app: Celery) -> list[str]:
    """Beat's ticks: the tasks of its schedule (worker/schedule.py)."""
    return sorted({entry["task"] for entry in app.conf.beat_schedule.values()})


def use_json(logger: logging.Logger, filters: Collection[logging.Filter]) -> None:
    """Every handler of ``logger`` writes JSON lines, through ``filters``."""
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
        for log_filter in filters:
            if log_filter not in handler.filters:
                handler.addFilter(log_filter)


def _json_logging(app: Celery) -> None:
    # Celery's default, stated because the signals below rely on it: Celery owns the root
    # logger of the worker and beat processes.
    app.conf.worker_hijack_root_logger = True
    ticks = tick_task_names(app)
    context = TaskContext()

    def _filters(loglevel: Any) -> list[logging.Filter]:
        level = loglevel if isinstance(loglevel, int) else logging.INFO
        return [context, QuietTicks(ticks, level)]

    # dispatch_uid: one receiver per process however many apps are made (tests make many)
    @after_setup_logger.connect(weak=False, dispatch_uid="automations.json-logging")
    def _root(logger: logging.Logger, loglevel: Any = None, **_: Any) -> None:
        filters = _filters(loglevel)
        use_json(logger, filters)
        billiard_logger = get_multiprocessing_logger()
        if billiard_logger is not None:
            use_json(billiard_logger, filters)

    @after_setup_task_logger.connect(weak=False, dispatch_uid="automations.json-task-logging")
    def _task(logger: logging.Logger, loglevel: Any = None, **_: Any) -> None:
        use_json(logger, _filters(loglevel))
