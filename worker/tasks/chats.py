"""Chat runner tasks: ``run_chat`` (queue ``chats``) and beat's ``recover_chats``.

``run_chat`` only claims: it reserves a slot on this process's :class:`RunnerHost`, claims
the chat in its own short transaction, hands the turn to the host's event loop and returns.
No task ever sleeps: a turn waiting out a retry is a ``pending`` chat with ``retry_at`` and a
delayed ``run_chat`` (``countdown``), with ``recover_chats`` as the safety net.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import uuid
from typing import Any

from celery import Celery, shared_task
from celery.signals import worker_process_shutdown, worker_shutdown

from shared.chats.recovery import recover_and_publish
from shared.chats.turns import TurnSettings, claim_chat
from shared.infra.crypto import Keyring
from shared.infra.queues import QUEUE_CHATS, QUEUE_MAINTENANCE, RECOVER_CHATS, RUN_CHAT
from shared.runner.host import RunnerHost, live_events_for
from worker.tasks.base import AutomationsTask, runtime_of

log = logging.getLogger(__name__)

#: how long ``run_chat`` waits for room on a full host before handing the message back
SLOT_WAIT_SECONDS = 10.0
#: the countdown of a ``run_chat`` handed back by a full host
BUSY_COUNTDOWN_SECONDS = 2.0

_hosts: dict[int, RunnerHost] = {}  # by id(app): tests make several apps in one process
_hosts_lock = threading.Lock()


def publish_run_chat(app: Celery, chat_id: uuid.UUID, countdown: float | None = None) -> None:
    """``run_chat(chat_id)`` on the chats queue, due after ``countdown`` seconds if given."""
    options: dict[str, Any] = {"queue": QUEUE_CHATS}
    if countdown:
        options["countdown"] = countdown
    app.send_task(RUN_CHAT, args=[str(chat_id)], **options)


def runner_host(app: Celery) -> RunnerHost:
    """This process's host (made and started on first use: after the fork, in the pool
    process that runs turns)."""
    key = id(app)
    with _hosts_lock:
        host = _hosts.get(key)
        if host is not None and host.pid == os.getpid():
            return host
        rt = runtime_of(app)
        s = rt.settings
        host = RunnerHost(
            clock=rt.clock,
            units=rt.unit_of_work,
            publish=lambda chat_id, countdown: publish_run_chat(app, chat_id, countdown),
            turn_settings=TurnSettings.from_settings(s),
            keyring=Keyring(s.keys),
            max_in_flight=s.runner_max_in_flight,
            heartbeat_seconds=s.runner_heartbeat_seconds,
            live=live_events_for(s),
        )
        _hosts[key] = host
    host.start()
    return host


def stop_hosts(**_: Any) -> None:
    """Hand back this process's unfinished turns (warm shutdown, pool process exit)."""
    with _hosts_lock:
        hosts = [h for h in _hosts.values() if h.pid == os.getpid()]
        _hosts.clear()
    for host in hosts:
        host.stop()


worker_process_shutdown.connect(stop_hosts, weak=False, dispatch_uid="automations.runner-stop")
worker_shutdown.connect(stop_hosts, weak=False, dispatch_uid="automations.runner-stop-main")
atexit.register(stop_hosts)


@shared_task(name=RUN_CHAT, base=AutomationsTask, bind=True, queue=QUEUE_CHATS, ignore_result=True)
def run_chat(self: AutomationsTask, chat_id: str) -> str:
    """Claim the chat and start its turn on this process's runner; returns at once.

    ``claimed``, ``not claimable`` (running elsewhere, waiting, paused, in error, not due),
    ``busy`` (the host is full: handed back with a countdown) or ``invalid``.
    """
    try:
        cid = uuid.UUID(str(chat_id))
    except ValueError:
        log.error("run_chat: not a chat id: %r", chat_id)
        return "invalid"
    host = runner_host(self.app)
    if not host.acquire_slot(SLOT_WAIT_SECONDS):
        publish_run_chat(self.app, cid, BUSY_COUNTDOWN_SECONDS)
        return "busy"
    try:
        with self.unit_of_work() as uow:
            claim = claim_chat(uow.connection, self.runtime.clock, cid)
    except BaseException:
        host.release_slot()
        raise
    if claim is None:
        host.release_slot()
        return "not claimable"
    host.submit(claim)  # the slot is released when the turn ends
    return "claimed"


@shared_task(
    name=RECOVER_CHATS,
    base=AutomationsTask,
    bind=True,
    queue=QUEUE_MAINTENANCE,
    periodic=True,
    autoretry_for=(),
)
def recover_chats_task(self: AutomationsTask) -> dict[str, int]:
    """Stale running chats back to pending; pending chats whose publish was lost published
    again (shared.chats.recovery)."""
    rt = self.runtime
    with self.unit_of_work() as uow:
        result = recover_and_publish(uow, rt.clock, rt.settings)
    if result.stale or result.republished:
        log.info(
            "chat recovery: %d stale running chat(s) back to pending, %d re-published",
            len(result.stale),
            len(result.republished),
        )
    return {"stale": len(result.stale), "republished": len(result.republished)}
