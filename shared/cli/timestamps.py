"""The CLI's timestamp argument: accepts what the CLI itself prints, and RFC 3339.

Accepted: ``2026-12-05T23:04:30Z``, ``2026-12-05T23:04:30.123456+00:00``,
``2026-12-05 23:04:30`` (a space instead of ``T``), ``2026-12-05T23:04`` and a bare date
``2026-12-05`` (midnight). Without an offset the time is UTC, the zone the CLI prints in.
The result is in UTC: a time that falls outside years 1 to 9999 once converted (such as
``0001-01-01T00:00:00+01:00``) is refused here, with the other unparsable input.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click


def parse_timestamp(text: str) -> datetime:
    """An aware datetime in UTC; ``ValueError`` with the accepted forms when ``text`` is none,
    or saying so when it is out of range in UTC."""
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a timestamp: use e.g. 2026-12-05T23:04:30Z, "
            "'2026-12-05 23:04:30' (UTC) or 2026-12-05"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            f"{text!r} is out of range: in UTC it must fall between 0001-01-01 and 9999-12-31"
        ) from None


class Timestamp(click.ParamType):
    name = "TIMESTAMP"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            return parse_timestamp(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


TIMESTAMP = Timestamp()
