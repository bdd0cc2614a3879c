"""The ``openai`` provider: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM,
Ollama, llama.cpp, LiteLLM), streamed, through the official SDK with ``max_retries=0``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import openai

from shared.runner.clients import ProviderConfig
from shared.runner.errors import StreamTruncated
from shared.runner.providers import StreamGuard, TurnResult, field

__all__ = ["stream_openai"]


def _max_tokens_param(config: ProviderConfig) -> str:
    """OpenAI itself wants ``max_completion_tokens`` (its reasoning models refuse
    ``max_tokens``); compatible servers (vLLM, Ollama, llama.cpp) all know ``max_tokens``."""
    host = (urlsplit(config.base_url).hostname or "").lower()
    return "max_completion_tokens" if host.endswith("openai.com") else "max_tokens"


def _wire_messages(
    system_prompt: str | None, messages: Sequence[Mapping[str, str]]
) -> list[dict[str, str]]:
    wire: list[dict[str, str]] = []
    if system_prompt:
        wire.append({"role": "system", "content": system_prompt})
    wire.extend({"role": m["role"], "content": m["content"]} for m in messages)
    return wire


async def stream_openai(
    client: openai.AsyncOpenAI,
    config: ProviderConfig,
    system_prompt: str | None,
    messages: Sequence[Mapping[str, str]],
    guard: StreamGuard,
) -> TurnResult:
    limit = openai.omit if config.max_output_tokens is None else config.max_output_tokens
    use_completion_tokens = _max_tokens_param(config) == "max_completion_tokens"
    stream = await guard.opened(
        client.chat.completions.create(
            model=config.model,
            messages=cast(Any, _wire_messages(system_prompt, messages)),
            stream=True,
            stream_options={"include_usage": True},
            temperature=openai.omit if config.temperature is None else config.temperature,
            max_completion_tokens=limit if use_completion_tokens else openai.omit,
            max_tokens=openai.omit if use_completion_tokens else limit,
        )
    )
    try:
        parts: list[str] = []
        model = config.model
        finish_reason: str | None = None
        input_tokens = output_tokens = 0
        while (chunk := await guard.next(stream)) is not None:
            model = field(chunk, "model", model)
            usage = field(chunk, "usage")
            if usage is not None:
                input_tokens = int(field(usage, "prompt_tokens", 0))
                output_tokens = int(field(usage, "completion_tokens", 0))
            for choice in field(chunk, "choices", []):
                if field(choice, "index", 0) != 0:
                    continue
                text = field(field(choice, "delta"), "content", "")
                if isinstance(text, str) and text:
                    parts.append(text)
                    await guard.delta(text)
                finish_reason = field(choice, "finish_reason", finish_reason)
    finally:
        await stream.close()
    if finish_reason is None:
        raise StreamTruncated("the stream ended without a finish_reason")
    return TurnResult(
        content="".join(parts),
        model=str(model),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        finish_reason=str(finish_reason),
    )
