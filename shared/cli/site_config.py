"""``automations site-config``: show and change the site-wide chat lifecycle settings over
the HTTP API (AUTOMATIONS_URL, AUTOMATIONS_TOKEN; changing them needs a site-admin)."""

from __future__ import annotations

from typing import Any

import click

from shared.cli.client import client
from shared.cli.output import details, emit_json, handle_errors, json_option

DAYS = click.IntRange(0, 3650)


@click.group("site-config")
def site_config() -> None:
    """Site-wide settings: auto-archive and chat retention."""


def _show(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(data)
    else:
        click.echo(details(data))


@site_config.command("show")
@json_option
@handle_errors
def site_config_show(as_json: bool) -> None:
    """auto_archive_days (0: off) and chat_retention_days (0: keep archived chats forever)."""
    _show(client().get("/site-config"), as_json)


@site_config.command("set")
@click.option("--auto-archive-days", type=DAYS, help="Archive chats inactive this long; 0: off.")
@click.option(
    "--chat-retention-days", type=DAYS, help="Delete archived chats after this long; 0: never."
)
@json_option
@handle_errors
def site_config_set(
    auto_archive_days: int | None, chat_retention_days: int | None, as_json: bool
) -> None:
    """Change the settings given (site-admins only)."""
    body = {
        k: v
        for k, v in (
            ("auto_archive_days", auto_archive_days),
            ("chat_retention_days", chat_retention_days),
        )
        if v is not None
    }
    if not body:
        raise click.UsageError("give --auto-archive-days and/or --chat-retention-days")
    _show(client().request("PUT", "/site-config", json=body), as_json)
