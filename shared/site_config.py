"""Site-wide settings an admin changes at run time (SPEC 11 "Site config").

Stored as key/value text rows in ``site_configs``; a key with no row has its default. Reads
are one small query; writes validate every given value (0..3650 days), upsert the rows and
write one ``site_config.update`` audit entry with the old and new values.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import audit
from shared.errors import Invalid
from shared.models import SiteConfig

__all__ = ["MAX_DAYS", "SiteSettings", "read_site_config", "write_site_config"]

#: the largest value of each day count (about ten years)
MAX_DAYS = 3650


@dataclass(frozen=True)
class SiteSettings:
    #: archive root chats inactive for this many days (0 = never)
    auto_archive_days: int = 0
    #: delete archived chats this many days after they were archived (0 = keep forever)
    chat_retention_days: int = 30


_DEFAULTS = SiteSettings()
_KEYS = tuple(asdict(_DEFAULTS))


class _FixedClock:
    """The writer's ``now`` as a clock (shared.audit takes a clock)."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


def read_site_config(session: Session) -> SiteSettings:
    """The current settings; unset (or unreadable) keys have their defaults."""
    rows = session.execute(
        select(SiteConfig.key, SiteConfig.value).where(SiteConfig.key.in_(_KEYS))
    ).all()
    values: dict[str, int] = {}
    for key, value in rows:
        try:
            values[key] = int(value)
        except ValueError:  # a hand-edited row: fall back to the default
            continue
    return replace(_DEFAULTS, **values)


def _check_days(field: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{field} must be an integer", field=field)
    if not 0 <= value <= MAX_DAYS:
        raise Invalid(f"{field} must be between 0 and {MAX_DAYS}", field=field)


def write_site_config(
    session: Session,
    now: datetime,
    actor_id: uuid.UUID | None,
    *,
    auto_archive_days: int | None = None,
    chat_retention_days: int | None = None,
) -> SiteSettings:
    """Set the given values (``None`` leaves one unchanged); returns the new settings.

    Raises :class:`~shared.errors.Invalid` naming the field for a value outside 0..3650.
    The caller checks that the actor may (site-admins only) and owns the transaction.
    """
    _check_days("auto_archive_days", auto_archive_days)
    _check_days("chat_retention_days", chat_retention_days)
    old = read_site_config(session)
    changes = {
        k: v
        for k, v in (
            ("auto_archive_days", auto_archive_days),
            ("chat_retention_days", chat_retention_days),
        )
        if v is not None
    }
    new = replace(old, **changes)
    for key, value in changes.items():
        row = session.get(SiteConfig, key, with_for_update=True)
        if row is None:
            session.add(SiteConfig(key=key, value=str(value), updated_at=now))
        else:
            row.value = str(value)
            row.updated_at = now
    session.flush()
    audit.record(
        session,
        _FixedClock(now),
        actor_id=actor_id,
        organization_id=None,
        action="site_config.update",
        resource_type="site_config",
        resource_id=None,
        details={
            "old": {k: getattr(old, k) for k in changes},
            "new": {k: getattr(new, k) for k in changes},
        },
    )
    return new
