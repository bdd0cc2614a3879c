"""The Celery application factory. Producers (gateway, beat) and workers share it."""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from shared.infra.config import Settings
from shared.infra.queues import ALL_QUEUES, QUEUE_EVENTS
from worker.schedule import beat_schedule


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
    broker_transport = None
    if settings.effective_broker_url.startswith("redis://"):
        broker_transport = "worker.redis_transport:Transport"
    return {
        "broker_url": settings.effective_broker_url,
        "broker_transport": broker_transport,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "result_backend": None,
        # A task is acknowledged only after it finished; a worker that dies mid-task
        # has it redelivered. The task is idempotent, so redelivery is harmless.
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


def create_celery(settings: Settings, *, include_tasks: bool = True) -> Celery:
    app = Celery("automations", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.conf.beat_schedule = beat_schedule(settings)
    app.conf["automations_settings"] = settings
    if include_tasks:
        from worker import tasks

        tasks.register(app)
    return app
