"""``automations trigger``: add, list, update, delete webhook and cron triggers and rotate
webhook secrets over the HTTP API (AUTOMATIONS_URL, AUTOMATIONS_TOKEN)."""

from __future__ import annotations

from typing import Any, Literal

import click

from shared.cli.client import ClientError, client
from shared.cli.output import details, emit_json, handle_errors, json_option, table
from shared.cli.resolve import parse_duration, parse_json_arg, parse_labels, resolve_automation

TRIGGER_COLUMNS = (
    "id",
    "type",
    "cron_schedule",
    "next_fire_at",
    "replay_window_seconds",
    "webhook_url",
)

SchemaName = Literal[
    "AutomationCreate",
    "AutomationUpdate",
    "TriggerCreate",
    "TriggerUpdate",
    "RegenerateSecret",
    "TestRequest",
]


def checked_body(schema: SchemaName, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` once the API's request schema ``schema`` accepts it: a bad value fails before
    any request, with the message the API would answer, as ``error: ...`` and exit code 1
    (like the API's refusal it replaces). Used by the automation, trigger and test commands.

    The schemas are imported here, not at the top: they load the gateway's modules, which the
    other commands do not need."""
    from shared.errors import DomainError
    from webhook_gateway.api import schemas

    try:
        getattr(schemas, schema).check_json(body)
    except DomainError as exc:
        raise ClientError(f"{exc.message} ({exc.code})", status=400, code=exc.code) from None
    return body


@click.group()
def trigger() -> None:
    """Webhook and cron triggers of an automation."""


def _print_secret(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(data)
        return
    click.echo(f"trigger      {data.get('id') or data.get('trigger_id')}")
    click.echo(f"webhook_url  {data['webhook_url']}")
    if data.get("replay_window_seconds") is not None:
        click.echo(f"replay       {data['replay_window_seconds']} s window (0: off)")
    click.echo(f"secret       {data['webhook_secret']}")
    click.echo(f"whsec        {data['webhook_secret_standard']}")
    if data.get("previous_secret_expires_at"):
        click.echo(f"previous secret valid until {data['previous_secret_expires_at']}")
    click.echo(
        "The secret is shown only now: store it in the sender (GitHub: 'secret'; Standard "
        "Webhooks libraries: the whsec_ form).",
        err=True,
    )


def _template_arg(value: str) -> str:
    """``--template``: the text, or ``@FILE``."""
    if value.startswith("@"):
        try:
            with open(value[1:], encoding="utf-8") as fh:
                return fh.read()
        except OSError as exc:
            raise click.BadParameter(str(exc), param_hint="--template") from None
    return value


_EVENT_TYPE_HELP = (
    "Accept only events of this type (X-GitHub-Event and the like); repeatable. "
    "Default: every type."
)
_REPLAY_WINDOW_HELP = (
    "Seconds within which a GitHub-style delivery (X-Hub-Signature-256) of a body already "
    "received is answered as a duplicate; 0 turns it off. Default 86400 (one day)."
)
_REPLAY_WINDOW = click.IntRange(min=0)
_TEMPLATE_HELP = (
    "Jinja2 template (or @FILE) replacing the payload in the chat message; it sees "
    "payload, headers, event_type, labels and gjson(path). See docs/filters.md."
)


@trigger.command("add-webhook")
@click.argument("automation_ref", metavar="AUTOMATION")
@click.option("--filter", "filter_", help="JSON object {path: expected} or @FILE.")
@click.option("--label", "labels", multiple=True, help="LABEL=GJSON_PATH; repeatable.")
@click.option("--event-type", "event_types", multiple=True, help=_EVENT_TYPE_HELP)
@click.option("--template", help=_TEMPLATE_HELP)
@click.option("--replay-window", type=_REPLAY_WINDOW, metavar="SECONDS", help=_REPLAY_WINDOW_HELP)
@json_option
@handle_errors
def trigger_add_webhook(
    automation_ref: str,
    filter_: str | None,
    labels: tuple[str, ...],
    event_types: tuple[str, ...],
    template: str | None,
    replay_window: int | None,
    as_json: bool,
) -> None:
    """Add a webhook trigger; prints its URL and secret (once)."""
    api = client()
    body: dict[str, Any] = {"type": "webhook"}
    if filter_ is not None:
        body["filter"] = parse_json_arg("--filter", filter_)
    if labels:
        body["label_paths"] = parse_labels(labels)
    if event_types:
        body["event_types"] = list(event_types)
    if template is not None:
        body["message_template"] = _template_arg(template)
    if replay_window is not None:
        body["replay_window_seconds"] = replay_window
    checked_body("TriggerCreate", body)
    auto = resolve_automation(api, automation_ref)
    _print_secret(api.post(f"/automations/{auto['id']}/triggers", body), as_json)


@trigger.command("add-cron")
@click.argument("automation_ref", metavar="AUTOMATION")
@click.argument("schedule")
@click.option("--label", "labels", multiple=True, help="LABEL=GJSON_PATH; repeatable.")
@click.option("--template", help=_TEMPLATE_HELP)
@json_option
@handle_errors
def trigger_add_cron(
    automation_ref: str,
    schedule: str,
    labels: tuple[str, ...],
    template: str | None,
    as_json: bool,
) -> None:
    """Add a cron trigger: SCHEDULE is 5 fields, optionally prefixed 'CRON_TZ=<zone> '."""
    api = client()
    body: dict[str, Any] = {"type": "cron", "cron_schedule": schedule}
    if labels:
        body["label_paths"] = parse_labels(labels)
    if template is not None:
        body["message_template"] = _template_arg(template)
    checked_body("TriggerCreate", body)
    auto = resolve_automation(api, automation_ref)
    data = api.post(f"/automations/{auto['id']}/triggers", body)
    if as_json:
        emit_json(data)
    else:
        click.echo(f"created cron trigger {data['id']}, next fire {data['next_fire_at'] or '-'}")


@trigger.command("list")
@click.argument("automation_ref", metavar="AUTOMATION")
@json_option
@handle_errors
def trigger_list(automation_ref: str, as_json: bool) -> None:
    """List the triggers of an automation (secrets are never listed)."""
    api = client()
    auto = resolve_automation(api, automation_ref)
    items = list(api.iterate(f"/automations/{auto['id']}/triggers", limit=200))
    if as_json:
        emit_json(items)
    elif not items:
        click.echo("no triggers", err=True)
    else:
        click.echo(table(items, TRIGGER_COLUMNS))


@trigger.command("update")
@click.argument("automation_ref", metavar="AUTOMATION")
@click.argument("trigger_id")
@click.option("--filter", "filter_", help="JSON object or @FILE; replaces the filter.")
@click.option("--clear-filter", is_flag=True)
@click.option("--label", "labels", multiple=True, help="LABEL=PATH; replaces all label paths.")
@click.option("--clear-labels", is_flag=True)
@click.option("--schedule", help="New cron schedule (cron triggers).")
@click.option("--event-type", "event_types", multiple=True, help="Replaces the event types.")
@click.option("--all-event-types", is_flag=True, help="Accept every event type again.")
@click.option("--template", help=_TEMPLATE_HELP)
@click.option("--clear-template", is_flag=True, help="Back to the payload as JSON.")
@click.option("--replay-window", type=_REPLAY_WINDOW, metavar="SECONDS", help=_REPLAY_WINDOW_HELP)
@json_option
@handle_errors
def trigger_update(
    automation_ref: str,
    trigger_id: str,
    filter_: str | None,
    clear_filter: bool,
    labels: tuple[str, ...],
    clear_labels: bool,
    schedule: str | None,
    event_types: tuple[str, ...],
    all_event_types: bool,
    template: str | None,
    clear_template: bool,
    replay_window: int | None,
    as_json: bool,
) -> None:
    """Change a trigger's filter, label paths, schedule, event types, message template or
    replay window."""
    body: dict[str, Any] = {}
    if clear_filter:
        body["filter"] = {}
    elif filter_ is not None:
        body["filter"] = parse_json_arg("--filter", filter_)
    if clear_labels:
        body["label_paths"] = {}
    elif labels:
        body["label_paths"] = parse_labels(labels)
    if schedule is not None:
        body["cron_schedule"] = schedule
    if all_event_types:
        body["event_types"] = []
    elif event_types:
        body["event_types"] = list(event_types)
    if clear_template:
        body["message_template"] = None
    elif template is not None:
        body["message_template"] = _template_arg(template)
    if replay_window is not None:
        body["replay_window_seconds"] = replay_window
    if not body:
        raise click.UsageError("nothing to change; pass at least one option")
    api = client()
    checked_body("TriggerUpdate", body)
    auto = resolve_automation(api, automation_ref)
    data = api.patch(f"/automations/{auto['id']}/triggers/{trigger_id}", body)
    if as_json:
        emit_json(data)
    else:
        click.echo(details(data))


@trigger.command("delete")
@click.argument("automation_ref", metavar="AUTOMATION")
@click.argument("trigger_id")
@handle_errors
def trigger_delete(automation_ref: str, trigger_id: str) -> None:
    """Delete a trigger."""
    api = client()
    auto = resolve_automation(api, automation_ref)
    api.delete(f"/automations/{auto['id']}/triggers/{trigger_id}")
    click.echo(f"deleted trigger {trigger_id}")


@trigger.command("rotate-secret")
@click.argument("automation_ref", metavar="AUTOMATION")
@click.argument("trigger_id")
@click.option(
    "--previous-valid-for",
    default="0",
    show_default=True,
    help="Keep the old secret valid this long (seconds, or 30m / 12h / 7d; at most 7d) so "
    "senders can switch without dropped events.",
)
@json_option
@handle_errors
def trigger_rotate_secret(
    automation_ref: str, trigger_id: str, previous_valid_for: str, as_json: bool
) -> None:
    """Replace a webhook trigger's secret; prints the new one (once)."""
    seconds = parse_duration(previous_valid_for)
    api = client()
    body = checked_body("RegenerateSecret", {"previous_valid_for_seconds": seconds})
    auto = resolve_automation(api, automation_ref)
    data = api.post(f"/automations/{auto['id']}/triggers/{trigger_id}/regenerate-secret", body)
    _print_secret(data, as_json)
