"""``automations users create``: create users and set their role in an organization (direct
database access)."""

from __future__ import annotations

import sys

import click

from shared import accounts
from shared.cli.settings import runtime_or_exit


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
    runtime = runtime_or_exit()
    try:
        with runtime.unit_of_work() as uow:
            session = uow.session
            user = accounts.create_user(session, runtime.clock, email, org_name, role)
            click.echo(str(user.id))
    except accounts.AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
