"""``automations tokens create``: issue API tokens (direct database access)."""

from __future__ import annotations

import sys

import click

from shared import accounts
from shared.cli.settings import runtime_or_exit


@click.group()
def tokens() -> None:
    """Manage API tokens."""


@tokens.command("create")
@click.argument("email")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(accounts.SCOPES),
    help="Repeatable. Default: '*' (everything the user's role allows).",
)
@click.option("--name", default="", help="A label for the token.")
def tokens_create(email: str, scopes: tuple[str, ...], name: str) -> None:
    """Create an API token for EMAIL and print it (the only line on stdout; shown once)."""
    runtime = runtime_or_exit()
    try:
        with runtime.unit_of_work() as uow:
            session = uow.session
            _, token = accounts.create_token(session, runtime.clock, email, list(scopes), name)
    except accounts.AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(token)
