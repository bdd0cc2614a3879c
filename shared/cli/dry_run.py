"""``automations test``: dry-run an automation's filter, labels and chat match on a payload
over the HTTP API (AUTOMATIONS_URL, AUTOMATIONS_TOKEN); nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import click

from shared.cli.client import client
from shared.cli.output import details, emit_json, handle_errors, json_option
from shared.cli.resolve import parse_json_arg, parse_labels, resolve_automation
from shared.cli.trigger import checked_body


@click.command("test")
@click.argument("automation_ref", metavar="AUTOMATION")
@click.option(
    "--payload", type=click.File("rb"), required=True, help="JSON payload FILE ('-': stdin)."
)
@click.option("--filter", "filter_", help="Try this filter (JSON or @FILE) instead of the saved.")
@click.option("--label", "labels", multiple=True, help="LABEL=PATH instead of the saved ones.")
@click.option(
    "--event-type", help="The sender's event type, checked against the trigger's event_types."
)
@json_option
@handle_errors
def test_command(
    automation_ref: str,
    payload: Any,
    filter_: str | None,
    labels: tuple[str, ...],
    event_type: str | None,
    as_json: bool,
) -> None:
    """Dry-run the filter, labels and chat match on a payload; nothing is stored."""
    try:
        body: dict[str, Any] = {"payload": json.loads(payload.read())}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--payload") from None
    if filter_ is not None:
        body["filter"] = parse_json_arg("--filter", filter_)
    if labels:
        body["label_paths"] = parse_labels(labels)
    if event_type is not None:
        body["event_type"] = event_type
    api = client()
    checked_body("TestRequest", body)
    auto = resolve_automation(api, automation_ref)
    result = api.post(f"/automations/{auto['id']}/test", body)
    if as_json:
        emit_json(result)
        return
    click.echo(details(result))
    if result.get("event_type_matched") is False:
        click.echo(f"→ the event would be filtered: the trigger does not accept {event_type!r}")
    elif not result["filter_matched"]:
        click.echo("→ the event would be recorded as filtered")
    elif result["existing_chat_id"]:
        click.echo(f"→ the event would continue chat {result['existing_chat_id']}")
    else:
        click.echo("→ the event would create a new chat")
