"""``automations tokens``: create, list and revoke API tokens (direct database access, like
``users``: run where the service's configuration is; no API token needed).

The management API offers the same to a token's own user (``GET /api/v1/tokens``,
``DELETE /api/v1/tokens/<id>``); here the operator sees and revokes every user's tokens.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from typing import Any, NoReturn

import click

from shared import accounts
from shared.cli.output import emit_json, json_option, table
from shared.cli.resolve import parse_duration
from shared.cli.settings import runtime_or_exit
from shared.cli.timestamps import TIMESTAMP
from shared.errors import DomainError
from shared.infra.db.pagination import MAX_LIMIT
from shared.models import ApiKey

TOKEN_COLUMNS = ("id", "user", "name", "token_prefix", "scopes", "expires_at", "last_used_at")
TOKEN_FIELDS = (
    "id",
    "user_id",
    "user",
    "name",
    "token_prefix",
    "scopes",
    "created_at",
    "last_used_at",
    "expires_at",
    "revoked_at",
)


class Duration(click.ParamType):
    """A positive duration: ``90`` (seconds), ``90m``, ``12h``, ``30d``."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        try:
            seconds = parse_duration(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)
        if seconds <= 0:
            self.fail("must be longer than 0", param, ctx)
        return timedelta(seconds=seconds)


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group()
def tokens() -> None:
    """Manage API tokens (direct database access)."""


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
@click.option(
    "--expires-in",
    type=Duration(),
    help="The token stops working after this long: 90m, 12h, 30d (default: never).",
)
@click.option(
    "--expires-at",
    type=TIMESTAMP,
    help="The token stops working at this time: RFC 3339, e.g. 2027-01-31T00:00:00Z "
    "(without an offset: UTC).",
)
def tokens_create(
    email: str,
    scopes: tuple[str, ...],
    name: str,
    expires_in: timedelta | None,
    expires_at: datetime | None,
) -> None:
    """Create an API token for EMAIL and print it (the only line on stdout; shown once)."""
    if expires_in is not None and expires_at is not None:
        raise click.UsageError("give --expires-in or --expires-at, not both")
    runtime = runtime_or_exit()
    if expires_in is not None:
        expires_at = runtime.clock.now() + expires_in
    try:
        with runtime.unit_of_work() as uow:
            session = uow.session
            _, token = accounts.create_token(
                session, runtime.clock, email, list(scopes), name, expires_at=expires_at
            )
    except accounts.AccountError as exc:
        fail(str(exc))
    click.echo(token)
    if expires_at is not None:
        click.echo(f"expires at {expires_at.isoformat()}", err=True)


def key_out(key: ApiKey, emails: dict[Any, str]) -> dict[str, Any]:
    """A token's metadata (never the token or its hash) and its user's email."""
    out = {name: getattr(key, name) for name in TOKEN_FIELDS if name != "user"}
    out["user"] = emails.get(key.user_id, "")
    return out


@tokens.command("list")
@click.option("--user", "user_ref", help="Only this user's tokens (email or id).")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
def tokens_list(user_ref: str | None, include_revoked: bool, limit: int, as_json: bool) -> None:
    """List tokens, newest first (never the tokens themselves): every user's, or one's."""
    runtime = runtime_or_exit()
    rows: list[dict[str, Any]] = []
    try:
        with runtime.unit_of_work() as uow:
            session = uow.session
            user_id = accounts.find_user(session, user_ref).id if user_ref else None
            cursor: str | None = None
            while len(rows) < limit:
                page = accounts.list_tokens(
                    session,
                    user_id=user_id,
                    include_revoked=include_revoked,
                    limit=min(limit - len(rows), MAX_LIMIT),
                    cursor=cursor,
                )
                emails = accounts.emails_by_id(session, {k.user_id for k in page.items})
                rows.extend(key_out(k, emails) for k in page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
    except DomainError as exc:
        fail(exc.message)
    if as_json:
        emit_json(rows)
    elif not rows:
        click.echo("no tokens", err=True)
    else:
        columns = (*TOKEN_COLUMNS, "revoked_at") if include_revoked else TOKEN_COLUMNS
        click.echo(table(rows, columns))


@tokens.command("revoke")
@click.argument("token_id", type=click.UUID)
def tokens_revoke(token_id: Any) -> None:
    """Revoke the token TOKEN_ID (see `tokens list`): every process refuses it from its next
    request on. Revoking a revoked token changes nothing."""
    runtime = runtime_or_exit()
    try:
        with runtime.unit_of_work() as uow:
            key = accounts.revoke_token(uow.session, runtime.clock, None, token_id)
            revoked_at = key.revoked_at
    except DomainError as exc:
        fail(exc.message, 1)
    click.echo(f"token {token_id} revoked at {revoked_at.isoformat() if revoked_at else '-'}")
