"""Output plumbing of the API commands: plain text tables and details, ``--json``, and turning
client errors into a message and an exit code.

Human-readable tables by default, ``--json`` for scripts. Exit codes: 0 success, 1 the API
refused (the message says why), 2 usage or configuration error, 3 server unreachable.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

from shared.cli.client import ClientError

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Print a ClientError as ``error: ...`` on stderr and exit with its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def json_option(fn: F) -> F:
    """The ``--json`` flag (parameter ``as_json``)."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(fn)


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
    """One ``key  value`` line per field (all of them by default); nested values as JSON."""
    keys = list(fields or obj.keys())
    width = max(len(k) for k in keys) if keys else 0
    lines = []
    for key in keys:
        value = obj.get(key)
        if isinstance(value, dict | list):
            value = json.dumps(value, sort_keys=True)
        lines.append(f"{key.ljust(width)}  {'-' if value is None else value}")
    return "\n".join(lines)
