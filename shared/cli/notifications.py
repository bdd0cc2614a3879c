"""``automations notifications``: your notifications over the HTTP API (AUTOMATIONS_URL,
AUTOMATIONS_TOKEN)."""

from __future__ import annotations

import click

from shared.cli.client import client
from shared.cli.output import emit_json, handle_errors, json_option, table

NOTIFICATION_COLUMNS = ("id", "created_at", "title", "read_at")


@click.group()
def notifications() -> None:
    """Your notifications (auto-archive digests, ...)."""


@notifications.command("list")
@click.option("--unread", is_flag=True, help="Only those not marked read.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@json_option
@handle_errors
def notifications_list(unread: bool, limit: int, as_json: bool) -> None:
    """Newest first."""
    items = list(
        client().iterate(
            "/notifications",
            max_items=limit,
            unread="true" if unread else None,
            limit=min(limit, 200),
        )
    )
    if as_json:
        emit_json(items)
    elif not items:
        click.echo("no notifications", err=True)
    else:
        click.echo(table(items, NOTIFICATION_COLUMNS))


@notifications.command("read")
@click.argument("notification_id")
@click.option("--show", is_flag=True, help="Print its body too.")
@json_option
@handle_errors
def notifications_read(notification_id: str, show: bool, as_json: bool) -> None:
    """Mark a notification read."""
    data = client().post(f"/notifications/{notification_id}/read")
    if as_json:
        emit_json(data)
        return
    click.echo(f"read notification {data['id']}")
    if show:
        click.echo(f"\n{data['title']}\n\n{data['body']}")
