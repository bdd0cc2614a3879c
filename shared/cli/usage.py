"""``automations usage``: token sums of an organization and its monthly token limits, over the
HTTP API (AUTOMATIONS_URL, AUTOMATIONS_TOKEN)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import click

from shared.cli.client import client
from shared.cli.output import emit_json, handle_errors, json_option, table
from shared.cli.resolve import resolve_org
from shared.cli.timestamps import TIMESTAMP

SUM_COLUMNS = ("key", "input_tokens", "output_tokens", "total_tokens", "turns")


@click.group()
def usage() -> None:
    """Token usage and monthly token limits."""


def _limit(value: int | None) -> str:
    return "none" if value is None else f"{value:,}"


@usage.command("show")
@click.option("--org", help="Organization id or name (default: your only organization).")
@click.option("--since", type=TIMESTAMP, help="From (default: the start of this month, UTC).")
@click.option("--until", type=TIMESTAMP, help="Before (exclusive).")
@click.option("--group-by", type=click.Choice(["user", "automation", "model"]))
@json_option
@handle_errors
def usage_show(
    org: str | None,
    since: datetime | None,
    until: datetime | None,
    group_by: str | None,
    as_json: bool,
) -> None:
    """Tokens used in an organization (members: only their own turns)."""
    api = client()
    data: dict[str, Any] = api.get(
        "/usage",
        organization_id=resolve_org(api, org),
        since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
        group_by=group_by,
    )
    if as_json:
        emit_json(data)
        return
    whose = "the organization's turns" if data["scope"] == "organization" else "your turns"
    window = f"since {data['since']}" + (f" until {data['until']}" if data["until"] else "")
    total = data["total"]
    click.echo(
        f"{whose} {window}: {total['total_tokens']:,} tokens "
        f"({total['input_tokens']:,} in, {total['output_tokens']:,} out) in "
        f"{total['turns']:,} turn(s)"
    )
    limits = data["limits"]
    click.echo(
        f"monthly limits: organization {_limit(limits['organization'])}, "
        f"yours {_limit(limits['member'])}"
    )
    if group_by:
        click.echo("")
        click.echo(table(data["groups"], SUM_COLUMNS, headers={"key": group_by.upper()}))


@usage.command("limit")
@click.option("--org", help="Organization id or name (default: your only organization).")
@click.option("--user", "user_id", help="A member's user id: set their own limit.")
@click.option("--tokens", type=click.IntRange(0), help="Tokens per calendar month (UTC).")
@click.option("--none", "clear", is_flag=True, help="Remove the limit.")
@json_option
@handle_errors
def usage_limit(
    org: str | None, user_id: str | None, tokens: int | None, clear: bool, as_json: bool
) -> None:
    """Set an organization's monthly token limit, or a member's own (org-admins)."""
    if (tokens is None) == (not clear):
        raise click.UsageError("give exactly one of --tokens N and --none")
    if user_id is not None:
        try:
            uuid.UUID(user_id)
        except ValueError:
            raise click.BadParameter("must be a user id", param_hint="--user") from None
    api = client()
    org_id = resolve_org(api, org)
    path = f"/organizations/{org_id}" + (f"/members/{user_id}" if user_id else "")
    data = api.patch(path, {"monthly_token_limit": None if clear else tokens})
    if as_json:
        emit_json(data)
        return
    who = f"member {user_id}" if user_id else f"organization {data.get('name', org_id)}"
    click.echo(f"monthly token limit of {who}: {_limit(data['monthly_token_limit'])}")
