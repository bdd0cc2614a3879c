"""`chats show | send | follow` against a local HTTP server speaking the API's JSON and
Server-Sent Events (the real stream endpoint has its own tests: tests/api/test_stream.py)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner, Result

from shared.cli import main

TOKEN = "t0ken-for-the-cli-tests"
CHAT_ID = str(uuid.uuid4())
USER_MSG = {
    "id": str(uuid.uuid4()),
    "role": "user",
    "content": "Why did the deploy fail?",
    "created_at": "2026-12-06T10:00:00Z",
    "event_id": None,
    "model": None,
    "input_tokens": None,
    "output_tokens": None,
    "finish_reason": None,
}
REPLY = {
    **USER_MSG,
    "id": str(uuid.uuid4()),
    "role": "assistant",
    "content": "Hello there",
    "created_at": "2026-12-06T10:00:03Z",
    "model": "gpt-4o-mini",
    "input_tokens": 12,
    "output_tokens": 40,
    "finish_reason": "stop",
}
ERROR = {
    "message": "the provider is rate limiting",
    "kind": "rate_limit",
    "provider": "openai",
    "retryable": True,
    "status_code": 429,
    "detail": None,
}
RETRY = {
    "attempt": 2,
    "kind": "rate_limit",
    "delay_ms": 1500,
    "retrying_at": "2026-12-06T10:00:05Z",
}
CHAT = {
    "id": CHAT_ID,
    "title": "deploy failed",
    "status": "pending",
    "labels": {"repo": "acme/api"},
    "last_error": ERROR,
    "retry": RETRY,
    "messages": [USER_MSG, REPLY],
}


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


STREAM = b"".join(
    [
        sse("snapshot", {"status": "pending", "retry": None, "last_error": None,
                         "messages": [USER_MSG]}),
        b": keep-alive\n\n",
        sse("status", {"status": "running"}),
        sse("delta", {"text": "Hel"}),
        sse("delta", {"text": "lo there"}),
        sse("message", {"message": REPLY}),
        sse("status", {"status": "waiting"}),
        sse("retry", {"retry": RETRY}),
        sse("error", {"last_error": ERROR}),
    ]
)  # fmt: skip


class Handler(BaseHTTPRequestHandler):
    posted: list[Any] = []
    #: statuses the chat answers with, one per GET, before it settles on CHAT's own
    statuses: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any, ctype: str = "application/json") -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._reply(401, {"code": "unauthorized", "message": "bad token"})
            return False
        return True

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path == f"/api/v1/chats/{CHAT_ID}":
            status = Handler.statuses.pop(0) if Handler.statuses else CHAT["status"]
            self._reply(200, {**CHAT, "status": status})
        elif self.path == f"/api/v1/chats/{CHAT_ID}/stream":
            self._reply(200, STREAM, "text/event-stream")
        else:
            self._reply(404, {"code": "not_found", "message": "chat x not found"})

    def do_POST(self) -> None:
        if not self._authorized():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == f"/api/v1/chats/{CHAT_ID}/messages":
            Handler.posted.append(body)
            self._reply(201, {**USER_MSG, "id": "m-new", "content": body["content"]})
        else:
            self._reply(404, {"code": "not_found", "message": "chat x not found"})


@pytest.fixture
def api_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Handler.posted = []
    Handler.statuses = []
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def run(url: str, *args: str) -> Result:
    env = {"AUTOMATIONS_URL": url, "AUTOMATIONS_TOKEN": TOKEN, "AUTOMATIONS_STREAM_URL": ""}
    return CliRunner().invoke(main, ["chats", *args], env=env, catch_exceptions=False)


def test_show_includes_replies_error_and_retry(api_url: str) -> None:
    result = run(api_url, "show", CHAT_ID)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "--- user · 2026-12-06T10:00:00Z\nWhy did the deploy fail?" in out
    assert "--- assistant · 2026-12-06T10:00:03Z\nHello there\n" in out
    assert "(gpt-4o-mini · 12 in / 40 out tokens · finish: stop)" in out
    assert (
        "last error  rate_limit (openai, HTTP 429, retryable): the provider is rate limiting" in out
    )
    assert "retry       attempt 2 failed (rate_limit); retrying in 1.5 s" in out
    assert "status" in out and "pending" in out


def test_show_wait_waits_out_a_turn(api_url: str) -> None:
    Handler.statuses = ["pending", "running", "running", "waiting"]
    result = run(api_url, "show", CHAT_ID, "--wait", "30", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "waiting"
    assert Handler.statuses == []  # asked until the turn was over, not longer


def test_show_wait_gives_up_after_its_time(api_url: str) -> None:
    Handler.statuses = ["running"] * 1000
    result = run(api_url, "show", CHAT_ID, "--wait", "0.6", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "running"
    assert len(Handler.statuses) >= 990  # a few polls, then the chat as it is


def test_show_json_is_the_api_answer(api_url: str) -> None:
    result = run(api_url, "show", CHAT_ID, "--json")
    assert json.loads(result.stdout) == CHAT


def test_send_posts_a_message(api_url: str) -> None:
    result = run(api_url, "send", CHAT_ID, "and now?")
    assert result.exit_code == 0, result.output
    assert Handler.posted == [{"content": "and now?"}]
    assert f"message m-new posted to chat {CHAT_ID}" in result.stdout
    result = run(api_url, "send", CHAT_ID, "again", "--json")
    assert json.loads(result.stdout)["content"] == "again"


def test_send_to_an_unknown_chat_fails_with_the_api_message(api_url: str) -> None:
    result = run(api_url, "send", str(uuid.uuid4()), "hi")
    assert result.exit_code == 1
    assert "chat x not found (HTTP 404, not_found)" in result.stderr


def test_follow_prints_deltas_messages_and_status(api_url: str) -> None:
    result = run(api_url, "follow", CHAT_ID, "--no-reconnect")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "\n--- user · 2026-12-06T10:00:00Z\nWhy did the deploy fail?\n"
        "[status: pending]\n"
        "[status: running]\n"
        "\n--- assistant (writing)\n"
        "Hello there\n"  # the deltas, as they came; the stored reply is not printed again
        "(gpt-4o-mini · 12 in / 40 out tokens · finish: stop)\n"
        "[status: waiting]\n"
        "[retry: attempt 2 failed (rate_limit); retrying in 1.5 s, at 2026-12-06T10:00:05Z]\n"
        "[error: rate_limit (openai, HTTP 429, retryable): the provider is rate limiting]\n"
    )


def test_follow_json_prints_one_object_per_event(api_url: str) -> None:
    result = run(api_url, "follow", CHAT_ID, "--no-reconnect", "--json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [x["event"] for x in lines] == [
        "snapshot",
        "status",
        "delta",
        "delta",
        "message",
        "status",
        "retry",
        "error",
    ]
    assert lines[2]["data"] == {"text": "Hel"}
    assert lines[4]["data"]["message"]["id"] == REPLY["id"]


def test_follow_a_chat_one_may_not_read(api_url: str) -> None:
    result = run(api_url, "follow", str(uuid.uuid4()))
    assert result.exit_code == 1
    assert "not found" in result.stderr
