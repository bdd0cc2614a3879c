"""``automations audit``: read the audit log over the HTTP API (AUTOMATIONS_URL,
AUTOMATIONS_TOKEN; site-admins read every entry, org-admins their organizations')."""

from __future__ import annotations

from datetime import datetime

import click

from shared.cli.client import client
from shared.cli.output import emit_json, handle_errors, json_option, table
from shared.cli.timestamps import TIMESTAMP

AUDIT_COLUMNS = ("created_at", "action", "resource_type", "resource_id", "actor_id", "details")


@click.group()
def audit() -> None:
    """The audit log: who changed what."""


@audit.command("list")
@click.option("--action", help="e.g. chat.archive, chat.auto_archive, site_config.update")
@click.option("--resource-type", help="e.g. chat, automation, automation_trigger")
@click.option("--resource-id", help="The changed resource's id.")
@click.option("--since", type=TIMESTAMP, help="Entries at or after this time (UTC).")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@json_option
@handle_errors
def audit_list(
    action: str | None,
    resource_type: str | None,
    resource_id: str | None,
    since: datetime | None,
    limit: int,
    as_json: bool,
) -> None:
    """Newest first. Entries written by jobs (auto-archive) have no actor."""
    items = list(
        client().iterate(
            "/audit-logs",
            max_items=limit,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            since=since.isoformat() if since else None,
            limit=min(limit, 200),
        )
    )
    if as_json:
        emit_json(items)
    elif not items:
        click.echo("no entries", err=True)
    else:
        click.echo(table(items, AUDIT_COLUMNS))
