"""``automations db upgrade``: apply the database migrations (direct database access)."""

from __future__ import annotations

import sys

import click

from shared.cli.settings import settings_or_exit
from shared.infra.db import migrate


@click.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    settings = settings_or_exit()
    try:
        migrate.upgrade(settings.effective_database_url, revision)
    except Exception as exc:
        click.echo(f"error: migration failed: {exc}", err=True)
        sys.exit(1)
    click.echo(f"database at revision {revision}", err=True)
