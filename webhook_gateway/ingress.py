"""``POST /api/v1/automations/triggers/<trigger_id>/webhook`` (SPEC 4).

Order of work: size limit (Content-Length, then a capped streaming read) → canonical trigger
id and trigger lookup (404) → signature (401 with its reason + an error event folded per
reason) → disabled automation (202 ignored) → dedup on signed identity (Standard Webhooks:
the signed ``webhook-id`` only; GitHub-style: the delivery headers, and a byte-identical
body within the trigger's replay window) → insert the ``pending`` event with its event type
and headers, and commit → publish → 202, in one unit of work (the publish is its
after-commit work; a failed publish leaves the event ``pending`` for the sweeper and the
answer is still 202, SPEC 4).
The signature comes before the automation's status, so that an unsigned request cannot
learn that a trigger exists and is disabled: it gets the same 401 as for an active one.
A 202 with an event id always means the event is committed. The view stays thin: the
domain logic lives in :mod:`shared.events.ingest`.

A trigger deleted while this process still has it cached fails the event's insert on its
foreign key; the trigger is then reloaded (which caches the miss) and the answer is the
404 of an unknown trigger, not a 500.

Only the canonical spelling of a trigger id is served (lower-case hyphenated UUID, single
slashes): every other spelling of a known id gets the 404 of an unknown one.

The trigger usually comes from the process's cache. Another process may have regenerated the
secret since, so the verdict against a cached snapshot is not final (SPEC 4.2.2, see
:mod:`shared.triggers.lookup`): an ``invalid`` signature is checked again against a fresh
load (throttled per trigger), and an accepted one against a snapshot past its accept age.

Served by :class:`IngressMiddleware` in front of the Flask app, on the raw WSGI environ:
Flask's request context, URL matching and response objects cost about 180 µs of CPU per
request (in-process, against a plain WSGI callable doing the same HMAC check and insert),
as much as the ingest work itself, and the webhook path uses none of them. Everything
else, including other methods on the webhook path (Flask's 405), goes to Flask.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wsgi import get_content_length, get_input_stream

from shared.errors import (
    RETRY_AFTER_SECONDS,
    UNAVAILABLE,
    describe_error,
    error_body,
    is_transient_db_error,
)
from shared.events.ingest import (
    delivery_id_from,
    event_type_from,
    record_bad_signature,
    record_event,
    replay_digest,
    stored_headers,
)
from shared.events.payload import prepare_payload
from shared.infra.broker import event_message
from shared.infra.crypto import Keyring
from shared.triggers.lookup import (
    CachedTrigger,
    TriggerCache,
    TriggerSnapshot,
    load_trigger,
    parse_trigger_id,
)
from shared.triggers.signatures import (
    GITHUB_HEADER,
    STANDARD_SIGNATURE_HEADER,
    Verdict,
    scheme_of,
    verify,
)
from webhook_gateway import access_log
from webhook_gateway.context import Gateway, gateway
from webhook_gateway.metrics import observe

__all__ = ["IngressMiddleware", "bp", "init_app"]

log = logging.getLogger(__name__)
bp = Blueprint("ingress", __name__)

_PATH_PREFIX = "/api/v1/automations/triggers/"
_PATH_SUFFIX = "/webhook"
_RULE = f"{_PATH_PREFIX}<trigger_id>{_PATH_SUFFIX}"
_SLASHES = re.compile(r"//+")
_READ_CHUNK = 64 * 1024
_EXTENSION = "automations.ingress"
#: the 401 messages: the reason first (SPEC 4.2.1's word), then what to fix
_SIGNATURE_MESSAGES = {
    Verdict.MISSING: (
        "signature missing: send X-Hub-Signature-256 (GitHub) or webhook-id, "
        "webhook-timestamp and webhook-signature (Standard Webhooks)"
    ),
    Verdict.INVALID: (
        "signature invalid: it was not made with this trigger's secret over this body"
    ),
    Verdict.TIMESTAMP_OUT_OF_TOLERANCE: (
        "signature timestamp_out_of_tolerance: webhook-timestamp is more than 300 seconds "
        "away from the gateway's clock"
    ),
}
_MALFORMED_MESSAGES = {
    GITHUB_HEADER: "signature malformed: X-Hub-Signature-256 must be sha256=<64 hex digits>",
    STANDARD_SIGNATURE_HEADER: (
        "signature malformed: webhook-timestamp must be an integer (Unix seconds) and "
        "webhook-signature must hold at least one v1,<base64> entry"
    ),
}


@dataclass
class IngressState:
    keyring: Keyring
    triggers: TriggerCache


def init_app(app: Flask) -> None:
    gw: Gateway = app.extensions["automations"]
    state = app.extensions[_EXTENSION] = IngressState(
        keyring=Keyring(gw.settings.keys),
        triggers=TriggerCache(gw.clock, gw.settings.trigger_cache_seconds),
    )
    app.register_blueprint(bp)
    app.wsgi_app = IngressMiddleware(app.wsgi_app, gw, state)  # type: ignore[method-assign]


def _state() -> IngressState:
    return current_app.extensions[_EXTENSION]  # type: ignore[no-any-return]


class _Outcome(Exception):
    """A finished answer; raised to short-circuit the handler."""

    def __init__(self, outcome: str, answer: _Answer) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.answer = answer


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def wsgi_headers(self) -> list[tuple[str, str]]:
        return [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(self.body))),
            ("X-Content-Type-Options", "nosniff"),
            ("Cache-Control", "no-store"),
            *self.headers,
        ]


def _json(status: int, body: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()) -> _Answer:
    return _Answer(status, orjson.dumps(body), headers)


def _error(status: int, code: str, message: str, **headers: str) -> _Answer:
    return _json(status, error_body(code, message), tuple(headers.items()))


def _not_found() -> _Outcome:
    # one body for unknown, malformed and cron ids, so ids cannot be probed
    return _Outcome("not_found", _error(404, "not_found", "no such webhook trigger"))


def _too_large(limit: int) -> _Outcome:
    return _Outcome(
        "too_large",
        _error(413, "payload_too_large", f"request body exceeds the limit of {limit} bytes"),
    )


def _unavailable(message: str = UNAVAILABLE[1]) -> _Outcome:
    return _Outcome(
        "unavailable",
        _error(503, UNAVAILABLE[0], message, **{"Retry-After": str(RETRY_AFTER_SECONDS)}),
    )


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The raw body, never buffering more than ``limit + 1`` bytes. A body without
    ``Content-Length`` (chunked) is read only when the server frames it
    (``wsgi.input_terminated``, as gunicorn does), else it is empty: werkzeug's rule."""
    length = get_content_length(environ)
    if length is not None and length > limit:
        raise _too_large(limit)
    stream = get_input_stream(environ)
    if length is not None:
        # the common case: one read of exactly the announced length (werkzeug's stream
        # stops at Content-Length, so a short body just returns fewer bytes)
        return stream.read(length) if length else b""
    parts: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request headers, names lower-cased (as werkzeug maps them from the environ)."""
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key, name in (("CONTENT_TYPE", "content-type"), ("CONTENT_LENGTH", "content-length")):
        if environ.get(key):
            headers[name] = environ[key]
    return headers


def _signature_header(headers: dict[str, str]) -> str | None:
    for name in (GITHUB_HEADER, STANDARD_SIGNATURE_HEADER):
        if name in headers:
            return name
    return None


def _signature_message(verdict: Verdict, signature_header: str | None) -> str:
    if verdict is Verdict.MALFORMED:
        return _MALFORMED_MESSAGES[signature_header or STANDARD_SIGNATURE_HEADER]
    return _SIGNATURE_MESSAGES[verdict]


def _reject_signature(
    gw: Gateway,
    state: IngressState,
    trigger: TriggerSnapshot,
    verdict: Verdict,
    headers: dict[str, str],
    size: int,
) -> _Outcome:
    """The 401, once the failure is recorded (for a disabled automation's trigger too: the
    request cannot be told apart from one to an active trigger)."""
    signature_header = _signature_header(headers)
    details = {"_signature_header": signature_header, "_original_size": size}
    try:
        with gw.unit_of_work() as uow:
            record_bad_signature(uow.connection, gw.clock, trigger, verdict.value, details)
    except IntegrityError:
        _raise_if_gone(gw, state, trigger.trigger_id)
        log.warning(
            "could not record a bad signature for trigger %s: integrity error",
            trigger.trigger_id,
        )
    except SQLAlchemyError as exc:
        # the answer is still 401: the request is unauthenticated either way
        log.warning(
            "could not record a bad signature for trigger %s: %s",
            trigger.trigger_id,
            describe_error(exc),
        )
    message = _signature_message(verdict, signature_header)
    return _Outcome("bad_signature", _error(401, "invalid_signature", message))


def _load(gw: Gateway, state: IngressState, trigger_id: uuid.UUID) -> TriggerSnapshot | None:
    """A fresh snapshot from the database, which then replaces the cached one."""
    with gw.unit_of_work() as uow:
        trigger = load_trigger(uow.connection, state.keyring, trigger_id)
    state.triggers.put(trigger_id, trigger)
    return trigger


def _raise_if_gone(gw: Gateway, state: IngressState, trigger_id: uuid.UUID) -> None:
    """After a write failed on a foreign key: reload the trigger (the fresh load replaces
    the cached snapshot, so a deleted trigger is cached as a miss) and raise the 404 when it
    is gone. Returns when it still exists (the failure was something else)."""
    fresh = _load(gw, state, trigger_id)
    if fresh is None or not fresh.is_webhook:
        raise _not_found() from None


def _usable(trigger: TriggerSnapshot | None) -> TriggerSnapshot:
    """The trigger if the request can be verified against it, else the final answer (404,
    503). Its automation's status is not looked at here: that is revealed only to a request
    whose signature verified (:func:`_verified`)."""
    if trigger is None or not trigger.is_webhook:
        raise _not_found()
    if trigger.secret_error is not None:
        raise _unavailable(
            "the trigger's secret cannot be decrypted with the configured keys; "
            "the operator must fix AUTOMATIONS_ENCRYPTION_KEYS"
        )
    return trigger


def _recheck(
    state: IngressState, cached: CachedTrigger | None, trigger_id: uuid.UUID, verdict: Verdict
) -> bool:
    """Whether a verdict reached against the cached entry must be checked again against a
    fresh load (SPEC 4.2.2): a failure that depends on the secrets, unless the trigger was
    force-reloaded in the last second; an acceptance by a snapshot past its accept age."""
    if cached is None:
        return False  # the snapshot was loaded for this request
    if verdict is Verdict.INVALID:
        return state.triggers.claim_forced_reload(trigger_id)
    if verdict is Verdict.OK:
        return not state.triggers.may_accept(cached)
    return False  # missing, malformed, out of tolerance: no secret would change them


def _verified(
    gw: Gateway,
    state: IngressState,
    trigger_id: uuid.UUID,
    headers: dict[str, str],
    body: bytes,
) -> TriggerSnapshot:
    """The trigger, once the request's signature is verified against it and its automation
    is not disabled; otherwise raises the final answer (404, 503, 401, then 202 ignored)."""
    cached = state.triggers.entry(trigger_id)
    trigger = _usable(cached.snapshot if cached is not None else _load(gw, state, trigger_id))
    now = gw.clock.now()
    verdict = verify(headers, body, trigger.secrets_at(now), now.timestamp())
    if _recheck(state, cached, trigger_id, verdict):
        trigger = _usable(_load(gw, state, trigger_id))
        verdict = verify(headers, body, trigger.secrets_at(now), now.timestamp())
    if verdict is not Verdict.OK:
        raise _reject_signature(gw, state, trigger, verdict, headers, len(body))
    if trigger.disabled:
        raise _Outcome("ignored", _json(202, {"status": "ignored"}))
    return trigger


def _handle(
    gw: Gateway,
    state: IngressState,
    raw_trigger_id: str,
    body: bytes,
    environ: dict[str, Any],
) -> _Outcome:
    trigger_id = parse_trigger_id(raw_trigger_id)
    if trigger_id is None:
        raise _not_found()
    headers = _headers(environ)
    trigger = _verified(gw, state, trigger_id, headers, body)
    scheme = scheme_of(headers)

    payload = prepare_payload(body, gw.settings.stored_payload_max_bytes)
    # The deduplicating insert; the process_event message goes out after it committed.
    try:
        with gw.unit_of_work() as uow:
            recorded = record_event(
                uow.connection,
                gw.clock,
                trigger,
                delivery_id_from(headers, scheme),
                payload,
                event_type=event_type_from(headers, body, payload),
                headers=stored_headers(headers),
                body_sha256=replay_digest(trigger, scheme, body),
            )
            if not recorded.duplicate:
                uow.enqueue(*event_message(recorded.event_id))
    except IntegrityError:
        # the cached trigger was deleted since: its foreign key failed (SPEC 4.2: 404)
        _raise_if_gone(gw, state, trigger_id)
        raise
    if recorded.duplicate:
        return _Outcome(
            "duplicate", _json(202, {"event_id": str(recorded.event_id), "duplicate": True})
        )
    return _Outcome("accepted", _json(202, {"event_id": str(recorded.event_id)}))


def _internal_error() -> _Outcome:
    return _Outcome("error", _error(500, "internal_error", "internal server error"))


def serve(
    gw: Gateway, state: IngressState, raw_trigger_id: str, environ: dict[str, Any]
) -> tuple[_Outcome, int | None]:
    """Handle one webhook request and count it in the metrics; returns its outcome and the
    body size read (None when the body was refused before reading)."""
    started = time.perf_counter()
    body_size: int | None = None
    try:
        body = _read_body(environ, gw.settings.max_body_bytes)
        body_size = len(body)
        try:
            result = _handle(gw, state, raw_trigger_id, body, environ)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # Pooled connections are not pinged on checkout (a round trip per request);
            # one that died with a database restart fails here, and SQLAlchemy has now
            # discarded the pool's older connections. Nothing was recorded on it (or, if
            # the commit went through, the delivery id finds it), so try once more.
            result = _handle(gw, state, raw_trigger_id, body, environ)
    except _Outcome as short:
        result = short
    except SQLAlchemyError as exc:
        if is_transient_db_error(exc):
            log.warning("database unavailable: %s", describe_error(exc))
            result = _unavailable()
        else:
            log.error("database error while receiving a webhook: %s", describe_error(exc))
            result = _internal_error()
    except Exception:
        log.exception("unexpected error while receiving a webhook")
        result = _internal_error()
    observe(result.outcome, time.perf_counter() - started)
    return result, body_size


_STATUS_LINES = {code: f"{code} {HTTP_STATUS_CODES[code].upper()}" for code in HTTP_STATUS_CODES}


def _webhook_trigger_id(path: str) -> str | None:
    """The trigger id segment of a webhook path, else None (any segment, malformed ones
    included, so that every unknown id gets the same 404). A path that is a webhook path
    only once its doubled slashes are merged gives ``""`` (answered 404 too): Flask would
    redirect it to the canonical path instead."""
    if not path.endswith(_PATH_SUFFIX):
        return None
    if path.startswith(_PATH_PREFIX):
        segment = path[len(_PATH_PREFIX) : -len(_PATH_SUFFIX)]
        if "/" not in segment:
            return segment
    if "//" in path and _webhook_trigger_id(_SLASHES.sub("/", path)) is not None:
        return ""
    return None


class IngressMiddleware:
    """Serves ``POST`` on the webhook path before Flask, passes everything else to Flask.

    It writes the same access-log line and metrics as a request through Flask would.
    """

    def __init__(self, app: Any, gw: Gateway, state: IngressState) -> None:
        self.app = app
        self.gw = gw
        self.state = state

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") == "POST":
            path = environ.get("PATH_INFO", "")
            trigger_id = _webhook_trigger_id(path)
            if trigger_id is not None:
                return self._serve(environ, start_response, path, trigger_id)
        return self.app(environ, start_response)

    def _serve(
        self, environ: dict[str, Any], start_response: Any, path: str, trigger_id: str
    ) -> list[bytes]:
        started = time.perf_counter()
        result, body_size = serve(self.gw, self.state, trigger_id, environ)
        answer = result.answer
        access_log.write(
            "POST",
            path,
            answer.status,
            result.outcome,
            started,
            body_size if body_size is not None else get_content_length(environ),
            environ.get("REMOTE_ADDR"),
        )
        start_response(_STATUS_LINES[answer.status], answer.wsgi_headers())
        return [answer.body]


@bp.post(_RULE, merge_slashes=False)
def receive_webhook(trigger_id: str) -> Response:
    """Flask's route for the webhook path, so that other methods get a 405. The middleware
    answers every ``POST`` first; this view gives the same answer when the Flask app is
    called without it (``app.wsgi_app`` unwrapped)."""
    result, body_size = serve(gateway(), _state(), trigger_id, request.environ)
    access_log.set_outcome(result.outcome, body_size)
    answer = result.answer
    return Response(answer.body, answer.status, headers=answer.wsgi_headers())
