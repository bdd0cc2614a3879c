"""Administrative commands that talk to the database directly."""

from __future__ import annotations

import sys

import click

from shared import accounts
from shared.infra.clock import system_clock
from shared.infra.db import migrate
from shared.infra.db.engine import engine_from_settings, make_session_factory, transaction


@click.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    from shared.cli import settings_or_exit

    settings = settings_or_exit()
    try:
        migrate.upgrade(settings.effective_database_url, revision)
    except Exception as exc:
        click.echo(f"error: migration failed: {exc}", err=True)
        sys.exit(1)
    click.echo(f"database at revision {revision}", err=True)


@click.group()
def users() -> None:
    """Manage users."""


@users.command("create")
@click.argument("email")
@click.option("--org", "org_name", required=True, help="Organization (created if missing).")
@click.option(
    "--role",
    type=click.Choice(accounts.ROLE_CHOICES),
    default="member",
    show_default=True,
    help="member: own automations only; org-admin: the whole organization; site-admin: everything.",
)
def users_create(email: str, org_name: str, role: str) -> None:
    """Create user EMAIL in organization ORG (or update their role there)."""
    from shared.cli import settings_or_exit

    factory = make_session_factory(engine_from_settings(settings_or_exit()))
    try:
        with transaction(factory) as session:
            user = accounts.create_user(session, system_clock, email, org_name, role)
            click.echo(str(user.id))
    except accounts.AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


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
    from shared.cli import settings_or_exit

    factory = make_session_factory(engine_from_settings(settings_or_exit()))
    try:
        with transaction(factory) as session:
            _, token = accounts.create_token(session, system_clock, email, list(scopes), name)
    except accounts.AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(token)


def register(main: click.Group) -> None:
    main.add_command(db)
    main.add_command(users)
    main.add_command(tokens)
