"""``automations automation``: create, list, show, update, delete, enable, disable and preview
automations over the HTTP API (AUTOMATIONS_URL, AUTOMATIONS_TOKEN)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from shared.cli.client import client
from shared.cli.output import F, details, emit_json, handle_errors, json_option, table
from shared.cli.resolve import resolve_automation, resolve_org
from shared.cli.trigger import TRIGGER_COLUMNS, checked_body

AUTOMATION_COLUMNS = ("id", "name", "status", "organization_id", "updated_at")


@click.group()
def automation() -> None:
    """Create and manage automations (AUTOMATION is an id or one of your names)."""


def _automation_fields(
    description: str | None,
    instructions: str | None,
    instructions_file: Any,
    max_chat_creates: int | None,
    max_messages: int | None,
    model_config: str | None,
    mcp_servers: Sequence[str],
    allowed_tools: Sequence[str],
    chat_scope: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if chat_scope is not None:
        body["chat_scope"] = chat_scope
    if description is not None:
        body["description"] = description
    if instructions_file is not None:
        body["instructions"] = instructions_file.read()
    elif instructions is not None:
        body["instructions"] = instructions
    if max_chat_creates is not None:
        body["max_chat_creates_per_hour"] = max_chat_creates
    if max_messages is not None:
        body["max_messages_per_hour"] = max_messages
    if model_config is not None:
        body["model_config_id"] = model_config or None
    if mcp_servers:
        body["mcp_server_ids"] = [m for m in mcp_servers if m]
    if allowed_tools:
        body["allowed_tools"] = [t for t in allowed_tools if t]
    return body


def automation_options(fn: F) -> F:
    options = [
        click.option("--description"),
        click.option("--instructions", help="The message every chat starts with."),
        click.option(
            "--instructions-file", type=click.File("r"), help="Read the instructions from FILE."
        ),
        click.option("--max-chat-creates", type=int, help="Chats created per hour (1-1000)."),
        click.option("--max-messages", type=int, help="Messages per hour (1-1000)."),
        click.option("--model-config", help="Model config id ('' clears it)."),
        click.option("--mcp-server", "mcp_servers", multiple=True, help="Repeatable."),
        click.option("--allowed-tool", "allowed_tools", multiple=True, help="Repeatable."),
        click.option(
            "--chat-scope",
            type=click.Choice(["automation", "organization"]),
            help="Which chats an event may continue: only this automation's (the default "
            "for new automations), or any of yours in the organization with equal labels.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _show_automation(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(data)
    else:
        click.echo(details(data))


@automation.command("create")
@click.argument("name")
@click.option("--org", help="Organization id or name (default: your only organization).")
@automation_options
@json_option
@handle_errors
def automation_create(name: str, org: str | None, as_json: bool, **opts: Any) -> None:
    """Create automation NAME (it starts disabled)."""
    api = client()
    body = {"name": name, "organization_id": resolve_org(api, org), **_automation_fields(**opts)}
    data = api.post("/automations", checked_body("AutomationCreate", body))
    if as_json:
        emit_json(data)
    else:
        click.echo(f"created automation {data['id']} ({data['name']}), status {data['status']}")


@automation.command("list")
@click.option("--org", help="Organization id or name: all of it if you are an org-admin.")
@click.option("--status", type=click.Choice(["disabled", "preview", "active"]))
@click.option("--limit", type=click.IntRange(1), default=200, show_default=True)
@json_option
@handle_errors
def automation_list(org: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List your automations (or an organization's)."""
    api = client()
    org_id = resolve_org(api, org) if org else None
    items = list(
        api.iterate(
            "/automations",
            max_items=limit,
            organization_id=org_id,
            status=status,
            limit=min(limit, 200),
        )
    )
    if as_json:
        emit_json(items)
    elif not items:
        click.echo("no automations", err=True)
    else:
        click.echo(table(items, AUTOMATION_COLUMNS))


@automation.command("show")
@click.argument("automation_ref", metavar="AUTOMATION")
@json_option
@handle_errors
def automation_show(automation_ref: str, as_json: bool) -> None:
    """Show an automation and its triggers."""
    api = client()
    data = resolve_automation(api, automation_ref)
    triggers = list(api.iterate(f"/automations/{data['id']}/triggers", limit=200))
    if as_json:
        emit_json({**data, "triggers": triggers})
        return
    click.echo(details(data))
    click.echo("")
    click.echo(table(triggers, TRIGGER_COLUMNS) if triggers else "no triggers")


@automation.command("update")
@click.argument("automation_ref", metavar="AUTOMATION")
@click.option("--name", "new_name", help="Rename.")
@automation_options
@json_option
@handle_errors
def automation_update(
    automation_ref: str, new_name: str | None, as_json: bool, **opts: Any
) -> None:
    """Change fields of an automation."""
    api = client()
    body = _automation_fields(**opts)
    if new_name is not None:
        body["name"] = new_name
    if not body:
        raise click.UsageError("nothing to change; pass at least one option")
    checked_body("AutomationUpdate", body)
    data = resolve_automation(api, automation_ref)
    _show_automation(api.patch(f"/automations/{data['id']}", body), as_json)


@automation.command("delete")
@click.argument("automation_ref", metavar="AUTOMATION")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def automation_delete(automation_ref: str, yes: bool) -> None:
    """Delete an automation with its triggers and events."""
    api = client()
    data = resolve_automation(api, automation_ref)
    if not yes:
        click.confirm(f"delete automation {data['name']} ({data['id']})?", abort=True)
    api.delete(f"/automations/{data['id']}")
    click.echo(f"deleted automation {data['id']}")


def _status_command(status: str, help_text: str) -> click.Command:
    @click.command(help=help_text)
    @click.argument("automation_ref", metavar="AUTOMATION")
    @json_option
    @handle_errors
    def command(automation_ref: str, as_json: bool) -> None:
        api = client()
        data = resolve_automation(api, automation_ref)
        updated = api.patch(f"/automations/{data['id']}", {"status": status})
        if as_json:
            emit_json(updated)
        else:
            click.echo(f"automation {updated['name']} is now {updated['status']}")

    return command


automation.add_command(
    _status_command("active", "Enable: create and continue chats."), name="enable"
)
automation.add_command(
    _status_command("disabled", "Disable: incoming events are dropped."), name="disable"
)
automation.add_command(
    _status_command("preview", "Preview: log events and decisions, take no chat action."),
    name="preview",
)
