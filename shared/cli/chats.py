"""``automations chats``: list and show the chats automations created or continued, over the
HTTP API (AUTOMATIONS_URL, AUTOMATIONS_TOKEN)."""

from __future__ import annotations

import click

from shared.cli.client import client
from shared.cli.output import details, emit_json, handle_errors, json_option, table
from shared.cli.resolve import resolve_automation

CHAT_COLUMNS = ("id", "title", "status", "labels", "archived", "updated_at")


@click.group()
def chats() -> None:
    """Chats created or continued by automations."""


@chats.command("list")
@click.option("--automation", "automation_ref", help="Only chats of this automation.")
@click.option("--label", "labels", multiple=True, help="KEY:VALUE; repeatable (all must match).")
@click.option("--archived/--not-archived", default=None, help="Default: both.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@json_option
@handle_errors
def chats_list(
    automation_ref: str | None,
    labels: tuple[str, ...],
    archived: bool | None,
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
            limit=min(limit, 200),
        )
    )
    if as_json:
        emit_json(items)
    elif not items:
        click.echo("no chats", err=True)
    else:
        click.echo(table(items, CHAT_COLUMNS))


@chats.command("show")
@click.argument("chat_id")
@json_option
@handle_errors
def chats_show(chat_id: str, as_json: bool) -> None:
    """A chat and its messages."""
    data = client().get(f"/chats/{chat_id}")
    if as_json:
        emit_json(data)
        return
    messages = data.pop("messages")
    click.echo(details(data))
    for m in messages:
        click.echo(f"\n--- {m['role']} · {m['created_at']}")
        click.echo(m["content"])
