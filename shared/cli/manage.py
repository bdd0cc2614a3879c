"""Management commands over the HTTP API: ``automation``, ``trigger``, ``events``, ``chats``
and ``test``. They read AUTOMATIONS_URL and AUTOMATIONS_TOKEN.

Human-readable tables by default, ``--json`` for scripts. Exit codes: 0 success, 1 the API
refused (the message says why), 2 usage or configuration error, 3 server unreachable.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click

from shared.cli.client import ApiClient, ClientError

F = TypeVar("F", bound=Callable[..., Any])

AUTOMATION_COLUMNS = ("id", "name", "status", "organization_id", "updated_at")
TRIGGER_COLUMNS = ("id", "type", "cron_schedule", "next_fire_at", "webhook_url")
EVENT_COLUMNS = ("received_at", "id", "status", "trigger_id", "labels", "chat", "error")
CHAT_COLUMNS = ("id", "title", "status", "labels", "archived", "updated_at")


# Plumbing ---------------------------------------------------------------------------------


def handle_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(fn)


def client() -> ApiClient:
    return ApiClient.from_env()


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _cell(value: Any, width: int = 48) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, dict):
        text = ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    elif isinstance(value, list):
        text = ",".join(str(v) for v in value) or "-"
    else:
        text = str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain text table (no dependency); long cells are cut with an ellipsis."""
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(col), *(len(r[i]) for r in cells)]) for i, col in enumerate(columns)]
    lines = ["  ".join(col.upper().ljust(widths[i]) for i, col in enumerate(columns)).rstrip()]
    for r in cells:
        lines.append("  ".join(r[i].ljust(widths[i]) for i in range(len(columns))).rstrip())
    return "\n".join(lines)


def details(obj: dict[str, Any], fields: Iterable[str] | None = None) -> str:
    keys = list(fields or obj.keys())
    width = max(len(k) for k in keys) if keys else 0
    lines = []
    for key in keys:
        value = obj.get(key)
        if isinstance(value, dict | list):
            value = json.dumps(value, sort_keys=True)
        lines.append(f"{key.ljust(width)}  {'-' if value is None else value}")
    return "\n".join(lines)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


def resolve_automation(api: ApiClient, ref: str) -> dict[str, Any]:
    """An automation by id, or by name among the caller's own automations."""
    if _is_uuid(ref):
        return api.get(f"/automations/{ref}")  # type: ignore[no-any-return]
    matches = api.get("/automations", name=ref, limit=2)["items"]
    if not matches:
        raise ClientError(f"no automation named {ref!r} (use its id for others' automations)")
    if len(matches) > 1:
        raise ClientError(f"several automations are named {ref!r}; use the id")
    return matches[0]  # type: ignore[no-any-return]


def resolve_org(api: ApiClient, ref: str | None) -> str:
    """An organization id from an id or a name among the caller's; default: the only one."""
    if ref and _is_uuid(ref):
        return ref
    orgs = api.get("/users/me")["organizations"]
    if ref is None:
        if len(orgs) == 1:
            return str(orgs[0]["id"])
        names = ", ".join(o["name"] for o in orgs) or "none"
        raise ClientError(f"--org is required (your organizations: {names})", exit_code=2)
    for org in orgs:
        if org["name"] == ref:
            return str(org["id"])
    raise ClientError(f"--org: you are not a member of an organization named {ref!r}", exit_code=2)


def parse_json_arg(name: str, value: str | None) -> Any:
    """JSON given inline or as @FILE."""
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        try:
            with open(value[1:], encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {value[1:]}: {exc.strerror}", param_hint=name
            ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=name) from None


def parse_labels(values: Sequence[str]) -> dict[str, str] | None:
    if not values:
        return None
    out: dict[str, str] = {}
    for item in values:
        key, sep, path = item.partition("=")
        if not sep or not key or not path:
            raise click.BadParameter(f"expected LABEL=PATH, got {item!r}", param_hint="--label")
        out[key] = path
    return out


_DURATION = re.compile(r"^(\d+)([smhd]?)$")


def parse_duration(value: str) -> int:
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise click.BadParameter(
            f"expected seconds or a duration like 30m, 12h, 7d; got {value!r}",
            param_hint="--previous-valid-for",
        )
    number, unit = int(match.group(1)), match.group(2) or "s"
    return number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


# automation -------------------------------------------------------------------------------


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
) -> dict[str, Any]:
    body: dict[str, Any] = {}
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
    data = api.post("/automations", body)
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


# trigger ----------------------------------------------------------------------------------


@click.group()
def trigger() -> None:
    """Webhook and cron triggers of an automation."""


def _print_secret(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(data)
        return
    click.echo(f"trigger      {data.get('id') or data.get('trigger_id')}")
    click.echo(f"webhook_url  {data['webhook_url']}")
    click.echo(f"secret       {data['webhook_secret']}")
    click.echo(f"whsec        {data['webhook_secret_standard']}")
    if data.get("previous_secret_expires_at"):
        click.echo(f"previous secret valid until {data['previous_secret_expires_at']}")
    click.echo(
        "The secret is shown only now: store it in the sender (GitHub: 'secret'; Standard "
        "Webhooks libraries: the whsec_ form).",
        err=True,
    )


@trigger.command("add-webhook")
@click.argument("automation_ref", metavar="AUTOMATION")
@click.option("--filter", "filter_", help="JSON object {path: expected} or @FILE.")
@click.option("--label", "labels", multiple=True, help="LABEL=GJSON_PATH; repeatable.")
@json_option
@handle_errors
def trigger_add_webhook(
    automation_ref: str, filter_: str | None, labels: tuple[str, ...], as_json: bool
) -> None:
    """Add a webhook trigger; prints its URL and secret (once)."""
    api = client()
    auto = resolve_automation(api, automation_ref)
    body: dict[str, Any] = {"type": "webhook"}
    if filter_ is not None:
        body["filter"] = parse_json_arg("--filter", filter_)
    if labels:
        body["label_paths"] = parse_labels(labels)
    _print_secret(api.post(f"/automations/{auto['id']}/triggers", body), as_json)


@trigger.command("add-cron")
@click.argument("automation_ref", metavar="AUTOMATION")
@click.argument("schedule")
@click.option("--label", "labels", multiple=True, help="LABEL=GJSON_PATH; repeatable.")
@json_option
@handle_errors
def trigger_add_cron(
    automation_ref: str, schedule: str, labels: tuple[str, ...], as_json: bool
) -> None:
    """Add a cron trigger: SCHEDULE is 5 fields, optionally prefixed 'CRON_TZ=<zone> '."""
    api = client()
    auto = resolve_automation(api, automation_ref)
    body: dict[str, Any] = {"type": "cron", "cron_schedule": schedule}
    if labels:
        body["label_paths"] = parse_labels(labels)
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
    as_json: bool,
) -> None:
    """Change a trigger's filter, label paths or schedule."""
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
    if not body:
        raise click.UsageError("nothing to change; pass at least one option")
    api = client()
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
    auto = resolve_automation(api, automation_ref)
    data = api.post(
        f"/automations/{auto['id']}/triggers/{trigger_id}/regenerate-secret",
        {"previous_valid_for_seconds": seconds},
    )
    _print_secret(data, as_json)


# events -----------------------------------------------------------------------------------


@click.group()
def events() -> None:
    """The event log: what happened to each delivery and why."""


def _event_row(e: dict[str, Any]) -> dict[str, Any]:
    chat = e.get("created_chat_id") or e.get("matched_chat_id")
    if chat:
        chat = ("new " if e.get("created_chat_id") else "") + str(chat)
    return {**e, "labels": e.get("resolved_labels"), "chat": chat}


@events.command("list")
@click.argument("automation_ref", metavar="AUTOMATION")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(
        ["pending", "filtered", "preview", "created", "continued", "rate_limited", "error"]
    ),
    help="Repeatable.",
)
@click.option("--trigger", "trigger_id", help="Only this trigger's events.")
@click.option("--since", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]))
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events and status changes.")
@click.option("--interval", type=click.FloatRange(0.2), default=2.0, show_default=True)
@json_option
@handle_errors
def events_list(
    automation_ref: str,
    statuses: tuple[str, ...],
    trigger_id: str | None,
    since: datetime | None,
    limit: int,
    follow: bool,
    interval: float,
    as_json: bool,
) -> None:
    """Newest first; with --follow, a live tail (oldest first, JSON lines with --json)."""
    api = client()
    auto = resolve_automation(api, automation_ref)
    path = f"/automations/{auto['id']}/events"
    params: dict[str, Any] = {
        "status": list(statuses),
        "trigger_id": trigger_id,
        "since": since.isoformat()
        if since and since.tzinfo
        else (since.isoformat() + "Z" if since else None),
        "limit": limit,
    }
    page = api.get(path, **params)["items"]
    if not follow:
        if as_json:
            emit_json(page)
        elif not page:
            click.echo("no events", err=True)
        else:
            click.echo(table([_event_row(e) for e in page], EVENT_COLUMNS))
        return
    follow_events(api, path, params, page, interval, as_json)


def follow_events(
    api: ApiClient,
    path: str,
    params: dict[str, Any],
    first: list[dict[str, Any]],
    interval: float,
    as_json: bool,
    *,
    max_polls: int | None = None,
) -> None:
    seen: dict[str, str] = {}
    header = True

    def show(batch: list[dict[str, Any]]) -> None:
        nonlocal header
        fresh = [e for e in reversed(batch) if seen.get(e["id"]) != e["status"]]
        for e in fresh:
            seen[e["id"]] = e["status"]
            if as_json:
                click.echo(json.dumps(e, sort_keys=True, default=str))
            else:
                row = table([_event_row(e)], EVENT_COLUMNS).splitlines()
                if header:
                    click.echo(row[0])
                    header = False
                click.echo(row[1])
        sys.stdout.flush()

    show(first)
    polls = 0
    try:
        while max_polls is None or polls < max_polls:
            time.sleep(interval)
            polls += 1
            try:
                show(api.get(path, **{**params, "limit": 200})["items"])
            except ClientError as exc:
                if exc.exit_code != 3:
                    raise
                click.echo(f"warning: {exc.message}; retrying", err=True)
    except KeyboardInterrupt:
        return


# chats ------------------------------------------------------------------------------------


@click.group()
def chats() -> None:
    """Chats created or continued by automations."""


@chats.command("list")
@click.option("--automation", "automation_ref", help="Only chats of this automation.")
@click.option("--label", "labels", multiple=True, help="KEY:VALUE; repeatable (all must match).")
@click.option("--archived/--not-archived", default=None, help="Default: both.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@json_option
@handle_errors
def chats_list(
    automation_ref: str | None,
    labels: tuple[str, ...],
    archived: bool | None,
    limit: int,
    as_json: bool,
) -> None:
    """List chats, most recently updated first."""
    api = client()
    auto_id = resolve_automation(api, automation_ref)["id"] if automation_ref else None
    items = list(
        api.iterate(
            "/chats",
            max_items=limit,
            automation_id=auto_id,
            label=list(labels),
            archived=None if archived is None else str(archived).lower(),
            limit=min(limit, 200),
        )
    )
    if as_json:
        emit_json(items)
    elif not items:
        click.echo("no chats", err=True)
    else:
        click.echo(table(items, CHAT_COLUMNS))


@chats.command("show")
@click.argument("chat_id")
@json_option
@handle_errors
def chats_show(chat_id: str, as_json: bool) -> None:
    """A chat and its messages."""
    data = client().get(f"/chats/{chat_id}")
    if as_json:
        emit_json(data)
        return
    messages = data.pop("messages")
    click.echo(details(data))
    for m in messages:
        click.echo(f"\n--- {m['role']} · {m['created_at']}")
        click.echo(m["content"])


# test -------------------------------------------------------------------------------------


@click.command("test")
@click.argument("automation_ref", metavar="AUTOMATION")
@click.option(
    "--payload", type=click.File("rb"), required=True, help="JSON payload FILE ('-': stdin)."
)
@click.option("--filter", "filter_", help="Try this filter (JSON or @FILE) instead of the saved.")
@click.option("--label", "labels", multiple=True, help="LABEL=PATH instead of the saved ones.")
@json_option
@handle_errors
def test_command(
    automation_ref: str, payload: Any, filter_: str | None, labels: tuple[str, ...], as_json: bool
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
    api = client()
    auto = resolve_automation(api, automation_ref)
    result = api.post(f"/automations/{auto['id']}/test", body)
    if as_json:
        emit_json(result)
        return
    click.echo(details(result))
    if not result["filter_matched"]:
        click.echo("→ the event would be recorded as filtered")
    elif result["existing_chat_id"]:
        click.echo(f"→ the event would continue chat {result['existing_chat_id']}")
    else:
        click.echo("→ the event would create a new chat")


def register(main: click.Group) -> None:
    main.add_command(automation)
    main.add_command(trigger)
    main.add_command(events)
    main.add_command(chats)
    main.add_command(test_command)
