"""Output plumbing of the API commands: plain text tables and details, ``--json``, and turning
client errors into a message and an exit code.

Human-readable tables by default, ``--json`` for scripts. Exit codes: 0 success, 1 the API
refused (the message says why), 2 usage or configuration error, 3 server unreachable.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
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


#: widest table cell; longer ones are cut with an ellipsis (except full-width columns)
CELL_WIDTH = 48
#: columns whose values are shown in full, however long: URLs are copied, not read
FULL_WIDTH_SUFFIXES = ("_url",)


def _cell(value: Any, width: int | None = CELL_WIDTH) -> str:
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
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    headers: Mapping[str, str] | None = None,
) -> str:
    """A plain text table (no dependency); long cells are cut with an ellipsis, except in
    URL columns (names ending in ``_url``), which are always shown in full. A column's header
    is its name in upper case unless ``headers`` names it otherwise."""
    titles = [(headers or {}).get(col, col.upper()) for col in columns]
    limits = [None if col.endswith(FULL_WIDTH_SUFFIXES) else CELL_WIDTH for col in columns]
    cells = [
        [_cell(row.get(col), w) for col, w in zip(columns, limits, strict=True)] for row in rows
    ]
    widths = [max([len(title), *(len(r[i]) for r in cells)]) for i, title in enumerate(titles)]
    lines = ["  ".join(title.ljust(widths[i]) for i, title in enumerate(titles)).rstrip()]
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
