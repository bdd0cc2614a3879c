"""The broker: Celery's configuration and the publisher every producer uses.

Producers (the gateway, cron dispatch, the sweeper, the CLI) and the worker share
:func:`celery_config`. Publishing goes through Celery's public API only: ``send_task`` on a
producer taken from the app's producer pool (:meth:`Celery.producer_or_acquire`), one per
batch, so the message format, ``global_keyprefix`` and the publish retry policy are Celery's
and kombu's own. This module must not import the ``worker`` package.

Cost: ``send_task`` spends ~0.3 ms of CPU per message on a Redis broker, most of it in
kombu's Redis channel building a new ``redis.Redis`` client for every publish; see
docs/performance.md ("Publishing") for the measurement and the upstream proposal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery
from kombu import Queue

from shared.infra.config import Settings
from shared.infra.db.uow import TaskMessage
from shared.infra.queues import ALL_QUEUES, PROCESS_EVENT, QUEUE_EVENTS

__all__ = ["Publisher", "celery_config", "event_message", "producer_app"]

log = logging.getLogger(__name__)


def celery_config(settings: Settings) -> dict[str, Any]:
    transport: dict[str, Any] = {}
    if settings.effective_broker_url.startswith(("redis://", "rediss://")):
        # Redis redelivers an unacknowledged task after the visibility timeout; the task time
        # limit is below it (checked in Settings) so a running task is never redelivered.
        transport.update(
            visibility_timeout=settings.broker_visibility_timeout_seconds,
            socket_timeout=5,
            socket_connect_timeout=3,
            retry_on_timeout=True,
        )
    return {
        "broker_url": settings.effective_broker_url,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "result_backend": None,
        # A task is acknowledged only after it finished; a worker that dies mid-task
        # has it redelivered. The tasks are idempotent, so redelivery is harmless.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_time_limit_seconds,
        "task_soft_time_limit": max(settings.task_time_limit_seconds - 10, 5),
        "task_default_queue": QUEUE_EVENTS,
        "task_queues": [Queue(name) for name in ALL_QUEUES],
        # Publishing must fail fast: the gateway answers 202 anyway and the sweeper re-publishes.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "timezone": "UTC",
        "enable_utc": True,
    }


def producer_app(settings: Settings) -> Celery:
    """A Celery app that only publishes (no tasks registered): the gateway's and the CLI's."""
    app = Celery("automations", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.conf["automations_settings"] = settings
    return app


def event_message(event_id: object) -> TaskMessage:
    """``process_event(event_id)`` on the events queue."""
    return TaskMessage(PROCESS_EVENT, (str(event_id),), QUEUE_EVENTS)


class Publisher:
    """Publishes task messages through Celery, one pooled producer per batch."""

    def __init__(
        self, app: Celery, on_failure: Callable[[Sequence[TaskMessage]], None] | None = None
    ) -> None:
        self.app = app
        #: told about every batch whose publish failed (the gateway counts them in metrics)
        self.on_failure = on_failure

    def publish(self, messages: Sequence[TaskMessage]) -> None:
        if not messages:
            return
        try:
            with self.app.producer_or_acquire() as producer:
                for message in messages:
                    self.app.send_task(
                        message.name,
                        args=list(message.args),
                        queue=message.queue,
                        producer=producer,
                    )
        except Exception:
            if self.on_failure is not None:
                self.on_failure(messages)
            raise
