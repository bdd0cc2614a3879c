"""``automations events list``: the event log of an automation over the HTTP API
(AUTOMATIONS_URL, AUTOMATIONS_TOKEN), as a table, JSON, or a live tail with ``--follow``."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any

import click

from shared.cli.client import ApiClient, ClientError, client
from shared.cli.output import emit_json, handle_errors, json_option, table
from shared.cli.replay import STATUSES
from shared.cli.resolve import resolve_automation
from shared.cli.timestamps import TIMESTAMP

#: event_type is X-GitHub-Event and the like: "-" when the sender named none (or the server
#: does not return it)
EVENT_COLUMNS = (
    "received_at",
    "id",
    "status",
    "event_type",
    "trigger_id",
    "labels",
    "chat",
    "error",
)
EVENT_HEADERS = {"event_type": "EVENT TYPE"}


@click.group()
def events() -> None:
    """The event log: what happened to each delivery and why."""


def _event_row(e: dict[str, Any]) -> dict[str, Any]:
    chat = e.get("created_chat_id") or e.get("matched_chat_id")
    if chat:
        chat = ("new " if e.get("created_chat_id") else "") + str(chat)
    return {**e, "labels": e.get("resolved_labels"), "chat": chat}


def _table(page: list[dict[str, Any]]) -> str:
    return table([_event_row(e) for e in page], EVENT_COLUMNS, headers=EVENT_HEADERS)


@events.command("list")
@click.argument("automation_ref", metavar="AUTOMATION")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES),
    help="Repeatable.",
)
@click.option("--trigger", "trigger_id", help="Only this trigger's events.")
@click.option(
    "--since",
    type=TIMESTAMP,
    help="Received at or after: as printed (2026-12-05T23:04:30Z, '2026-12-05 23:04:30'), "
    "RFC 3339, or a date; UTC unless an offset is given.",
)
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events and status changes.")
@click.option("--interval", type=click.FloatRange(0.2), default=2.0, show_default=True)
@json_option
@handle_errors
def events_list(
    automation_ref: str,
    statuses: tuple[str, ...],
    trigger_id: str | None,
    since: datetime | None,
    limit: int,
    follow: bool,
    interval: float,
    as_json: bool,
) -> None:
    """Newest first; with --follow, a live tail (oldest first, JSON lines with --json)."""
    api = client()
    auto = resolve_automation(api, automation_ref)
    path = f"/automations/{auto['id']}/events"
    params: dict[str, Any] = {
        "status": list(statuses),
        "trigger_id": trigger_id,
        "since": since.isoformat() if since else None,  # aware: parse_timestamp adds UTC
        "limit": limit,
    }
    page = api.get(path, **params)["items"]
    if not follow:
        if as_json:
            emit_json(page)
        elif not page:
            click.echo("no events", err=True)
        else:
            click.echo(_table(page))
        return
    follow_events(api, path, params, page, interval, as_json)


def follow_events(
    api: ApiClient,
    path: str,
    params: dict[str, Any],
    first: list[dict[str, Any]],
    interval: float,
    as_json: bool,
    *,
    max_polls: int | None = None,
) -> None:
    """Print events not seen yet (or whose status changed), oldest first, polling every
    ``interval`` seconds until Ctrl-C (or ``max_polls`` polls); rides out an unreachable
    server with a warning."""
    seen: dict[str, str] = {}
    header = True

    def show(batch: list[dict[str, Any]]) -> None:
        nonlocal header
        fresh = [e for e in reversed(batch) if seen.get(e["id"]) != e["status"]]
        for e in fresh:
            seen[e["id"]] = e["status"]
            if as_json:
                click.echo(json.dumps(e, sort_keys=True, default=str))
            else:
                row = _table([e]).splitlines()
                if header:
                    click.echo(row[0])
                    header = False
                click.echo(row[1])
        sys.stdout.flush()

    show(first)
    polls = 0
    try:
        while max_polls is None or polls < max_polls:
            time.sleep(interval)
            polls += 1
            try:
                show(api.get(path, **{**params, "limit": 200})["items"])
            except ClientError as exc:
                if exc.exit_code != 3:
                    raise
                click.echo(f"warning: {exc.message}; retrying", err=True)
    except KeyboardInterrupt:
        return
