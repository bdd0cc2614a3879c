"""Fake model providers: real local HTTP servers speaking the OpenAI chat-completions streaming
format and the Anthropic Messages streaming format (Server-Sent Events over chunked HTTP/1.1).

Each request takes the next scripted :class:`Reply` (or the default: a normal streamed answer
with usage) and every request is recorded (method, path, headers, body), so a test can assert
that exactly one request was made (``max_retries=0``) and where the API key went.

A reply can answer normally, wait before its headers or its first event, stall mid-stream
until the test releases it (or the server closes), end the stream cleanly before its terminal
event, drop the connection mid-body, answer an error status with a JSON (or garbage) body and
any headers (``retry-after``, ``retry-after-ms``), send an error event mid-stream, or send raw
SSE lines (garbage).

    with FakeProvider("openai") as fake:
        fake.script(Reply.error(429, "slow down", headers={"retry-after-ms": "1500"}))
        config = ProviderConfig("openai", fake.base_url, "m", api_key="k", allow_private=True)
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = ["FakeProvider", "Recorded", "Reply", "stream_events"]

Kind = Literal["openai", "anthropic"]
#: the longest a stalled or delayed reply waits for the test to release it
_MAX_WAIT = 30.0


@dataclass
class Reply:
    """One scripted answer. ``*_after`` count SSE events sent before the action."""

    status: int = 200
    text_chunks: tuple[str, ...] = ("Hello", ", ", "world", ".")
    input_tokens: int = 11
    output_tokens: int = 7
    finish_reason: str | None = None  # default: "stop" (OpenAI) / "end_turn" (Anthropic)
    headers: dict[str, str] = field(default_factory=dict)
    #: error status body: a dict is sent as JSON, a str as it is
    body: dict[str, Any] | str | None = None
    header_delay: float = 0.0
    first_event_delay: float = 0.0
    stall_after: int | None = None
    cut_after: int | None = None  # end the body cleanly, without the terminal event
    abort_after: int | None = None  # close the socket mid-body (no final chunk)
    error_event_after: int | None = None
    error_event: dict[str, Any] | None = None
    raw_events: tuple[str, ...] | None = None  # sent instead of the generated events
    with_usage: bool = True

    @classmethod
    def ok(cls, *chunks: str, **kwargs: Any) -> Reply:
        return cls(text_chunks=chunks or cls.text_chunks, **kwargs)

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "error",
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """An error status; its body is built in the provider's format when served."""
        body = {"message": message, "type": type, "code": code, "param": param}
        return cls(status=status, body={"_error": body}, headers=dict(headers or {}))


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def _sse(data: dict[str, Any] | str, event: str | None = None) -> str:
    payload = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def _openai_events(reply: Reply, model: str) -> list[str]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0}
        return _sse({**base, "model": model, "choices": choices, **extra})

    events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
    events += [
        chunk([{"index": 0, "delta": {"content": text}, "finish_reason": None}])
        for text in reply.text_chunks
    ]
    events.append(
        chunk([{"index": 0, "delta": {}, "finish_reason": reply.finish_reason or "stop"}])
    )
    if reply.with_usage:
        usage = {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        }
        events.append(chunk([], usage=usage))
    events.append(_sse("[DONE]"))
    return events


def _anthropic_events(reply: Reply, model: str) -> list[str]:
    usage = {"input_tokens": reply.input_tokens, "output_tokens": 1}
    message: dict[str, Any] = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": model,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    events = [
        _sse({"type": "message_start", "message": message}, "message_start"),
        _sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        ),
        _sse({"type": "ping"}, "ping"),
    ]
    events += [
        _sse(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
            "content_block_delta",
        )
        for t in reply.text_chunks
    ]
    events.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    delta = {"stop_reason": reply.finish_reason or "end_turn", "stop_sequence": None}
    events.append(
        _sse(
            {
                "type": "message_delta",
                "delta": delta,
                "usage": {"output_tokens": reply.output_tokens},
            },
            "message_delta",
        )
    )
    events.append(_sse({"type": "message_stop"}, "message_stop"))
    return events


def stream_events(kind: Kind, reply: Reply, model: str) -> list[str]:
    """The SSE events of a normal streamed answer in ``kind``'s format (to splice noise into
    for ``Reply(raw_events=...)``)."""
    return _openai_events(reply, model) if kind == "openai" else _anthropic_events(reply, model)


def _error_body(kind: Kind, status: int, body: dict[str, Any] | str) -> bytes:
    if isinstance(body, str):
        return body.encode()
    spec = body.get("_error")
    if spec is None:
        return json.dumps(body).encode()
    if kind == "openai":
        return json.dumps({"error": spec}).encode()
    default_type = {
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    if status == 400:
        default_type = "invalid_request_error"
    error = {"type": spec.get("type") or default_type, "message": spec["message"]}
    if spec.get("code"):
        error["details"] = {"error_code": spec["code"]}
    return json.dumps({"type": "error", "error": error}).encode()


def _error_event(kind: Kind, error: dict[str, Any]) -> str:
    if kind == "openai":
        return _sse({"error": error})
    return _sse({"type": "error", "error": error}, "error")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return None

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake = self.server.fake
        fake._record(
            Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        expected = "/v1/chat/completions" if fake.kind == "openai" else "/v1/messages"
        if self.path.split("?", 1)[0] != expected:
            self._plain(404, b'{"error": {"message": "no such path"}}')
            return
        reply = fake._next_reply()
        try:
            model = json.loads(body).get("model", "fake-model")
        except ValueError:
            model = "fake-model"
        try:
            self._serve(fake, reply, str(model))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a timeout on its side)

    def _plain(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _serve(self, fake: FakeProvider, reply: Reply, model: str) -> None:
        if reply.header_delay:
            fake._release.wait(reply.header_delay)
        if reply.status != 200:
            self._plain(
                reply.status, _error_body(fake.kind, reply.status, reply.body or ""), reply.headers
            )
            return
        events = (
            list(reply.raw_events)
            if reply.raw_events is not None
            else (
                _openai_events(reply, model)
                if fake.kind == "openai"
                else _anthropic_events(reply, model)
            )
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        if reply.first_event_delay:
            fake._release.wait(reply.first_event_delay)
        for sent, event in enumerate(events):
            if sent == reply.stall_after:
                fake._release.wait(_MAX_WAIT)
            if sent == reply.cut_after:
                break
            if sent == reply.abort_after:
                self.wfile.flush()
                self.connection.shutdown(2)  # no terminating chunk: the body is incomplete
                return
            if sent == reply.error_event_after and reply.error_event is not None:
                self._chunk(_error_event(fake.kind, reply.error_event))
                break
            self._chunk(event)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default listen backlog (5) resets bursts of connections
    fake: FakeProvider


class FakeProvider:
    """A fake provider on 127.0.0.1 and a free port, serving in a background thread."""

    def __init__(self, kind: Kind) -> None:
        self.kind: Kind = kind
        self._lock = threading.Lock()
        self._replies: deque[Reply] = deque()
        self._requests: list[Recorded] = []
        self._release = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """The model config's ``base_url``: OpenAI-compatible servers include ``/v1``, the
        Anthropic SDK adds it itself."""
        return f"{self.url}/v1" if self.kind == "openai" else self.url

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def release(self) -> None:
        """Let stalled and delayed replies go on."""
        self._release.set()

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                break
            time.sleep(0.01)
        return self.requests

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self._requests.append(recorded)

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._replies.popleft() if self._replies else Reply()
