"""``automations events replay``: run stored events through the pipeline again, as the
automation is configured now, over the HTTP API (AUTOMATIONS_URL, AUTOMATIONS_TOKEN).

One event by id, or every event matching the event list's filters: the bulk form counts
first (a dry run), says how many it would replay, asks, then replays (at most 10,000 a call,
oldest first).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from shared.cli.client import client
from shared.cli.output import emit_json, handle_errors, json_option
from shared.cli.resolve import resolve_automation
from shared.cli.timestamps import TIMESTAMP
from shared.models.enums import EventStatus

#: the event statuses, as the list filters take them
STATUSES = [status.value for status in EventStatus]


@click.command("replay")
@click.argument("automation_ref", metavar="AUTOMATION")
@click.argument("event_id", required=False)
@click.option(
    "--status", "statuses", multiple=True, type=click.Choice(STATUSES), help="Repeatable."
)
@click.option("--trigger", "trigger_id", help="Only this trigger's events.")
@click.option("--since", type=TIMESTAMP, help="Received at or after (as printed by the CLI).")
@click.option("--until", type=TIMESTAMP, help="Received before.")
@click.option("--dry-run", is_flag=True, help="Only count what would be replayed.")
@click.option("--yes", is_flag=True, help="Do not ask before a bulk replay.")
@json_option
@handle_errors
def replay(
    automation_ref: str,
    event_id: str | None,
    statuses: tuple[str, ...],
    trigger_id: str | None,
    since: datetime | None,
    until: datetime | None,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Replay EVENT_ID, or the events matching the filters, as new events (replay_of: the
    original) through the automation's current filter, labels, limits and chat scope.

    \b
    Examples:
      automations events replay deploys 3f0c…            # one event
      automations events replay deploys --status error  # every failed event (asks first)
      automations events replay deploys --since 2026-12-05 --dry-run
    """
    api = client()
    auto = resolve_automation(api, automation_ref)
    base = f"/automations/{auto['id']}/events"
    if event_id is not None:
        if statuses or trigger_id or since or until or dry_run:
            raise click.UsageError("filters and --dry-run apply to a bulk replay, not to one event")
        data = api.post(f"{base}/{event_id}/replay", {})
        if as_json:
            emit_json(data)
        else:
            click.echo(f"replayed event {event_id} as {data['event_id']}")
        return
    body: dict[str, Any] = {}
    if statuses:
        body["status"] = list(statuses)
    if trigger_id:
        body["trigger_id"] = trigger_id
    if since is not None:
        body["since"] = since.isoformat()
    if until is not None:
        body["until"] = until.isoformat()
    count = api.post(f"{base}/replay", {**body, "dry_run": True})
    if dry_run or count["matched"] == 0:  # nothing more to do than to say the count
        if as_json:
            emit_json(count)
        else:
            click.echo(_count_line(count))
        return
    if not yes and not as_json:
        click.echo(_count_line(count))
        click.confirm("replay them?", abort=True)
    data = api.post(f"{base}/replay", body)
    if as_json:
        emit_json(data)
    else:
        click.echo(f"replayed {data['replayed']} events; the worker processes them now")


def _count_line(count: dict[str, Any]) -> str:
    line = f"{count['matched']} events would be replayed"
    if count["matched"] > 10_000:
        line += " (10000 per call, oldest first: run again for the rest)"
    if count["skipped"]:
        line += f"; {count['skipped']} cannot be (truncated payload or trigger deleted)"
    return line
