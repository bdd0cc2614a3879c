"""The ``automations`` command: the ``main`` group and the one list of its commands.

Each command group lives in a module named for it; shared plumbing in ``client`` (the HTTP
API client), ``output`` (tables, ``--json``, error exits), ``resolve`` (argument parsing),
``settings`` (configuration) and ``supervisor`` (child processes for ``up``).
"""

from __future__ import annotations

import click

from shared.cli import (
    audit,
    automation,
    chats,
    db,
    dry_run,
    events,
    jobs,
    keys,
    models,
    notifications,
    processes,
    replay,
    site_config,
    tokens,
    trigger,
    usage,
    users,
    webhook,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chat-automations")
def main() -> None:
    """Chat Automations: turn signed webhooks and cron schedules into AI agent chats.

    Configuration comes from AUTOMATIONS_* environment variables; with none set, everything
    runs embedded (SQLite and a file broker under ./var).
    """


COMMANDS: tuple[click.Command, ...] = (
    # Direct database access (run where the service's configuration is).
    db.db,
    users.users,
    tokens.tokens,
    keys.keys,
    jobs.jobs,
    # Long-running processes.
    processes.gateway,
    processes.stream,
    processes.worker,
    processes.beat,
    processes.up,
    # Management over the HTTP API (AUTOMATIONS_URL, AUTOMATIONS_TOKEN).
    automation.automation,
    trigger.trigger,
    events.events,
    chats.chats,
    models.models,
    usage.usage,
    site_config.site_config,
    audit.audit,
    notifications.notifications,
    dry_run.test_command,
    # Testing webhook triggers.
    webhook.webhook,
)

for _command in COMMANDS:
    main.add_command(_command)
events.events.add_command(replay.replay)
