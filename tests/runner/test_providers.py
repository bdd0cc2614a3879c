"""The streaming adapters against real local fake providers (both wire formats)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from shared.runner.errors import ChatError, TurnFailed
from shared.runner.providers import ClientPool, ProviderConfig, TurnResult, ping, stream_turn
from tests.harness.fake_providers import FakeProvider, Reply, stream_events

KEY = "sk-test-9d8c7b6a5f4e3d2c1b0a"
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(params=["openai", "anthropic"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeProvider]:
    with FakeProvider(request.param) as provider:
        yield provider


def config_for(fake: FakeProvider, **overrides: Any) -> ProviderConfig:
    base = ProviderConfig(
        provider=fake.kind,
        base_url=fake.base_url,
        model="fake-model-1",
        api_key=KEY,
        allow_private=True,  # the fake listens on 127.0.0.1
    )
    return replace(base, **overrides)


def run_turn(
    config: ProviderConfig,
    deltas: list[str] | None = None,
    system_prompt: str | None = "You are terse.",
) -> TurnResult:
    sink = deltas if deltas is not None else []
    return asyncio.run(stream_turn(config, system_prompt, MESSAGES, sink.append))


def failure(config: ProviderConfig) -> ChatError:
    with pytest.raises(TurnFailed) as caught:
        run_turn(config)
    return caught.value.error


def assert_key_only_in_auth_header(fake: FakeProvider) -> None:
    for request in fake.requests:
        assert KEY not in request.path
        assert KEY.encode() not in request.body
        holders = [name for name, value in request.headers.items() if KEY in value]
        assert holders and set(holders) <= {"authorization", "x-api-key"}


# --- normal turns ---------------------------------------------------------------------------------


def test_a_streamed_reply_with_usage(fake: FakeProvider) -> None:
    fake.script(Reply.ok("Hi", " there", "!", input_tokens=21, output_tokens=3))
    deltas: list[str] = []
    result = run_turn(config_for(fake), deltas)
    assert result.content == "Hi there!" == "".join(deltas)
    assert (result.input_tokens, result.output_tokens) == (21, 3)
    assert result.model == "fake-model-1"
    assert result.finish_reason == ("stop" if fake.kind == "openai" else "end_turn")
    assert len(fake.requests) == 1
    assert_key_only_in_auth_header(fake)


def test_the_request_carries_the_prompt_messages_and_options(fake: FakeProvider) -> None:
    run_turn(config_for(fake, max_output_tokens=123, temperature=0.3))
    body = fake.requests[0].json
    assert body["model"] == "fake-model-1"
    assert body["stream"] is True
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 123
    if fake.kind == "openai":
        assert body["messages"][0] == {"role": "system", "content": "You are terse."}
        assert body["messages"][1:] == MESSAGES
        assert body["stream_options"] == {"include_usage": True}
    else:
        assert body["system"] == "You are terse."
        assert body["messages"] == MESSAGES


def test_anthropic_gets_alternating_roles_and_a_default_max_tokens() -> None:
    with FakeProvider("anthropic") as fake:
        messages = [
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "three"},
        ]
        asyncio.run(stream_turn(config_for(fake), None, messages, lambda _t: None))
        body = fake.requests[0].json
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
        assert body["messages"][0]["content"] == "one\n\ntwo"
        assert body["max_tokens"] == 4096
        assert "system" not in body and "temperature" not in body


def test_an_async_delta_callback_is_awaited(fake: FakeProvider) -> None:
    seen: list[str] = []

    async def on_delta(text: str) -> None:
        await asyncio.sleep(0)
        seen.append(text)

    result = asyncio.run(stream_turn(config_for(fake), None, MESSAGES, on_delta))
    assert "".join(seen) == result.content == "Hello, world."


def test_an_exception_from_the_callback_is_not_classified(fake: FakeProvider) -> None:
    class ClaimLost(Exception):
        pass

    def on_delta(_text: str) -> None:
        raise ClaimLost()

    with pytest.raises(ClaimLost):
        asyncio.run(stream_turn(config_for(fake), None, MESSAGES, on_delta))


def test_unknown_events_and_empty_choices_are_ignored(fake: FakeProvider) -> None:
    if fake.kind == "openai":
        noise = (
            'data: {"id": "x", "object": "chat.completion.chunk", "model": "m", "choices": []}\n\n'
        )
    else:
        noise = 'event: brand_new\ndata: {"type": "brand_new", "what": 1}\n\n'
    events = stream_events(fake.kind, Reply(), "m")
    fake.script(Reply(raw_events=(events[0], noise, *events[1:])))
    assert run_turn(config_for(fake)).content == "Hello, world."


# --- errors: one request each (max_retries=0), classified -----------------------------------------

STATUS_CASES = [
    (Reply.error(429, "slow down", headers={"retry-after-ms": "1500"}), "rate_limit", True, 1.5),
    (Reply.error(429, "slow down", headers={"retry-after": "12"}), "rate_limit", True, 12.0),
    (
        Reply.error(429, "slow down", headers={"retry-after": "Fri, 01 Jan 2100 00:00:00 GMT"}),
        "rate_limit",
        True,
        "future",
    ),
    (Reply.error(529, "Overloaded", type="overloaded_error"), "overloaded", True, None),
    (Reply.error(401, f"Incorrect API key provided: {KEY}"), "auth", False, None),
    (Reply.error(403, "Your organization may not use this service"), "auth", False, None),
    (
        Reply.error(403, "Your organization may not use the model fake-model-1"),
        "config",
        False,
        None,
    ),
    (
        Reply.error(404, "model fake-model-1 not found", code="model_not_found"),
        "config",
        False,
        None,
    ),
    (
        Reply.error(400, "temperature: must be at most 1", param="temperature"),
        "config",
        False,
        None,
    ),
    (Reply.error(500, "internal error"), "generic", True, None),
    (Reply.error(503, "unavailable"), "timeout", True, None),
    (
        Reply.error(
            429,
            "You exceeded your current quota",
            code="insufficient_quota",
            type="insufficient_quota",
        ),
        "usage_limit",
        False,
        None,
    ),
]


@pytest.mark.parametrize(
    ("reply", "kind", "retryable", "retry_after"),
    STATUS_CASES,
    ids=[f"{c[0].status}-{c[1]}-{i}" for i, c in enumerate(STATUS_CASES)],
)
def test_error_statuses_are_classified(
    fake: FakeProvider, reply: Reply, kind: str, retryable: bool, retry_after: Any
) -> None:
    fake.script(reply)
    error = failure(config_for(fake))
    assert (error.kind, error.retryable, error.status_code) == (kind, retryable, reply.status)
    assert error.provider == fake.kind
    if retry_after == "future":
        assert error.retry_after_seconds is not None and error.retry_after_seconds > 3600
    else:
        assert error.retry_after_seconds == retry_after
    assert len(fake.requests) == 1  # the SDK did not retry
    assert KEY not in json.dumps(error.to_json())
    assert_key_only_in_auth_header(fake)


def test_a_stream_ended_before_its_terminal_event_is_a_retryable_timeout(
    fake: FakeProvider,
) -> None:
    fake.script(Reply(cut_after=3))
    error = failure(config_for(fake))
    assert (error.kind, error.retryable) == ("timeout", True)
    assert "closed before it finished" in error.message


def test_a_connection_dropped_mid_body_is_a_retryable_timeout(fake: FakeProvider) -> None:
    fake.script(Reply(abort_after=3))
    error = failure(config_for(fake))
    assert (error.kind, error.retryable) == ("timeout", True)


@pytest.mark.parametrize("where", ["header_delay", "first_event_delay"])
def test_no_first_chunk_within_the_startup_timeout(fake: FakeProvider, where: str) -> None:
    # released when the fake closes
    fake.script(
        Reply(header_delay=30.0) if where == "header_delay" else Reply(first_event_delay=30.0)
    )
    error = failure(config_for(fake, startup_timeout_seconds=0.3))
    assert (error.kind, error.retryable) == ("startup_timeout", True)
    assert len(fake.requests) == 1


def test_a_stall_mid_stream_is_an_idle_timeout(fake: FakeProvider) -> None:
    fake.script(Reply(stall_after=3))
    deltas: list[str] = []
    with pytest.raises(TurnFailed) as caught:
        run_turn(
            config_for(fake, startup_timeout_seconds=30, stream_idle_timeout_seconds=0.3), deltas
        )
    error = caught.value.error
    assert (error.kind, error.retryable) == ("timeout", True)
    assert "idle" in error.message


def test_an_error_event_mid_stream_is_classified(fake: FakeProvider) -> None:
    overloaded = {"type": "overloaded_error", "message": "Overloaded"}
    fake.script(Reply(error_event_after=3, error_event=overloaded))
    error = failure(config_for(fake))
    assert (error.kind, error.retryable) == ("overloaded", True)


def test_garbage_is_a_classified_error(fake: FakeProvider) -> None:
    event = "" if fake.kind == "openai" else "event: message_start\n"
    fake.script(Reply(raw_events=(f"{event}data: this is not json\n\n",)))
    error = failure(config_for(fake))
    assert (error.kind, error.retryable) == ("generic", False)


def test_only_empty_choices_is_a_truncated_stream() -> None:
    with FakeProvider("openai") as fake:
        empty = (
            'data: {"id": "x", "object": "chat.completion.chunk", "model": "m", "choices": []}\n\n'
        )
        fake.script(Reply(raw_events=(empty, "data: [DONE]\n\n")))
        assert failure(config_for(fake)).kind == "timeout"


def test_garbage_error_body_is_classified_by_status(fake: FakeProvider) -> None:
    fake.script(Reply(status=502, body="<html>Bad Gateway</html>"))
    error = failure(config_for(fake))
    assert (error.kind, error.retryable, error.status_code) == ("timeout", True, 502)


def test_connection_refused_is_a_retryable_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = ProviderConfig(
        "openai", f"http://127.0.0.1:{port}/v1", "m", api_key=KEY, allow_private=True
    )
    error = failure(config)
    assert (error.kind, error.retryable) == ("timeout", True)


# --- configuration --------------------------------------------------------------------------------


def test_a_private_base_url_is_refused_before_connecting(fake: FakeProvider) -> None:
    error = failure(config_for(fake, allow_private=False))
    assert (error.kind, error.retryable) == ("config", False)
    assert fake.requests == []


def test_an_unknown_provider_is_a_config_error(fake: FakeProvider) -> None:
    error = failure(config_for(fake, provider="gemini"))
    assert (error.kind, error.retryable) == ("config", False)
    assert fake.requests == []


def test_the_key_is_not_in_the_configs_repr() -> None:
    assert KEY not in repr(ProviderConfig("openai", "https://x.test/v1", "m", api_key=KEY))


def test_the_process_environment_key_is_never_sent(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-1234567890")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-the-environment-1234567890")
    run_turn(config_for(fake, api_key=None))
    headers = json.dumps(fake.requests[0].headers)
    assert "sk-from-the-environment" not in headers


# --- ping (models test) ---------------------------------------------------------------------------


def test_ping_reports_latency(fake: FakeProvider) -> None:
    ok, latency_ms, error = asyncio.run(ping(config_for(fake)))
    assert ok and error is None and latency_ms >= 0
    body = fake.requests[0].json
    assert body["max_tokens"] <= 16


def test_ping_reports_the_structured_error(fake: FakeProvider) -> None:
    fake.script(Reply.error(401, "bad key"))
    ok, latency_ms, error = asyncio.run(ping(config_for(fake)))
    assert not ok and latency_ms >= 0
    assert error is not None and error.kind == "auth"


def test_redirects_are_not_followed(fake: FakeProvider) -> None:
    """A redirect could lead past the outbound-address check (e.g. to a metadata address)."""
    with FakeProvider(fake.kind) as elsewhere:
        fake.script(Reply(status=307, body="", headers={"Location": f"{elsewhere.url}/v1/x"}))
        error = failure(config_for(fake))
        assert (error.kind, error.retryable, error.status_code) == ("generic", False, 307)
        assert elsewhere.requests == []


# --- the client pool -----------------------------------------------------------------------------


def test_a_client_pool_reuses_clients_across_turns(fake: FakeProvider) -> None:
    async def scenario() -> tuple[int, int, list[str]]:
        pool = ClientPool(max_clients=2)
        config = config_for(fake)
        contents = []
        for _ in range(3):
            result = await stream_turn(config, None, MESSAGES, lambda _t: None, clients=pool)
            contents.append(result.content)
        same = len(pool)
        for key in ("k-one-0000", "k-two-0000", "k-three-00"):  # evicts the least recent
            await stream_turn(
                replace(config, api_key=key), None, MESSAGES, lambda _t: None, clients=pool
            )
        bounded = len(pool)
        ok, _ms, _error = await ping(config, clients=pool)
        assert ok
        await pool.aclose()
        return same, bounded, contents

    same, bounded, contents = asyncio.run(scenario())
    assert (same, bounded) == (1, 2)
    assert contents == ["Hello, world."] * 3
    assert len(fake.requests) == 7
