"""Loading the service configuration for commands that need it (database, broker, processes)."""

from __future__ import annotations

import sys

import click

from shared.infra.config import ConfigError, Settings, load_settings
from shared.infra.runtime import Runtime


def settings_or_exit() -> Settings:
    """The settings from AUTOMATIONS_* variables; exit 2 with the reason when they are invalid.

    Creates the data directory when something embedded (SQLite, the file broker) lives there.
    """
    try:
        settings = load_settings()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if settings.is_sqlite or settings.is_embedded_broker:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def runtime_or_exit() -> Runtime:
    """A :class:`Runtime` over :func:`settings_or_exit`'s settings (units of work, publisher)."""
    return Runtime(settings_or_exit())
