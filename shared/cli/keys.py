"""``automations keys rotate|decrypt|delete``: secrets-at-rest administration with direct
database access (run it where the gateway's AUTOMATIONS_* configuration is available)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from shared import keys as keyops
from shared.cli.settings import runtime_or_exit
from shared.infra.crypto import Keyring


class _Bar:
    """click.progressbar created on the first callback (the total is known only then)."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label, self.enabled = label, enabled
        self.bar: Any = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=max(total, 1), label=self.label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.length = max(total, 1)
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _run(
    label: str,
    as_json: bool,
    quiet: bool,
    op: Callable[..., keyops.KeyOpSummary],
    **kwargs: Any,
) -> None:
    runtime = runtime_or_exit()
    settings = runtime.settings
    bar = _Bar(label, enabled=not quiet)
    try:
        summary = op(
            runtime.unit_of_work, runtime.clock, Keyring(settings.keys), progress=bar, **kwargs
        )
    except (keyops.KeyCheckError, ValueError) as exc:
        bar.close()
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        runtime.dispose()
    bar.close()
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2, sort_keys=True))
    else:
        _print_summary(summary)
    if summary.failed or summary.failed_model_configs:
        sys.exit(1)


def _print_summary(s: keyops.KeyOpSummary) -> None:
    click.echo(
        f"{s.operation}: {s.changed} of {s.total} trigger(s) changed in {s.batches} batch(es)"
    )
    if s.model_configs_total or s.failed_model_configs:
        click.echo(
            f"  model config API keys: {s.model_configs_changed} of {s.model_configs_total} changed"
        )
    click.echo(f"  secrets written or erased: {s.secrets}")
    if s.expired_dropped:
        click.echo(f"  expired previous secrets dropped: {s.expired_dropped}")
    if s.active_digest:
        click.echo(f"  active key: {s.active_digest}")
    if s.digests:
        label = "erased key(s)" if s.operation == "delete" else "keys no longer used (revoked)"
        click.echo(f"  {label}: {', '.join(s.digests)}")
    for trigger_id, reason in sorted(s.failed.items())[:20]:
        click.echo(f"  FAILED trigger {trigger_id}: {reason}", err=True)
    if len(s.failed) > 20:
        click.echo(f"  ... and {len(s.failed) - 20} more failures", err=True)
    for config_id, reason in sorted(s.failed_model_configs.items())[:20]:
        click.echo(f"  FAILED model config {config_id}: {reason}", err=True)
    if s.operation == "decrypt":
        click.echo(
            "  now remove AUTOMATIONS_ENCRYPTION_KEYS, or new secrets will be encrypted again"
        )
    if s.operation == "delete" and s.changed:
        click.echo(
            "  the affected webhook triggers hold a new, never-shown secret and reject "
            "deliveries until their owners run `automations trigger rotate-secret`"
        )
    if s.operation == "delete" and s.model_configs_changed:
        click.echo(
            "  the affected model configs have no API key any more: an org-admin sets a new "
            "one with `automations models add` (or PATCH /api/v1/model-configs/<id>)"
        )


@click.group()
def keys() -> None:
    """Encryption of secrets at rest (AUTOMATIONS_ENCRYPTION_KEYS): webhook secrets and
    model configs' API keys."""


def _common(fn: Any) -> Any:
    fn = click.option(
        "--batch-size", type=click.IntRange(1, 10_000), default=500, show_default=True
    )(fn)
    fn = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")(fn)
    fn = click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")(fn)
    return fn


@keys.command("rotate")
@_common
def keys_rotate(batch_size: int, quiet: bool, as_json: bool) -> None:
    """Re-encrypt every webhook secret (current and previous) and every model config API
    key with the first key.

    Put the new key first in AUTOMATIONS_ENCRYPTION_KEYS, keep the old ones after it, run
    this, then remove the old keys. Safe to interrupt and re-run."""
    _run("re-encrypting", as_json, quiet, keyops.rotate, batch_size=batch_size)


@keys.command("decrypt")
@_common
def keys_decrypt(batch_size: int, quiet: bool, as_json: bool) -> None:
    """Store every webhook secret and API key as plaintext again (then remove the keys)."""
    _run("decrypting", as_json, quiet, keyops.decrypt_all, batch_size=batch_size)


@keys.command("delete")
@click.option(
    "--digest",
    help="Erase only the secrets of this key (default: every key in use that is not configured).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_common
def keys_delete(digest: str | None, yes: bool, batch_size: int, quiet: bool, as_json: bool) -> None:
    """Erase the secrets encrypted with a lost key.

    The affected webhook triggers get a new random secret that is never shown, so they reject
    every delivery until their owners run `automations trigger rotate-secret`; erased previous
    secrets are dropped. Model configs' API keys encrypted with it are removed (set a new one).
    Each trigger and model config gets an audit entry."""
    if not yes:
        click.confirm(
            "erase the webhook secrets and API keys encrypted with "
            + (f"key {digest}" if digest else "keys that are not configured")
            + "? Senders will be rejected until the secrets are rotated",
            abort=True,
            err=True,
        )
    _run("erasing", as_json, quiet, keyops.delete_secrets, digest=digest, batch_size=batch_size)
