"""SPEC 9's error table, row by row and in order (first match wins), and redaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.runner.errors import (
    DETAIL_MAX,
    ChatError,
    IdleTimeout,
    NoModelConfig,
    StartupTimeout,
    StreamTruncated,
    UnknownProvider,
    UsageLimitExceeded,
    classify,
    redact,
)
from shared.runner.outbound import OutboundURLRefused

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
KEY = "sk-live-4f9c2a7e1b3d5f8a0c6e"


def _request() -> httpx2.Request:
    return httpx2.Request("POST", "https://provider.test/v1/chat/completions")


def oai(status: int, message: str = "error", headers: dict[str, str] | None = None, **error: Any):
    """An OpenAI status error as the SDK raises it (body: the unwrapped ``error`` object)."""
    body = {"message": message, "type": error.pop("type", None), **error}
    response = httpx2.Response(
        status, headers=headers or {}, json={"error": body}, request=_request()
    )
    return openai.APIStatusError(message, response=response, body=body)


def ant(
    status: int,
    message: str = "error",
    type: str = "api_error",
    code: str | None = None,
    headers: dict[str, str] | None = None,
):
    """An Anthropic status error as the SDK raises it (body: the whole ``{"type": "error"}``)."""
    error: dict[str, Any] = {"type": type, "message": message}
    if code:
        error["details"] = {"error_code": code}
    body = {"type": "error", "error": error}
    response = httpx2.Response(status, headers=headers or {}, json=body, request=_request())
    return anthropic.APIStatusError(f"{status} {message}", response=response, body=body)


# (case id, exception, provider, expected kind, expected retryable)
TABLE: list[tuple[str, BaseException, str | None, str, bool]] = [
    # 1. 529, or an error saying "overloaded"
    ("529 openai", oai(529, "busy"), "openai", "overloaded", True),
    ("529 anthropic", ant(529, "Overloaded", "overloaded_error"), "anthropic", "overloaded", True),
    (
        "503 saying overloaded beats row 6",
        oai(503, "The engine is overloaded"),
        "openai",
        "overloaded",
        True,
    ),
    (
        "mid-stream overloaded_error (HTTP 200)",
        anthropic.APIStatusError(
            "x",
            response=httpx2.Response(200, request=_request()),
            body={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ),
        "anthropic",
        "overloaded",
        True,
    ),
    # 2. our usage limit, or provider quota / billing exhausted
    ("our usage limit", UsageLimitExceeded("monthly limit"), "openai", "usage_limit", False),
    (
        "429 insufficient_quota beats row 5",
        oai(
            429,
            "You exceeded your current quota",
            code="insufficient_quota",
            type="insufficient_quota",
        ),
        "openai",
        "usage_limit",
        False,
    ),
    (
        "anthropic 402 billing",
        ant(402, "billing", "billing_error"),
        "anthropic",
        "usage_limit",
        False,
    ),
    (
        "anthropic 400 credit balance beats row 8",
        ant(
            400,
            "Your credit balance is too low to access the Anthropic API",
            "invalid_request_error",
        ),
        "anthropic",
        "usage_limit",
        False,
    ),
    (
        "anthropic 429 spend limit",
        ant(429, "limit", "rate_limit_error", "enforced_spend_limit_reached"),
        "anthropic",
        "usage_limit",
        False,
    ),
    # 3. 401
    ("401 openai", oai(401, "Incorrect API key provided"), "openai", "auth", False),
    (
        "401 anthropic",
        ant(401, "invalid x-api-key", "authentication_error"),
        "anthropic",
        "auth",
        False,
    ),
    # 4. 403, unless it names a model or parameter
    ("403 plain", oai(403, "Country not supported"), "openai", "auth", False),
    (
        "403 naming a model is config",
        oai(403, "You do not have access to the model gpt-9"),
        "openai",
        "config",
        False,
    ),
    (
        "403 with param is config",
        oai(403, "not allowed", param="temperature"),
        "openai",
        "config",
        False,
    ),
    ("403 anthropic", ant(403, "forbidden", "permission_error"), "anthropic", "auth", False),
    # 5. 429
    ("429", oai(429, "Rate limit reached for requests"), "openai", "rate_limit", True),
    ("429 anthropic", ant(429, "slow down", "rate_limit_error"), "anthropic", "rate_limit", True),
    # 6. 408/502/503/504, connection reset or refused, truncated stream
    ("408", oai(408, "timeout"), "openai", "timeout", True),
    ("502", oai(502, "bad gateway"), "openai", "timeout", True),
    ("503", ant(503, "unavailable"), "anthropic", "timeout", True),
    ("504", oai(504, "gateway timeout"), "openai", "timeout", True),
    (
        "connection refused (SDK)",
        openai.APIConnectionError(request=_request()),
        "openai",
        "timeout",
        True,
    ),
    ("SDK read timeout", anthropic.APITimeoutError(_request()), "anthropic", "timeout", True),
    (
        "connection reset",
        ConnectionResetError(104, "Connection reset by peer"),
        "openai",
        "timeout",
        True,
    ),
    (
        "connection refused",
        ConnectionRefusedError(111, "Connection refused"),
        "openai",
        "timeout",
        True,
    ),
    ("truncated stream", StreamTruncated("no message_stop"), "anthropic", "timeout", True),
    # 7. startup / idle timeouts
    ("no first chunk", StartupTimeout(60), "openai", "startup_timeout", True),
    ("idle", IdleTimeout(300), "openai", "timeout", True),
    # 8. 404 model, 400 invalid model or parameter, no model config
    (
        "404 model",
        oai(404, "The model `gpt-9` does not exist", code="model_not_found"),
        "openai",
        "config",
        False,
    ),
    (
        "404 ollama model",
        oai(404, 'model "llama9" not found, try pulling it first'),
        "openai",
        "config",
        False,
    ),
    (
        "400 invalid model",
        ant(400, "model: invalid model name", "invalid_request_error"),
        "anthropic",
        "config",
        False,
    ),
    (
        "400 param",
        oai(
            400,
            "Unsupported parameter: 'max_tokens'",
            param="max_tokens",
            code="unsupported_parameter",
        ),
        "openai",
        "config",
        False,
    ),
    (
        "400 anthropic field",
        ant(400, "temperature: range: 0..1", "invalid_request_error"),
        "anthropic",
        "config",
        False,
    ),
    ("no model config", NoModelConfig("deleted"), None, "config", False),
    ("refused base_url", OutboundURLRefused("base_url", "refused"), "openai", "config", False),
    ("unknown provider", UnknownProvider("unknown provider 'x'"), "x", "config", False),
    # 9. 500
    ("500", oai(500, "internal"), "openai", "generic", True),
    ("500 anthropic", ant(500, "internal", "api_error"), "anthropic", "generic", True),
    # 10. anything else
    ("501", oai(501, "not implemented"), "openai", "generic", False),
    ("404 not naming a model", oai(404, "Not Found"), "openai", "generic", False),
    (
        "400 not naming a parameter",
        ant(400, "prompt is too long: 215000 tokens > 200000 maximum", "invalid_request_error"),
        "anthropic",
        "generic",
        False,
    ),
    (
        "garbage JSON",
        json.JSONDecodeError("Expecting value", "garbage", 0),
        "openai",
        "generic",
        False,
    ),
    ("a bug", RuntimeError("boom"), "openai", "generic", False),
]


@pytest.mark.parametrize(
    ("exc", "provider", "kind", "retryable"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_classification_table(
    exc: BaseException, provider: str | None, kind: str, retryable: bool
) -> None:
    error = classify(exc, provider, now=NOW)
    assert (error.kind, error.retryable) == (kind, retryable)
    assert error.provider == provider
    assert error.message


def test_status_code_is_the_http_status_and_none_without_one() -> None:
    assert classify(oai(429), "openai").status_code == 429
    assert classify(StreamTruncated("x"), "openai").status_code is None
    mid_stream = anthropic.APIStatusError(
        "x",
        response=httpx2.Response(200, request=_request()),
        body={"type": "error", "error": {"type": "api_error", "message": "boom"}},
    )
    error = classify(mid_stream, "anthropic")
    assert error.status_code is None
    assert (error.kind, error.retryable) == ("generic", True)  # api_error means a 500


def test_retry_after_is_kept_from_the_response_headers() -> None:
    assert (
        classify(oai(429, headers={"retry-after-ms": "2500"}), "openai").retry_after_seconds == 2.5
    )
    assert classify(ant(529, headers={"retry-after": "7"}), "anthropic").retry_after_seconds == 7
    dated = oai(503, headers={"Retry-After": "Fri, 01 May 2026 12:00:30 GMT"})
    assert classify(dated, "openai", now=NOW).retry_after_seconds == 30
    assert classify(oai(429), "openai").retry_after_seconds is None


def test_to_json_has_exactly_the_stored_keys_and_a_bounded_detail() -> None:
    error = classify(oai(400, "x" * 2000, param="p"), "openai")
    stored = error.to_json()
    assert set(stored) == {"message", "kind", "provider", "retryable", "status_code", "detail"}
    assert len(stored["detail"]) <= DETAIL_MAX
    assert "retry_after_seconds" not in stored
    assert json.loads(json.dumps(stored)) == stored
    assert ChatError.from_json(stored) == error


def test_from_json_tolerates_legacy_and_odd_values() -> None:
    error = ChatError.from_json({"message": "old text error", "kind": "mystery"})
    assert (error.kind, error.retryable, error.provider, error.status_code) == (
        "generic",
        False,
        None,
        None,
    )


# --- redaction -----------------------------------------------------------------------------------

LEAKS = [
    oai(401, f"Incorrect API key provided: {KEY}"),
    ant(401, f"invalid x-api-key {KEY}", "authentication_error"),
    RuntimeError(f"request failed; headers={{'Authorization': 'Bearer {KEY}'}}"),
    RuntimeError(f"x-api-key: {KEY}"),
    oai(500, f"upstream said Authorization: Bearer {KEY}"),
    ConnectionResetError(f"reset while sending api_key={KEY}"),
]


@pytest.mark.parametrize("exc", LEAKS, ids=range(len(LEAKS)))
def test_the_key_never_appears_in_the_error(exc: BaseException) -> None:
    error = classify(exc, "openai", secrets=[KEY])
    assert KEY not in json.dumps(error.to_json())
    assert KEY not in repr(error)
    # and also without being told the key: it looks like one, or sits in a header
    assert KEY not in json.dumps(classify(exc, "openai").to_json())


def test_bearer_tokens_and_header_values_are_scrubbed_from_text() -> None:
    text = redact("Authorization: Bearer abc.def-123456789 and x-api-key=hunter2hunter2")
    assert "abc.def-123456789" not in text
    assert "hunter2hunter2" not in text
    assert redact("nothing secret here: model gpt-4o") == "nothing secret here: model gpt-4o"


@given(
    st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=8, max_size=64),
    st.text(max_size=200),
    st.text(max_size=200),
)
def test_a_given_secret_is_always_scrubbed(secret: str, before: str, after: str) -> None:
    error = classify(RuntimeError(before + secret + after), "openai", secrets=[secret])
    assert secret not in json.dumps(error.to_json())
