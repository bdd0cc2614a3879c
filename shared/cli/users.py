"""``automations users``: create, list, deactivate and activate users (direct database
access, like ``tokens``: run where the service's configuration is; no API token needed).

Site-admins can do the same over the API (``GET /api/v1/users``,
``PATCH /api/v1/users/<id>``)."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from shared import accounts
from shared.cli.output import emit_json, json_option, table
from shared.cli.settings import runtime_or_exit
from shared.errors import DomainError
from shared.infra.db.pagination import MAX_LIMIT
from shared.models import User

USER_FIELDS = ("id", "email", "name", "site_role", "active", "created_at")


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def user_out(user: User) -> dict[str, Any]:
    out = {name: getattr(user, name) for name in USER_FIELDS}
    out["site_role"] = str(user.site_role.value)
    return out


@click.group()
def users() -> None:
    """Manage users (direct database access)."""


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
        fail(str(exc))


@users.command("list")
@click.option(
    "--active/--inactive", "active", default=None, help="Only active or deactivated users."
)
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
def users_list(active: bool | None, limit: int, as_json: bool) -> None:
    """List users, newest first."""
    runtime = runtime_or_exit()
    rows: list[dict[str, Any]] = []
    with runtime.unit_of_work() as uow:
        cursor: str | None = None
        while len(rows) < limit:
            page = accounts.list_users(
                uow.session,
                None,
                active=active,
                limit=min(limit - len(rows), MAX_LIMIT),
                cursor=cursor,
            )
            rows.extend(user_out(u) for u in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    if as_json:
        emit_json(rows)
    elif not rows:
        click.echo("no users", err=True)
    else:
        click.echo(table(rows, USER_FIELDS))


def _set_active(ref: str, active: bool) -> None:
    runtime = runtime_or_exit()
    try:
        with runtime.unit_of_work() as uow:
            user = accounts.find_user(uow.session, ref)
            was = user.active
            accounts.set_user_active(uow.session, runtime.clock, None, user.id, active)
            email = user.email
    except DomainError as exc:
        fail(exc.message, 1)
    state = "active" if active else "deactivated"
    click.echo(f"{email}: {state}" + (" (unchanged)" if was == active else ""))


@users.command("deactivate")
@click.argument("user_ref", metavar="USER")
def users_deactivate(user_ref: str) -> None:
    """Deactivate USER (email or id): their tokens stop working at once, in every process.
    `users activate` undoes it (their tokens work again unless revoked or expired)."""
    _set_active(user_ref, False)


@users.command("activate")
@click.argument("user_ref", metavar="USER")
def users_activate(user_ref: str) -> None:
    """Reactivate USER (email or id), deactivated with `users deactivate`."""
    _set_active(user_ref, True)
