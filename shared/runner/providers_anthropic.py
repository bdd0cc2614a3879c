"""The ``anthropic`` provider: the Messages API, streamed (``messages.create(stream=True)``),
through the official SDK with ``max_retries=0``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import anthropic

from shared.runner.clients import ProviderConfig
from shared.runner.errors import StreamTruncated
from shared.runner.providers import StreamGuard, TurnResult, field

__all__ = ["DEFAULT_MAX_TOKENS", "stream_anthropic"]

#: The Messages API requires ``max_tokens``; used when the model config sets none.
DEFAULT_MAX_TOKENS = 4096


def _wire_messages(messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """Consecutive messages of one role joined into one (the API wants them alternating)."""
    wire: list[dict[str, str]] = []
    for message in messages:
        if wire and wire[-1]["role"] == message["role"]:
            wire[-1] = {
                "role": message["role"],
                "content": f"{wire[-1]['content']}\n\n{message['content']}",
            }
        else:
            wire.append({"role": message["role"], "content": message["content"]})
    return wire


async def stream_anthropic(
    client: anthropic.AsyncAnthropic,
    config: ProviderConfig,
    system_prompt: str | None,
    messages: Sequence[Mapping[str, str]],
    guard: StreamGuard,
) -> TurnResult:
    stream = await guard.opened(
        client.messages.create(
            model=config.model,
            messages=cast(Any, _wire_messages(messages)),
            system=system_prompt or anthropic.omit,
            max_tokens=config.max_output_tokens or DEFAULT_MAX_TOKENS,
            stream=True,
            # this SDK has no ``temperature`` argument; the API still takes the field
            extra_body=None if config.temperature is None else {"temperature": config.temperature},
        )
    )
    try:
        parts: list[str] = []
        model = config.model
        stop_reason: str | None = None
        input_tokens = output_tokens = 0
        stopped = False
        while (event := await guard.next(stream)) is not None:
            kind = field(event, "type", "")
            if kind == "message_start":
                message = field(event, "message")
                model = field(message, "model", model)
                usage = field(message, "usage")
                input_tokens = _input_tokens(usage, input_tokens)
                output_tokens = int(field(usage, "output_tokens", output_tokens))
            elif kind == "content_block_delta":
                delta = field(event, "delta")
                text = field(delta, "text", "") if field(delta, "type") == "text_delta" else ""
                if isinstance(text, str) and text:
                    parts.append(text)
                    await guard.delta(text)
            elif kind == "message_delta":
                stop_reason = field(field(event, "delta"), "stop_reason", stop_reason)
                usage = field(event, "usage")
                input_tokens = _input_tokens(usage, input_tokens)
                output_tokens = int(field(usage, "output_tokens", output_tokens))
            elif kind == "message_stop":
                stopped = True
            # other events (content_block_start/stop, unknown types) carry no text
    finally:
        await stream.close()
    if not stopped:
        raise StreamTruncated("the stream ended without message_stop")
    return TurnResult(
        content="".join(parts),
        model=str(model),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        finish_reason=str(stop_reason) if stop_reason is not None else None,
    )


def _input_tokens(usage: Any, current: int) -> int:
    """Input tokens including prompt-cache reads and writes (all of them are billed input);
    ``message_delta`` repeats them cumulatively when present."""
    if usage is None or field(usage, "input_tokens") is None:
        return current
    return (
        int(field(usage, "input_tokens", 0))
        + int(field(usage, "cache_creation_input_tokens", 0))
        + int(field(usage, "cache_read_input_tokens", 0))
    )
