"""The asyncio side of the chat runner: one long-lived event loop per worker process.

``run_chat`` (worker/tasks/chats.py) claims a chat in its own transaction, hands the claim
to :meth:`RunnerHost.submit` and returns: the Celery pool process is free again at once, and
the turn streams on this process's loop thread, next to up to ``runner_max_in_flight`` others.
Turns are I/O-bound, so one thread multiplexes hundreds of them; what does block (database
transactions, publishing) runs in small thread pools beside the loop.

* One :class:`~shared.runner.clients.ClientPool` for the loop (connections to a provider are
  reused across turns).
* One batched heartbeat UPDATE per ``runner_heartbeat_seconds`` for every turn of the process;
  a turn whose claim is gone (recovered and re-claimed elsewhere) is cancelled and writes
  nothing.
* Deltas are combined and published about every 100 ms (live events are hints: best effort,
  never on the loop thread).
* Commits are fenced (:mod:`shared.chats.turns`) and run in a thread executor; ``run_chat`` is
  published after them: at once for a follow-up turn, with a countdown for a retry (waiting
  holds no worker slot; beat's recovery job re-publishes a lost one).

Durability comes from the database claim, the heartbeat and the recovery job, not from the
broker message (which is acknowledged when ``run_chat`` returns).

**Shutdown** (Celery's warm shutdown, or the pool process exiting): turns still streaming are
cancelled and their claims handed back at once (``pending``, ``run_chat`` published), so the
next runner starts them again without waiting for the stale-heartbeat recovery; the partial
reply is discarded. Turns already committing finish their commit. A runner killed outright
(SIGKILL) leaves its chats ``running``; recovery returns them to ``pending`` once their
heartbeat is older than ``runner_stale_seconds``. Either way: one assistant message per turn.

Prefork: a host belongs to the process that started it. Start it in the pool process (on first
use, or from ``worker_process_init``), never in the parent before the fork.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection

from shared.chats.live import LiveEvents, NullLiveEvents
from shared.chats.turns import (
    Claim,
    ClaimLost,
    FailureOutcome,
    SuccessOutcome,
    TurnRequest,
    TurnSettings,
    commit_failure,
    commit_success,
    heartbeat,
    load_turn,
    release_claims,
)
from shared.infra.clock import Clock
from shared.infra.crypto import Keyring
from shared.infra.db.uow import Units
from shared.runner.clients import ClientPool
from shared.runner.errors import ChatError, TurnFailed, describe
from shared.runner.providers import TurnResult, stream_turn
from shared.runner.retry import RandomSource

__all__ = ["DELTA_INTERVAL_SECONDS", "Publish", "RunnerHost", "live_events_for"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: how often streamed text is combined into one ``delta`` event
DELTA_INTERVAL_SECONDS = 0.1
#: threads that run the turns' transactions (short: a few statements each)
DB_THREADS = 4

#: publish ``run_chat(chat_id)``, after ``countdown`` seconds when given (a retry)
Publish = Callable[[uuid.UUID, float | None], None]


def live_events_for(settings: Any) -> LiveEvents:
    """The settings' live-event publisher, or :class:`NullLiveEvents` when the live module
    has none (yet) or it cannot be made."""
    try:
        from shared.chats import live

        factory = getattr(live, "live_events", None)
        if factory is None:
            return NullLiveEvents()
        return factory(settings)  # type: ignore[no-any-return]
    except Exception:
        log.warning("live chat events unavailable; streams get no live updates", exc_info=True)
        return NullLiveEvents()


class _Deltas:
    """Streamed text combined into one ``delta`` event per interval."""

    def __init__(self, host: RunnerHost, chat_id: uuid.UUID) -> None:
        self._host = host
        self._chat_id = chat_id
        self._parts: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, text: str) -> None:
        self._parts.append(text)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(DELTA_INTERVAL_SECONDS, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._parts:
            text, self._parts = "".join(self._parts), []
            self._host.live(self._chat_id, "delta", {"text": text})


@dataclass
class _Turn:
    claim: Claim
    task: asyncio.Task[None] | None = None
    #: still streaming (cancellable); False once its commit started
    streaming: bool = True


class RunnerHost:
    """Runs the turns of one process on one event loop thread (see the module docstring)."""

    def __init__(
        self,
        *,
        clock: Clock,
        units: Units,
        publish: Publish,
        turn_settings: TurnSettings,
        keyring: Keyring,
        max_in_flight: int = 200,
        heartbeat_seconds: float = 10.0,
        live: LiveEvents | None = None,
        rng: RandomSource | None = None,
    ) -> None:
        self.clock = clock
        self.units = units
        self.publish = publish
        self.turn_settings = turn_settings
        self.keyring = keyring
        self.max_in_flight = max_in_flight
        self.heartbeat_seconds = heartbeat_seconds
        self._live = live or NullLiveEvents()
        self._rng = rng
        self.pid = os.getpid()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        #: by runner id (one chat may be re-claimed here while its lost turn still winds down)
        self._turns: dict[str, _Turn] = {}
        self._pool: ClientPool | None = None
        self._db_pool = concurrent.futures.ThreadPoolExecutor(DB_THREADS, "chat-runner-db")
        self._live_pool = concurrent.futures.ThreadPoolExecutor(1, "chat-runner-live")
        self._stopping = False

    # --- lifecycle (any thread) ------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self._lock:
            if self.running:
                return
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._run_loop, name="chat-runner", daemon=True)
            self._thread.start()
        self._ready.wait(10)

    def _run_loop(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        self._pool = ClientPool()
        heartbeats = loop.create_task(self._heartbeat_loop())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            heartbeats.cancel()
            loop.run_until_complete(asyncio.gather(heartbeats, return_exceptions=True))
            loop.run_until_complete(self._pool.aclose())
            loop.close()

    def acquire_slot(self, timeout: float) -> bool:
        """Reserve room for one turn (``run_chat`` does, before claiming)."""
        return self._slots.acquire(timeout=timeout)

    def release_slot(self) -> None:
        self._slots.release()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._turns)

    def submit(self, claim: Claim) -> concurrent.futures.Future[None]:
        """Run the claimed turn on the loop; its slot (:meth:`acquire_slot`) is released when
        it ends. Returns at once."""
        self.start()
        assert self._loop is not None
        with self._lock:
            self._turns[claim.runner_id] = _Turn(claim)
        return asyncio.run_coroutine_threadsafe(self._run_turn(claim), self._loop)

    def stop(self, timeout: float = 10.0) -> None:
        """Hand back unfinished turns, let committing ones finish, stop the loop."""
        loop = self._loop
        if loop is None or not self.running:
            return
        self._stopping = True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(timeout), loop).result(timeout + 5)
        except Exception:
            log.warning("chat runner: shutdown did not complete cleanly", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        self._db_pool.shutdown(wait=True)
        self._live_pool.shutdown(wait=True)

    # --- helpers ---------------------------------------------------------------------------

    def live(self, chat_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
        """Best effort, off the loop thread."""

        def send() -> None:
            try:
                self._live.publish(chat_id, event, data)
            except Exception:
                log.debug("live event %s for chat %s not published", event, chat_id)

        try:
            self._live_pool.submit(send)
        except RuntimeError:  # shut down
            pass

    async def _db(self, fn: Callable[[Connection], _T]) -> _T:
        def call() -> _T:
            with self.units() as uow:
                return fn(uow.connection)

        return await asyncio.get_running_loop().run_in_executor(self._db_pool, call)

    async def _publish(self, chat_id: uuid.UUID, countdown: float | None) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._db_pool, self.publish, chat_id, countdown
            )
        except Exception as exc:  # recovery re-publishes it
            log.warning("run_chat for chat %s not published (%s)", chat_id, type(exc).__name__)

    # --- the turn (loop thread) ------------------------------------------------------------

    async def _run_turn(self, claim: Claim) -> None:
        chat_id = claim.chat_id
        with self._lock:
            turn = self._turns[claim.runner_id]
            turn.task = asyncio.current_task()
        try:
            await self._turn(claim, turn)
        except ClaimLost:
            log.info("chat %s: claim lost; the turn wrote nothing", chat_id)
        except asyncio.CancelledError:
            log.info("chat %s: turn cancelled (claim lost or shutting down)", chat_id)
        except Exception:
            # Our own failure (the database, a bug): the claim stays until its heartbeat goes
            # stale and recovery returns the chat to pending.
            log.exception("chat %s: turn failed; left to recovery", chat_id)
        finally:
            with self._lock:
                self._turns.pop(claim.runner_id, None)
            self._slots.release()

    async def _turn(self, claim: Claim, turn: _Turn) -> None:
        chat_id = claim.chat_id
        request = await self._db(
            lambda conn: load_turn(
                conn, self.clock, claim, keyring=self.keyring, settings=self.turn_settings
            )
        )
        self.live(chat_id, "status", {"status": "running"})
        error = request.setup_error
        result: TurnResult | None = None
        if error is None:
            assert request.config is not None
            deltas = _Deltas(self, chat_id)
            try:
                result = await stream_turn(
                    request.config,
                    request.system_prompt,
                    request.messages,
                    deltas.add,
                    clients=self._pool,
                )
            except TurnFailed as failed:
                error = failed.error
            finally:
                deltas.flush()
        turn.streaming = False
        if result is not None:
            await self._succeeded(request, result)
        else:
            assert error is not None
            await self._failed(request, error)

    async def _succeeded(self, request: TurnRequest, result: TurnResult) -> None:
        outcome: SuccessOutcome = await self._db(
            lambda conn: commit_success(conn, self.clock, request, result)
        )
        chat_id = request.chat_id
        if outcome.follow_up:
            await self._publish(chat_id, None)
        self.live(chat_id, "message", {"message": _message_json(outcome.message)})
        self.live(chat_id, "status", {"status": str(outcome.status)})

    async def _failed(self, request: TurnRequest, error: ChatError) -> None:
        outcome: FailureOutcome = await self._db(
            lambda conn: commit_failure(
                conn, self.clock, request, error, self.turn_settings, rng=self._rng
            )
        )
        chat_id = request.chat_id
        log.info(
            "chat %s: attempt %d failed: %s", chat_id, request.attempt, describe(outcome.error)
        )
        if outcome.countdown is not None:
            await self._publish(chat_id, outcome.countdown or None)
        if outcome.retry is not None:
            self.live(chat_id, "retry", {"retry": outcome.retry})
        else:
            self.live(chat_id, "error", {"last_error": outcome.error.to_json()})
        self.live(chat_id, "status", {"status": str(outcome.status)})

    # --- heartbeats and shutdown (loop thread) -------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            await self.beat_once()

    async def beat_once(self) -> None:
        """One batched heartbeat; cancels streaming turns whose claim is gone."""
        with self._lock:
            held = [(t.claim.chat_id, t.claim.runner_id) for t in self._turns.values()]
        if not held:
            return
        try:
            alive = await self._db(lambda conn: heartbeat(conn, self.clock, held))
        except Exception as exc:
            log.warning("chat runner: heartbeat failed (%s)", type(exc).__name__)
            return
        for chat_id, runner_id in held:
            if runner_id in alive:
                continue
            with self._lock:
                turn = self._turns.get(runner_id)
            if turn is not None and turn.streaming and turn.task is not None:
                log.info("chat %s: claim taken over; aborting the turn", chat_id)
                turn.task.cancel()

    async def _shutdown(self, timeout: float) -> None:
        with self._lock:
            turns = list(self._turns.values())
        streaming = [t for t in turns if t.streaming]
        for t in streaming:
            if t.task is not None:
                t.task.cancel()
        tasks = [t.task for t in turns if t.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        claims = [(t.claim.chat_id, t.claim.runner_id) for t in streaming]
        if claims:
            try:
                released = await self._db(lambda conn: release_claims(conn, self.clock, claims))
            except Exception:
                log.warning("chat runner: claims not handed back; recovery will", exc_info=True)
                return
            for chat_id in released:
                await self._publish(chat_id, None)
            log.info("chat runner: handed back %d unfinished turn(s)", len(released))


def _message_json(message: dict[str, Any]) -> dict[str, Any]:
    """The stored assistant message as the API shows it."""
    return {
        "id": str(message["id"]),
        "role": str(message["role"]),
        "content": message["content"],
        "created_at": message["created_at"].isoformat(),
        "event_id": None,
        "model": message["model"],
        "input_tokens": message["input_tokens"],
        "output_tokens": message["output_tokens"],
        "finish_reason": message["finish_reason"],
    }
