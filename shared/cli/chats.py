"""``automations chats``: list and show the chats automations created or continued, post a
message, follow a chat live, archive, unarchive, pin and delete it, over the HTTP API
(AUTOMATIONS_URL, AUTOMATIONS_TOKEN; ``follow`` reads AUTOMATIONS_STREAM_URL first when the
live streams are served elsewhere)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import click
import requests

from shared.cli.client import API_PREFIX, ClientError, client
from shared.cli.output import details, emit_json, handle_errors, json_option, table
from shared.cli.resolve import resolve_automation

CHAT_COLUMNS = ("id", "title", "status", "labels", "archived", "pin_order", "updated_at")
CHAT_STATUSES = ("waiting", "pending", "running", "paused", "error")
#: seconds without a byte before ``follow`` reconnects (the server sends a keep-alive every 15)
FOLLOW_READ_TIMEOUT = 45.0


@click.group()
def chats() -> None:
    """Chats created or continued by automations."""


@chats.command("list")
@click.option("--automation", "automation_ref", help="Only chats of this automation.")
@click.option("--label", "labels", multiple=True, help="KEY:VALUE; repeatable (all must match).")
@click.option("--archived/--not-archived", default=None, help="Default: both.")
@click.option("--pinned/--not-pinned", default=None, help="Default: both.")
@click.option(
    "--status", "statuses", multiple=True, type=click.Choice(CHAT_STATUSES), help="Repeatable."
)
@click.option("--search", "q", help="Only chats whose title contains this (any case).")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@json_option
@handle_errors
def chats_list(
    automation_ref: str | None,
    labels: tuple[str, ...],
    archived: bool | None,
    pinned: bool | None,
    statuses: tuple[str, ...],
    q: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List chats, most recently updated first."""
    api = client()
    auto_id = resolve_automation(api, automation_ref)["id"] if automation_ref else None
    items = list(
        api.iterate(
            "/chats",
            max_items=limit,
            automation_id=auto_id,
            label=list(labels),
            archived=None if archived is None else str(archived).lower(),
            pinned=None if pinned is None else str(pinned).lower(),
            status=list(statuses),
            q=q or None,
            limit=min(limit, 200),
        )
    )
    if as_json:
        emit_json(items)
    elif not items:
        click.echo("no chats", err=True)
    else:
        click.echo(table(items, CHAT_COLUMNS))


# Rendering ---------------------------------------------------------------------------------


def error_line(err: dict[str, Any]) -> str:
    """``rate_limit (openai, HTTP 429, retryable): message; detail``"""
    facts = [str(err.get("provider") or "")]
    if err.get("status_code"):
        facts.append(f"HTTP {err['status_code']}")
    facts.append("retryable" if err.get("retryable") else "not retryable")
    text = f"{err.get('kind') or 'generic'} ({', '.join(f for f in facts if f)}): "
    text += str(err.get("message") or "")
    if err.get("detail"):
        text += f"; {err['detail']}"
    return text


def retry_line(retry: dict[str, Any]) -> str:
    """``attempt 2 failed (rate_limit); retrying in 1.5 s, at <time>``"""
    delay = int(retry.get("delay_ms") or 0) / 1000
    return (
        f"attempt {retry.get('attempt')} failed ({retry.get('kind')}); "
        f"retrying in {delay:g} s, at {retry.get('retrying_at')}"
    )


def message_footer(m: dict[str, Any]) -> str | None:
    """``model · 12 in / 40 out tokens · stop`` for an assistant reply, else None."""
    if m.get("role") != "assistant":
        return None
    parts = []
    if m.get("model"):
        parts.append(str(m["model"]))
    if m.get("input_tokens") is not None or m.get("output_tokens") is not None:
        parts.append(f"{m.get('input_tokens', '-')} in / {m.get('output_tokens', '-')} out tokens")
    if m.get("finish_reason"):
        parts.append(f"finish: {m['finish_reason']}")
    return " · ".join(parts) or None


def message_block(m: dict[str, Any]) -> str:
    lines = [f"--- {m['role']} · {m['created_at']}", str(m["content"])]
    footer = message_footer(m)
    if footer:
        lines.append(f"({footer})")
    return "\n".join(lines)


#: statuses in which a turn is due or running (``show --wait`` waits them out)
BUSY_STATUSES = ("pending", "running")


@chats.command("show")
@click.argument("chat_id")
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Wait up to this many seconds while a turn is due or running (pending, running), "
    "then show the chat: for scripts that want the reply.",
)
@json_option
@handle_errors
def chats_show(chat_id: str, wait_seconds: float, as_json: bool) -> None:
    """A chat and its messages, with assistant replies (model, tokens, finish reason), the
    last error and the retry in progress."""
    api = client()
    data = api.get(f"/chats/{chat_id}")
    deadline = time.monotonic() + wait_seconds
    while data.get("status") in BUSY_STATUSES and time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        data = api.get(f"/chats/{chat_id}")
    if as_json:
        emit_json(data)
        return
    messages = data.pop("messages")
    last_error = data.pop("last_error", None)
    retry = data.pop("retry", None)
    click.echo(details(data))
    if last_error:
        click.echo(f"last error  {error_line(last_error)}")
    if retry:
        click.echo(f"retry       {retry_line(retry)}")
    for m in messages:
        click.echo("\n" + message_block(m))


@chats.command("send")
@click.argument("chat_id")
@click.argument("text")
@json_option
@handle_errors
def chats_send(chat_id: str, text: str, as_json: bool) -> None:
    """Post TEXT as a user message; the chat becomes pending and a turn answers it (follow it
    with `automations chats follow CHAT_ID`)."""
    message = client().post(f"/chats/{chat_id}/messages", {"content": text})
    if as_json:
        emit_json(message)
    else:
        click.echo(f"message {message['id']} posted to chat {chat_id}")


# archive, unarchive, pin, delete -----------------------------------------------------------


def _patch(chat_id: str, body: dict[str, Any], as_json: bool, done: str) -> None:
    data = client().patch(f"/chats/{chat_id}", body)
    if as_json:
        emit_json(data)
    else:
        click.echo(f"{done} chat {data['id']}")


@chats.command("archive")
@click.argument("chat_id")
@json_option
@handle_errors
def chats_archive(chat_id: str, as_json: bool) -> None:
    """Archive a chat and its sub-chats (chat retention deletes archived chats after the
    site's chat_retention_days)."""
    _patch(chat_id, {"archived": True}, as_json, "archived")


@chats.command("unarchive")
@click.argument("chat_id")
@json_option
@handle_errors
def chats_unarchive(chat_id: str, as_json: bool) -> None:
    """Unarchive a chat and its sub-chats."""
    _patch(chat_id, {"archived": False}, as_json, "unarchived")


@chats.command("pin")
@click.argument("chat_id")
@click.option(
    "--order",
    type=click.IntRange(1, 1_000_000),
    default=1,
    show_default=True,
    help="Position among pinned chats (pinned chats are never auto-archived).",
)
@click.option("--unpin", is_flag=True, help="Unpin the chat instead.")
@json_option
@handle_errors
def chats_pin(chat_id: str, order: int, unpin: bool, as_json: bool) -> None:
    """Pin a chat (or unpin it with --unpin)."""
    if unpin:
        _patch(chat_id, {"pin_order": 0}, as_json, "unpinned")
    else:
        _patch(chat_id, {"pin_order": order}, as_json, f"pinned (order {order})")


@chats.command("delete")
@click.argument("chat_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def chats_delete(chat_id: str, yes: bool) -> None:
    """Delete a chat with its sub-chats and messages, for good. The events that created or
    continued it keep their status."""
    api = client()
    data = api.get(f"/chats/{chat_id}")
    if not yes:
        click.confirm(f"delete chat {data['title']!r} ({data['id']}) for good?", abort=True)
    api.delete(f"/chats/{data['id']}")
    click.echo(f"deleted chat {data['id']}")


# follow ------------------------------------------------------------------------------------


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """``(event, data)`` from Server-Sent Event lines; comments (keep-alives) are skipped."""
    event, data = "", list[str]()
    for line in lines:
        if line.startswith(":"):
            continue
        if line == "":
            if event and data:
                yield event, json.loads("\n".join(data))
            event, data = "", list[str]()
        elif line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").removeprefix(" "))


class Follower:
    """Prints a chat's events as they come: streamed text as it is written, stored messages
    (each once, also across reconnects), status, retry and error lines."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.seen: set[str] = set()
        self.status: str | None = None
        self.streaming = False  # a reply's text is being printed

    def _end_stream(self) -> None:
        if self.streaming:
            click.echo()
            self.streaming = False

    def _message(self, m: dict[str, Any]) -> None:
        if m["id"] in self.seen:
            return
        self.seen.add(m["id"])
        if self.streaming and m.get("role") == "assistant":
            self._end_stream()  # its text is on screen already
            footer = message_footer(m)
            if footer:
                click.echo(f"({footer})")
            return
        self._end_stream()
        click.echo("\n" + message_block(m))

    def _status(self, status: str) -> None:
        if status != self.status:
            self._end_stream()
            click.echo(f"[status: {status}]")
            self.status = status

    def handle(self, event: str, data: Any) -> None:
        if self.as_json:
            click.echo(json.dumps({"event": event, "data": data}, sort_keys=True))
            return
        if event == "snapshot":
            for m in data.get("messages", []):
                self._message(m)
            if data.get("last_error") and data.get("status") == "error":
                click.echo(f"[error: {error_line(data['last_error'])}]")
            if data.get("retry"):
                click.echo(f"[retry: {retry_line(data['retry'])}]")
            self._status(str(data.get("status")))
        elif event == "delta":
            if not self.streaming:
                click.echo("\n--- assistant (writing)")
                self.streaming = True
            click.echo(data.get("text", ""), nl=False)
        elif event == "message":
            self._message(data["message"])
        elif event == "status":
            self._status(str(data.get("status")))
        elif event == "retry":
            self._end_stream()
            click.echo(f"[retry: {retry_line(data['retry'])}]")
        elif event == "error":
            self._end_stream()
            click.echo(f"[error: {error_line(data['last_error'])}]")


def _stream_lines(url: str, token: str) -> Iterator[str]:
    try:
        resp = requests.get(
            url,
            headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
            stream=True,
            timeout=(10, FOLLOW_READ_TIMEOUT),
        )
    except requests.RequestException as exc:
        raise ClientError(f"cannot reach {url}: {type(exc).__name__}", exit_code=3) from None
    with resp:
        if resp.status_code >= 400:
            try:
                body = resp.json()
                message = f"{body['message']} (HTTP {resp.status_code}, {body.get('code')})"
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {resp.status_code} from {url}"
            raise ClientError(message, status=resp.status_code)
        try:
            yield from resp.iter_lines(chunk_size=None, decode_unicode=True)
        except requests.RequestException:
            return  # the connection broke: the caller reconnects


@chats.command("follow")
@click.argument("chat_id")
@click.option(
    "--reconnect/--no-reconnect",
    default=True,
    show_default=True,
    help="Open the stream again when the server ends it.",
)
@json_option
@handle_errors
def chats_follow(chat_id: str, reconnect: bool, as_json: bool) -> None:
    """Tail a chat live: its recent messages, then the reply as it is written, stored
    messages, status, retries and errors. Ctrl-C stops. With --json, one JSON object per
    event ({"event", "data"})."""
    api = client()  # checks AUTOMATIONS_URL and AUTOMATIONS_TOKEN
    base = os.environ.get("AUTOMATIONS_STREAM_URL", "").strip().rstrip("/") or api.base_url
    url = f"{base}{API_PREFIX}/chats/{chat_id}/stream"
    token = os.environ["AUTOMATIONS_TOKEN"].strip()
    follower = Follower(as_json)
    try:
        while True:
            for event, data in sse_events(_stream_lines(url, token)):
                follower.handle(event, data)
            if not reconnect:
                break
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    if follower.streaming:
        click.echo()
