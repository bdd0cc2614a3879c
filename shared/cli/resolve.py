"""Turning command-line arguments into API values: AUTOMATION and ``--org`` references
(an id or a name), JSON given inline or as @FILE, LABEL=PATH pairs and durations."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

import click

from shared.cli.client import ApiClient, ClientError


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
    """``--label LABEL=PATH`` values as a mapping (None when none were given)."""
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
    """Seconds from ``90``, ``30m``, ``12h`` or ``7d`` (``--previous-valid-for``)."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise click.BadParameter(
            f"expected seconds or a duration like 30m, 12h, 7d; got {value!r}",
            param_hint="--previous-valid-for",
        )
    number, unit = int(match.group(1)), match.group(2) or "s"
    return number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
