"""The SDK clients a turn talks through, and a pool that reuses them across turns.

A client is cheap to use and dear to make: building one builds an ``httpx`` client, whose TLS
context alone costs about 50 ms of CPU (it loads the CA bundle). So every client here shares
one TLS context, and a runner that runs many turns on one long-lived event loop keeps a
:class:`ClientPool`, which also keeps connections to a provider alive between turns.

Every client has ``max_retries=0`` (the runner owns retries), explicit timeouts, an explicit
API key (never the process's ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``) and does not follow
redirects (a redirect could lead past the outbound-address check).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import anthropic
import openai

__all__ = [
    "NO_KEY",
    "ClientPool",
    "ProviderConfig",
    "SDKClient",
    "make_client",
    "sdk_timeout",
]

#: Sent when a model config has no key (Ollama, a local vLLM). The SDKs refuse to start without
#: one (and an empty one makes an illegal "Bearer " header); without an explicit key they would
#: fall back to ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` from the process environment, a key
#: that must never go to whatever ``base_url`` a user configured.
NO_KEY = "unused"

SDKClient = openai.AsyncOpenAI | anthropic.AsyncAnthropic


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """What a turn needs of a model config (the API key decrypted)."""

    provider: str  # "openai" (any OpenAI-compatible endpoint) or "anthropic"
    base_url: str
    model: str
    api_key: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    startup_timeout_seconds: float = 60.0
    stream_idle_timeout_seconds: float = 300.0
    #: ``AUTOMATIONS_OUTBOUND_ALLOW_PRIVATE``: may ``base_url`` resolve to a private address
    allow_private: bool = False
    connect_timeout_seconds: float = 10.0

    def __repr__(self) -> str:  # never show the key in logs or tracebacks
        key = "set" if self.api_key else "unset"
        return (
            f"ProviderConfig(provider={self.provider!r}, base_url={self.base_url!r}, "
            f"model={self.model!r}, api_key=<{key}>)"
        )


def sdk_timeout(config: ProviderConfig) -> dict[str, float]:
    """The SDK's own (httpx) timeouts: a backstop behind the stream guard, which fires
    first."""
    read = max(config.startup_timeout_seconds, config.stream_idle_timeout_seconds) + 5.0
    return {
        "connect": min(config.connect_timeout_seconds, config.startup_timeout_seconds),
        "read": read,
        "write": 30.0,
        "pool": config.startup_timeout_seconds,
    }


_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def shared_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for every client of the process (contexts are thread-safe)."""
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = ssl.create_default_context()
        return _ssl_context


def make_client(config: ProviderConfig) -> SDKClient:
    """A new SDK client for ``config`` (the caller closes it). Raises ``ValueError`` for a
    provider this service does not speak."""
    timeout = openai.Timeout(None, **sdk_timeout(config))
    options: dict[str, Any] = {
        "verify": shared_ssl_context(),
        "follow_redirects": False,
        "timeout": timeout,
    }
    if config.provider == "openai":
        return openai.AsyncOpenAI(
            api_key=config.api_key or NO_KEY,
            base_url=config.base_url,
            max_retries=0,
            timeout=timeout,
            http_client=openai.DefaultAsyncHttpxClient(**options),
        )
    if config.provider == "anthropic":
        return anthropic.AsyncAnthropic(
            api_key=config.api_key or NO_KEY,
            base_url=config.base_url,
            max_retries=0,
            timeout=timeout,
            http_client=anthropic.DefaultAsyncHttpxClient(**options),
        )
    raise ValueError(f"unknown provider {config.provider!r}")


class ClientPool:
    """SDK clients reused across turns on one event loop, least recently used first out.

    Create one per long-lived event loop and use it only there (the connections belong to
    the loop); ``await pool.aclose()`` when the loop ends.
    """

    def __init__(self, max_clients: int = 64) -> None:
        self._max = max_clients
        self._clients: OrderedDict[tuple[Any, ...], SDKClient] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._clients)

    def get(self, config: ProviderConfig) -> SDKClient:
        key = (
            config.provider,
            config.base_url,
            config.api_key,
            tuple(sorted(sdk_timeout(config).items())),
        )
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        client = make_client(config)
        self._clients[key] = client
        while len(self._clients) > self._max:
            _, evicted = self._clients.popitem(last=False)
            task = asyncio.get_running_loop().create_task(evicted.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return client

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
