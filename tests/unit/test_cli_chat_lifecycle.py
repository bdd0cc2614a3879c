"""`chats archive | unarchive | pin | delete | list` filters, `site-config`, `audit` and
`notifications` against a local HTTP server that records each request and answers in the
API's JSON (the routes themselves are tested in tests/api/)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner, Result

from shared.cli import main

TOKEN = "t0ken-for-the-cli-tests"
CHAT_ID = str(uuid.uuid4())
NOTE_ID = str(uuid.uuid4())
CHAT = {"id": CHAT_ID, "title": "deploy failed", "status": "waiting", "labels": {},
        "archived": False, "pin_order": 0, "updated_at": "2026-12-06T10:00:00Z"}  # fmt: skip
SITE = {"auto_archive_days": 0, "chat_retention_days": 30}
NOTE = {"id": NOTE_ID, "title": "Chats auto-archived after 7 days of inactivity",
        "body": "- deploy failed", "created_at": "2026-12-06T10:00:00Z",
        "read_at": None}  # fmt: skip


class Handler(BaseHTTPRequestHandler):
    #: (method, path, query, body) of every request
    seen: list[tuple[str, str, dict[str, list[str]], Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any = None) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _handle(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._reply(401, {"code": "unauthorized", "message": "bad token"})
            return
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body: Any = json.loads(self.rfile.read(length)) if length else {}
        Handler.seen.append((self.command, url.path, parse_qs(url.query), body))
        key = (self.command, url.path)
        if key == ("GET", "/api/v1/chats"):
            self._reply(200, {"items": [CHAT], "next_cursor": None})
        elif key == ("GET", f"/api/v1/chats/{CHAT_ID}"):
            self._reply(200, {**CHAT, "messages": []})
        elif key == ("PATCH", f"/api/v1/chats/{CHAT_ID}"):
            self._reply(200, {**CHAT, **body})
        elif key == ("DELETE", f"/api/v1/chats/{CHAT_ID}"):
            self._reply(204)
        elif key == ("GET", "/api/v1/site-config"):
            self._reply(200, SITE)
        elif key == ("PUT", "/api/v1/site-config"):
            if body.get("auto_archive_days") == 99:
                self._reply(403, {"code": "forbidden", "message": "only site-admins may"})
            else:
                self._reply(200, {**SITE, **body})
        elif key == ("GET", "/api/v1/audit-logs"):
            entry = {"id": "a1", "created_at": "2026-12-06T10:00:00Z", "action": "chat.archive",
                     "resource_type": "chat", "resource_id": CHAT_ID, "actor_id": None,
                     "details": {"reason": "auto"}}  # fmt: skip
            self._reply(200, {"items": [entry], "next_cursor": None})
        elif key == ("GET", "/api/v1/notifications"):
            self._reply(200, {"items": [NOTE], "next_cursor": None})
        elif key == ("POST", f"/api/v1/notifications/{NOTE_ID}/read"):
            self._reply(200, {**NOTE, "read_at": "2026-12-06T11:00:00Z"})
        else:
            self._reply(404, {"code": "not_found", "message": f"{url.path} not found"})

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle


@pytest.fixture
def api_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Handler.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def run(url: str, *args: str, input: str | None = None) -> Result:
    env = {"AUTOMATIONS_URL": url, "AUTOMATIONS_TOKEN": TOKEN}
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def _writes() -> list[tuple[str, str, Any]]:
    return [(m, p, b) for m, p, _, b in Handler.seen if m != "GET"]


@pytest.mark.parametrize(
    ("args", "body", "says"),
    [
        (["archive"], {"archived": True}, "archived chat"),
        (["unarchive"], {"archived": False}, "unarchived chat"),
        (["pin"], {"pin_order": 1}, "pinned (order 1) chat"),
        (["pin", "--order", "7"], {"pin_order": 7}, "pinned (order 7) chat"),
        (["pin", "--unpin"], {"pin_order": 0}, "unpinned chat"),
    ],
)
def test_patch_commands(api_url: str, args: list[str], body: Any, says: str) -> None:
    result = run(api_url, "chats", args[0], CHAT_ID, *args[1:])
    assert result.exit_code == 0, result.output
    assert f"{says} {CHAT_ID}" in result.output
    assert _writes() == [("PATCH", f"/api/v1/chats/{CHAT_ID}", body)]


def test_pin_order_must_be_positive(api_url: str) -> None:
    result = run(api_url, "chats", "pin", CHAT_ID, "--order", "0")
    assert result.exit_code == 2 and Handler.seen == []


def test_archive_json_prints_the_chat(api_url: str) -> None:
    result = run(api_url, "chats", "archive", CHAT_ID, "--json")
    assert json.loads(result.output)["archived"] is True


def test_delete_asks_first(api_url: str) -> None:
    result = run(api_url, "chats", "delete", CHAT_ID, input="n\n")
    assert result.exit_code == 1 and "deploy failed" in result.output
    assert _writes() == []
    result = run(api_url, "chats", "delete", CHAT_ID, "--yes")
    assert result.exit_code == 0 and f"deleted chat {CHAT_ID}" in result.output
    assert _writes() == [("DELETE", f"/api/v1/chats/{CHAT_ID}", {})]


def test_delete_of_an_unknown_chat_fails_with_the_api_message(api_url: str) -> None:
    result = run(api_url, "chats", "delete", str(uuid.uuid4()), "--yes")
    assert result.exit_code == 1 and "not found" in result.output and _writes() == []


def test_list_filters(api_url: str) -> None:
    result = run(
        api_url, "chats", "list", "--pinned", "--status", "error", "--status", "paused",
        "--search", "deploy", "--not-archived",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [(_, _, query, _)] = Handler.seen
    assert query["pinned"] == ["true"] and query["archived"] == ["false"]
    assert query["status"] == ["error", "paused"] and query["q"] == ["deploy"]


def test_site_config(api_url: str) -> None:
    result = run(api_url, "site-config", "show")
    assert "chat_retention_days" in result.output and "30" in result.output
    result = run(api_url, "site-config", "set", "--auto-archive-days", "7", "--json")
    assert json.loads(result.output)["auto_archive_days"] == 7
    assert _writes() == [("PUT", "/api/v1/site-config", {"auto_archive_days": 7})]
    assert run(api_url, "site-config", "set", "--auto-archive-days", "4000").exit_code == 2
    assert run(api_url, "site-config", "set").exit_code == 2
    result = run(api_url, "site-config", "set", "--auto-archive-days", "99")
    assert result.exit_code == 1 and "only site-admins" in result.output


def test_audit_list(api_url: str) -> None:
    result = run(api_url, "audit", "list", "--action", "chat.archive", "--since", "2026-12-05")
    assert result.exit_code == 0, result.output
    assert "chat.archive" in result.output and CHAT_ID[:8] in result.output
    [(_, _, query, _)] = Handler.seen
    assert query["action"] == ["chat.archive"]
    assert query["since"] == ["2026-12-05T00:00:00+00:00"]


def test_notifications(api_url: str) -> None:
    result = run(api_url, "notifications", "list", "--unread")
    assert "auto-archived" in result.output
    assert Handler.seen[0][2]["unread"] == ["true"]
    result = run(api_url, "notifications", "read", NOTE_ID, "--show")
    assert f"read notification {NOTE_ID}" in result.output and "- deploy failed" in result.output
