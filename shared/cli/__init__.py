"""The ``automations`` command."""

from __future__ import annotations

import sys

import click

from shared.infra.config import ConfigError, Settings, load_settings


def settings_or_exit() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if settings.is_sqlite or settings.is_embedded_broker:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chat-automations")
def main() -> None:
    """Chat Automations: turn signed webhooks and cron schedules into AI agent chats.

    Configuration comes from AUTOMATIONS_* environment variables; with none set, everything
    runs embedded (SQLite and a file broker under ./var).
    """


def _register() -> None:
    from shared.cli import admin, processes, webhook

    admin.register(main)
    processes.register(main)
    webhook.register(main)
    from shared.cli import keys, manage  # management over the API, secrets at rest

    manage.register(main)
    keys.register(main)


_register()
