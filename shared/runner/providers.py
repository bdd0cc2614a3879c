"""Streaming adapters over the providers' official SDKs (SPEC 9 "A turn").

:func:`stream_turn` sends one turn (system prompt + messages) to a model config and streams
the reply through ``on_delta``; :func:`ping` is ``models test``. Both use the SDKs with
``max_retries=0`` (the runner owns retries, :mod:`shared.runner.retry`) and explicit
timeouts, and guard the stream themselves:

* no first chunk within ``startup_timeout_seconds`` (from the start of the request, so a
  server that sends headers and then nothing counts too) → :class:`StartupTimeout`;
* no chunk for ``stream_idle_timeout_seconds`` → :class:`IdleTimeout`;
* a stream that ends without its terminal event → :class:`StreamTruncated`.

Every failure of the provider (SDK errors, connection failures, garbage, the guards above, a
refused outbound address) leaves as :class:`TurnFailed` carrying the classified
:class:`ChatError`; an exception raised by ``on_delta`` itself leaves unchanged, so that the
runner can abort a turn (e.g. when it lost its claim). Cancellation propagates as usual.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import openai

from shared.runner.clients import NO_KEY, ClientPool, ProviderConfig, make_client, sdk_timeout
from shared.runner.errors import (
    ChatError,
    IdleTimeout,
    StartupTimeout,
    TurnFailed,
    UnknownProvider,
    classify,
)
from shared.runner.outbound import resolve_and_check_async

__all__ = [
    "NO_KEY",
    "PING_PROMPT",
    "PROVIDERS",
    "ClientPool",
    "DeltaCallback",
    "ProviderConfig",
    "TurnResult",
    "ping",
    "sdk_timeout",
    "stream_turn",
]

PROVIDERS = ("openai", "anthropic")
PING_PROMPT = "Reply with the single word: pong"

DeltaCallback = Callable[[str], Awaitable[None] | None]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class TurnResult:
    content: str
    model: str
    input_tokens: int
    output_tokens: int
    finish_reason: str | None


class _CallbackFailed(Exception):
    """Carries an exception raised by ``on_delta`` past the classification."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original


class StreamGuard:
    """Startup and idle deadlines over the events of one stream.

    ``opened`` bounds opening the stream (the request up to the response headers) by the
    startup deadline; ``next`` bounds each event: the first by the startup deadline, the
    others by the idle timeout from the previous one.
    """

    def __init__(self, config: ProviderConfig, on_delta: DeltaCallback) -> None:
        self._loop = asyncio.get_running_loop()
        self._startup = config.startup_timeout_seconds
        self._idle = config.stream_idle_timeout_seconds
        self._startup_deadline = self._loop.time() + self._startup
        self._first = True
        self._on_delta = on_delta

    async def opened(self, opening: Awaitable[_T]) -> _T:
        timeout = asyncio.timeout_at(self._startup_deadline)
        try:
            async with timeout:
                return await opening
        except TimeoutError:
            if timeout.expired():
                raise StartupTimeout(self._startup) from None
            raise

    async def next(self, stream: AsyncIterator[_T]) -> _T | None:
        """The next event, or None at the end of the stream."""
        deadline = self._startup_deadline if self._first else self._loop.time() + self._idle
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout:
                event = await anext(stream)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            if timeout.expired():
                if self._first:
                    raise StartupTimeout(self._startup) from None
                raise IdleTimeout(self._idle) from None
            raise
        self._first = False
        return event

    async def delta(self, text: str) -> None:
        if not text:
            return
        try:
            result = self._on_delta(text)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            raise _CallbackFailed(exc) from exc


async def stream_turn(
    config: ProviderConfig,
    system_prompt: str | None,
    messages: Sequence[Mapping[str, str]],
    on_delta: DeltaCallback,
    *,
    clients: ClientPool | None = None,
) -> TurnResult:
    """Run one turn against ``config``; raises :class:`TurnFailed` with the classified error.

    ``messages`` are ``{"role": "user" | "assistant", "content": str}`` in order. With
    ``clients`` the SDK client (and its connections) comes from, and stays in, the pool;
    without, a client is made for this turn and closed after it.
    """
    try:
        if config.provider not in PROVIDERS:
            raise UnknownProvider(f"unknown provider {config.provider!r}")
        await resolve_and_check_async(config.base_url, config.allow_private)
        guard = StreamGuard(config, on_delta)
        client = clients.get(config) if clients is not None else make_client(config)
        try:
            if isinstance(client, openai.AsyncOpenAI):
                from shared.runner.providers_openai import stream_openai

                return await stream_openai(client, config, system_prompt, messages, guard)
            from shared.runner.providers_anthropic import stream_anthropic

            return await stream_anthropic(client, config, system_prompt, messages, guard)
        finally:
            if clients is None:
                await client.close()
    except _CallbackFailed as wrapped:
        raise wrapped.original from None
    except TurnFailed:
        raise
    except Exception as exc:
        raise TurnFailed(classify(exc, config.provider, secrets=[config.api_key])) from exc


async def ping(
    config: ProviderConfig, *, clients: ClientPool | None = None
) -> tuple[bool, int, ChatError | None]:
    """``models test``: one short turn; ``(ok, latency_ms, error)``."""
    started = time.monotonic()
    quick = replace(config, max_output_tokens=min(config.max_output_tokens or 16, 16))
    try:
        await stream_turn(
            quick, None, [{"role": "user", "content": PING_PROMPT}], _ignore, clients=clients
        )
    except TurnFailed as failed:
        return False, _elapsed_ms(started), failed.error
    return True, _elapsed_ms(started), None


def _ignore(_text: str) -> None:
    return None


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def field(obj: Any, name: str, default: Any = None) -> Any:
    """An attribute of an SDK object that may be missing (SDKs build stream events without
    validation, so a provider's garbage shows up as missing attributes, not as errors)."""
    value = getattr(obj, name, default)
    return default if value is None else value
