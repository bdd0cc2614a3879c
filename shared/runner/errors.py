"""Structured chat errors and their one classification (SPEC 9 "Errors").

One classification (kind, retryable, status, provider) drives both the retry decision
(:mod:`shared.runner.retry`) and what the user sees: the chat's ``last_error`` and the
stream's ``error``/``retry`` events.

:func:`classify` takes what a turn failed with: an exception of the ``openai`` or ``anthropic``
SDK, a connection error, or one of the runner's own signals below (a truncated stream, a
startup or idle timeout, the usage limit, a missing model config) and applies SPEC 9's table,
first match wins. Text that reaches ``message`` or ``detail`` is scrubbed of the API key and of
anything that looks like a credential or an authorization header value.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anthropic
import openai

from shared.runner.outbound import OutboundURLRefused
from shared.runner.retry import parse_retry_after

__all__ = [
    "DETAIL_MAX",
    "KINDS",
    "ChatError",
    "IdleTimeout",
    "NoModelConfig",
    "StartupTimeout",
    "StreamTruncated",
    "TurnFailed",
    "TurnSignal",
    "UnknownProvider",
    "UsageLimitExceeded",
    "classify",
    "describe",
    "redact",
]

DETAIL_MAX = 500
KINDS = (
    "overloaded",
    "usage_limit",
    "auth",
    "rate_limit",
    "timeout",
    "startup_timeout",
    "config",
    "generic",
)
_PROVIDER_NAMES = {"openai": "OpenAI-compatible provider", "anthropic": "Anthropic"}


@dataclass(frozen=True, slots=True)
class ChatError:
    """A classified failure of a turn. ``retry_after_seconds`` (the provider's hint) is used
    by the retry decision and is not stored."""

    message: str
    kind: str
    provider: str | None
    retryable: bool
    status_code: int | None = None
    detail: str | None = None
    retry_after_seconds: float | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The chat's ``last_error``: exactly these six keys, ``detail`` at most 500 chars."""
        return {
            "message": self.message,
            "kind": self.kind,
            "provider": self.provider,
            "retryable": self.retryable,
            "status_code": self.status_code,
            "detail": self.detail[:DETAIL_MAX] if self.detail else self.detail,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChatError:
        """Read a stored ``last_error`` back (unknown or missing kinds become ``generic``)."""
        kind = data.get("kind")
        status = data.get("status_code")
        detail = data.get("detail")
        provider = data.get("provider")
        return cls(
            message=str(data.get("message") or ""),
            kind=kind if kind in KINDS else "generic",
            provider=provider if isinstance(provider, str) else None,
            retryable=bool(data.get("retryable")),
            status_code=status if isinstance(status, int) else None,
            detail=detail if isinstance(detail, str) else None,
        )


# --- the runner's own signals ----------------------------------------------------------------


class TurnSignal(Exception):
    """A failure the runner detects itself (no exception of an SDK behind it)."""


class StreamTruncated(TurnSignal):
    """The stream ended before its terminal event (OpenAI: no ``finish_reason``; Anthropic: no
    ``message_stop``)."""


class StartupTimeout(TurnSignal):
    """No first chunk within ``startup_timeout_seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no first chunk within {seconds:g} s")
        self.seconds = seconds


class IdleTimeout(TurnSignal):
    """No chunk for ``stream_idle_timeout_seconds`` after the stream started."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no chunk for {seconds:g} s")
        self.seconds = seconds


class UsageLimitExceeded(TurnSignal):
    """Our own monthly token limit (organization or per-user override) is reached."""


class NoModelConfig(TurnSignal):
    """The chat (or its automation) has no model config, e.g. it was deleted."""


class UnknownProvider(TurnSignal):
    """The model config names a provider this service does not speak."""


class TurnFailed(Exception):
    """A turn failed; ``error`` is the classified, redacted :class:`ChatError`."""

    def __init__(self, error: ChatError) -> None:
        super().__init__(error.message)
        self.error = error


# --- redaction ---------------------------------------------------------------------------------

_CREDENTIAL_PATTERNS = (
    # "Authorization: Bearer x", "x-api-key: x", "api_key=x", "'api-key': 'x'"
    re.compile(
        r"(?i)((?:proxy-)?authorization|x-api-key|api[-_]?key|access[-_]?token|secret)"
        r"(['\"]?\s*[:=]\s*['\"]?)(?:bearer\s+|basic\s+)?[^\s'\",;}]+"
    ),
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    # provider key shapes: sk-..., sk-ant-..., sk-proj-..., and long opaque tokens
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
    re.compile(r"\b[A-Za-z0-9_-]*[0-9][A-Za-z0-9_-]*[A-Za-z][A-Za-z0-9_-]{30,}\b"),
)
_REDACTED = "[redacted]"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without the given secrets and without anything shaped like a credential or an
    authorization header value (``Authorization``/``x-api-key`` values, bearer tokens,
    ``sk-...`` keys, long opaque tokens). Over-redaction is preferred to a leak."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, _REDACTED)
    text = _CREDENTIAL_PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}{_REDACTED}", text)
    text = _CREDENTIAL_PATTERNS[1].sub(lambda m: f"{m.group(1)} {_REDACTED}", text)
    for pattern in _CREDENTIAL_PATTERNS[2:]:
        text = pattern.sub(_REDACTED, text)
    return text


# --- the facts an error carries -----------------------------------------------------------------


@dataclass(slots=True)
class _Facts:
    status: int | None = None  # the HTTP status, unless the error came in a 200 stream
    effective_status: int | None = None  # the status, or what a mid-stream error type means
    type: str | None = None  # error.type (both providers)
    code: str | None = None  # OpenAI error.code / Anthropic error.details.error_code
    param: str | None = None  # OpenAI error.param
    message: str = ""  # the provider's own message (or the exception text)
    headers: Mapping[str, str] | None = None


#: what an error ``type`` (sent mid-stream with HTTP 200, or by a proxy) means as a status
_TYPE_STATUS = {
    # Anthropic
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "api_error": 500,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "invalid_request_error": 400,
    "billing_error": 402,
    "timeout_error": 504,
    "request_too_large": 413,
    # OpenAI
    "server_error": 500,
    "rate_limit_exceeded": 429,
    "requests": 429,
    "tokens": 429,
    "insufficient_quota": 402,
}


def _error_object(body: object) -> Mapping[str, Any]:
    """The ``error`` object of an error body (OpenAI passes it unwrapped, Anthropic wrapped)."""
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping):
            return inner
        return body
    return {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _facts(exc: BaseException) -> _Facts:
    facts = _Facts(message=str(exc))
    if isinstance(exc, openai.APIError | anthropic.APIError):
        error = _error_object(exc.body)
        facts.message = _str(error.get("message")) or exc.message
        facts.type = _str(error.get("type"))
        code = error.get("code")
        facts.code = str(code) if isinstance(code, str | int) else None
        facts.param = _str(error.get("param"))
        details = error.get("details")
        if facts.code is None and isinstance(details, Mapping):
            facts.code = _str(details.get("error_code"))
    if isinstance(exc, openai.APIStatusError | anthropic.APIStatusError):
        facts.headers = exc.response.headers
        if exc.status_code >= 300:  # not a mid-stream error event (sent with 200)
            facts.status = exc.status_code
    facts.effective_status = facts.status
    if facts.effective_status is None:
        facts.effective_status = _TYPE_STATUS.get(facts.type or "") or _TYPE_STATUS.get(
            facts.code or ""
        )
    return facts


def _is_connection_failure(exc: BaseException) -> bool:
    """Connection reset, refused, dropped mid-body, DNS failure, or the SDK's own timeout."""
    if isinstance(exc, openai.APIConnectionError | anthropic.APIConnectionError):
        return True
    return isinstance(exc, ConnectionError | TimeoutError | socket.gaierror)


_QUOTA = re.compile(
    r"(?i)insufficient[_ ]quota|exceeded your current quota|quota[_ ]exceeded|credit balance"
    r"|billing|spend[_ ]limit|payment[_ ]required"
)
_QUOTA_CODES = {
    "insufficient_quota",
    "billing_error",
    "billing_hard_limit_reached",
    "contract_spend_limit_reached",
    "enforced_spend_limit_reached",
    "linked_organization_spend_limit_reached",
    "linked_organization_billing_unavailable",
}
_NAMES_MODEL_OR_PARAM = re.compile(r"(?i)\bmodels?\b|\bparam(?:eter)?s?\b|unsupported value")
_PARAM_CODES = {
    "model_not_found",
    "invalid_model",
    "unsupported_parameter",
    "unsupported_value",
    "invalid_value",
    "unknown_parameter",
    "integer_below_min_value",
    "integer_above_max_value",
    "decimal_above_max_value",
    "decimal_below_min_value",
}
#: Anthropic's 400 messages name the offending field first: "temperature: range: 0..1"
_FIELD_PREFIX = re.compile(r"^[a-z_][\w.\[\]]*: ")


def _names_model_or_param(facts: _Facts) -> bool:
    return bool(
        facts.param
        or (facts.code in _PARAM_CODES)
        or _NAMES_MODEL_OR_PARAM.search(facts.message)
        or _FIELD_PREFIX.match(facts.message)
    )


def _rule(exc: BaseException, facts: _Facts) -> tuple[str, bool, str]:
    """SPEC 9's table, first match wins: (kind, retryable, headline)."""
    status = facts.effective_status
    text = " ".join(filter(None, (facts.message, facts.type, facts.code)))
    if status == 529 or "overloaded" in text.lower():
        return "overloaded", True, "{p} is overloaded."
    if isinstance(exc, UsageLimitExceeded):
        return "usage_limit", False, str(exc) or "The monthly token limit is reached."
    if status == 402 or facts.code in _QUOTA_CODES or facts.type in _QUOTA_CODES:
        return "usage_limit", False, "{p}: the quota or billing limit of the account is exhausted."
    if status is not None and _QUOTA.search(facts.message) and status in (400, 403, 429):
        return "usage_limit", False, "{p}: the quota or billing limit of the account is exhausted."
    if status == 401:
        return "auth", False, "{p} rejected the API key."
    if status == 403:
        if _names_model_or_param(facts):
            return "config", False, "{p} refused the model or a parameter."
        return "auth", False, "{p} denied access."
    if status == 429:
        return "rate_limit", True, "{p} rate limit reached."
    if isinstance(exc, StreamTruncated):
        return "timeout", True, "The stream from {p} closed before it finished."
    if status in (408, 502, 503, 504):
        return "timeout", True, "{p} did not answer in time."
    if isinstance(exc, StartupTimeout):
        return "startup_timeout", True, "{p} sent nothing within the startup timeout."
    if isinstance(exc, IdleTimeout):
        return "timeout", True, "{p} stopped sending within the stream idle timeout."
    if status is None and _is_connection_failure(exc):
        return "timeout", True, "The connection to {p} failed."
    if isinstance(exc, NoModelConfig):
        return "config", False, "The chat has no model config."
    if isinstance(exc, OutboundURLRefused):
        return "config", False, "The base URL of {p} is not allowed."
    if isinstance(exc, UnknownProvider):
        return "config", False, "The model config names an unknown provider."
    if status == 404 and (_NAMES_MODEL_OR_PARAM.search(facts.message) or facts.param):
        return "config", False, "{p} does not know the model."
    if status in (400, 422) and _names_model_or_param(facts):
        return "config", False, "{p} rejected the model or a parameter."
    if status == 500:
        return "generic", True, "{p} failed with an internal error."
    return "generic", False, "The turn failed."


def classify(
    exc: BaseException,
    provider: str | None,
    *,
    secrets: Iterable[str | None] = (),
    now: datetime | None = None,
) -> ChatError:
    """The :class:`ChatError` for what a turn failed with.

    ``secrets`` (the API key) are scrubbed from all text; ``now`` dates a ``retry-after``
    HTTP date. The provider's ``retry-after`` hint is kept in ``retry_after_seconds``.
    """
    facts = _facts(exc)
    kind, retryable, headline = _rule(exc, facts)
    name = _PROVIDER_NAMES.get(provider or "", provider or "the provider")
    message = headline.replace("{p}", name)
    message = message[0].upper() + message[1:]
    if facts.status is not None:
        message = f"{message[:-1]} (HTTP {facts.status})."
    tags = ", ".join(filter(None, (facts.type, facts.code)))
    detail = (
        facts.message if isinstance(exc, TurnSignal) else f"{type(exc).__name__}: {facts.message}"
    )
    if tags:
        detail = f"{detail} [{tags}]"
    secret_list = list(secrets)
    return ChatError(
        message=redact(message, secret_list),
        kind=kind,
        provider=provider,
        retryable=retryable,
        status_code=facts.status,
        detail=redact(_one_line(detail), secret_list)[:DETAIL_MAX] or None,
        retry_after_seconds=parse_retry_after(facts.headers, now or datetime.now(UTC)),
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def describe(error: ChatError) -> str:
    """One line for logs (never contains more than ``to_json`` does)."""
    return json.dumps(error.to_json(), separators=(",", ":"))
