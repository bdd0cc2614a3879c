"""Triggers: create (with a secret shown once), list, update, delete, regenerate the secret.

Input is validated once, at the edge: the API's request schemas (which the CLI uses too) call
the rule functions here (:func:`validate_filter`, :func:`validate_label_paths`,
:func:`validate_schedule`, :func:`kind_error`) and hand over a :class:`NewTrigger` or
:class:`TriggerChanges`. The operations below only check what needs the database:
authorization, existence, and the rules that depend on a stored trigger's type.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import audit, keys
from shared.accounts.authz import Principal
from shared.automations.service import get_automation
from shared.cron.schedule import ScheduleError, parse_schedule
from shared.cron.scheduling import refresh_next_fire
from shared.errors import Invalid, NotFound
from shared.infra.clock import Clock
from shared.infra.crypto import Keyring
from shared.infra.db.pagination import Page, paginate
from shared.models import Automation, AutomationStatus, AutomationTrigger, TriggerType
from shared.models.automation import REPLAY_WINDOW_DEFAULT_SECONDS, REPLAY_WINDOW_MAX_SECONDS
from shared.triggers import filters
from shared.triggers.signatures import SecretForms, generate_secret

__all__ = [
    "MAX_PREVIOUS_VALID_SECONDS",
    "REPLAY_WINDOW_DEFAULT_SECONDS",
    "REPLAY_WINDOW_MAX_SECONDS",
    "SCHEDULE_MAX",
    "CreatedTrigger",
    "NewTrigger",
    "TriggerChanges",
    "create_trigger",
    "delete_trigger",
    "get_trigger",
    "kind_error",
    "list_triggers",
    "regenerate_secret",
    "update_trigger",
    "validate_filter",
    "validate_label_paths",
    "validate_schedule",
    "webhook_path",
]

#: a regenerated secret's predecessor stays valid at most this long (7 days)
MAX_PREVIOUS_VALID_SECONDS = 7 * 24 * 3600
#: longest ``cron_schedule`` text accepted
SCHEDULE_MAX = 200


@dataclass
class CreatedTrigger:
    trigger: AutomationTrigger
    #: only for webhook triggers, only in this response
    secret: SecretForms | None = field(default=None, repr=False)


@dataclass(frozen=True)
class NewTrigger:
    """A validated trigger to create: a schedule only for cron, a filter only for webhook."""

    type: TriggerType
    cron_schedule: str | None = None
    filter: dict[str, Any] = field(default_factory=dict)
    label_paths: dict[str, str] = field(default_factory=dict)
    #: webhook only; empty: every event type
    event_types: tuple[str, ...] = ()
    message_template: str | None = None
    #: webhook only: a GitHub-style delivery of a body already received within this many
    #: seconds is a duplicate (0: off)
    replay_window_seconds: int = REPLAY_WINDOW_DEFAULT_SECONDS


class TriggerChanges(TypedDict, total=False):
    """Validated changes to a trigger; only the keys present change (``{}`` clears)."""

    cron_schedule: str
    filter: dict[str, Any]
    label_paths: dict[str, str]
    event_types: list[str]
    message_template: str | None
    replay_window_seconds: int


def webhook_path(trigger_id: uuid.UUID) -> str:
    return f"/api/v1/automations/triggers/{trigger_id}/webhook"


# Rules, called by the request schemas ------------------------------------------------------


def validate_filter(value: dict[str, Any] | None) -> None:
    """Raise ``Invalid`` (``invalid_filter``) unless ``value`` is a well-formed filter."""
    try:
        filters.validate_filter(value)
    except filters.FilterError as exc:
        raise Invalid(f"filter: {exc}", field="filter", code="invalid_filter") from None


def validate_label_paths(value: dict[str, str] | None) -> None:
    """Raise ``Invalid`` (``invalid_filter``) unless ``value`` maps label names to paths."""
    try:
        filters.validate_label_paths(value)
    except filters.FilterError as exc:
        raise Invalid(f"label_paths: {exc}", field="label_paths", code="invalid_filter") from None


def validate_schedule(value: str | None, now: datetime) -> None:
    """Raise ``Invalid`` unless ``value`` (stripped) is a schedule that fires within five
    years of ``now``."""
    if not value:
        raise Invalid("cron_schedule: required for cron triggers", field="cron_schedule")
    try:
        parse_schedule(value, now)
    except ScheduleError as exc:
        raise _schedule_error(exc) from None


_KIND_MESSAGES = {
    "cron_schedule": "cron_schedule: only cron triggers have a schedule",
    "filter": "filter: cron triggers have no filter (it is never evaluated for cron events)",
    "event_types": "event_types: cron triggers have no event types (only webhooks carry one)",
    "replay_window_seconds": (
        "replay_window_seconds: cron triggers have no replay window (only webhooks are replayed)"
    ),
}
#: fields only a webhook trigger has
_WEBHOOK_ONLY = ("filter", "event_types", "replay_window_seconds")


def kind_error(name: str) -> Invalid:
    """The error for ``cron_schedule`` on a webhook trigger, or ``filter``, ``event_types`` or
    ``replay_window_seconds`` on a cron trigger."""
    return Invalid(_KIND_MESSAGES[name], field=name)


def _schedule_error(exc: ScheduleError) -> Invalid:
    return Invalid(f"cron_schedule: {exc}", field="cron_schedule", code="invalid_schedule")


def _schedule(
    session: Session, trigger: AutomationTrigger, status: AutomationStatus, now: datetime
) -> None:
    """Set ``next_fire_at``. The schema checked the schedule against the wall clock; the
    injected clock may differ (tests, ``AUTOMATIONS_CLOCK_OFFSET_SECONDS``), so a schedule
    that fails here is reported as the same error rather than a 500."""
    try:
        refresh_next_fire(session, trigger, status, now)
    except ScheduleError as exc:
        raise _schedule_error(exc) from None


# CRUD -------------------------------------------------------------------------------------


def get_trigger(
    session: Session,
    principal: Principal,
    automation_id: uuid.UUID,
    trigger_id: uuid.UUID,
    *,
    write: bool = False,
) -> tuple[Automation, AutomationTrigger]:
    automation = get_automation(session, principal, automation_id, write=write)
    stmt = select(AutomationTrigger).where(
        AutomationTrigger.id == trigger_id, AutomationTrigger.automation_id == automation.id
    )
    if write:
        stmt = stmt.with_for_update()
    trigger = session.scalar(stmt)
    if trigger is None:
        raise NotFound(f"trigger {trigger_id} not found", field="trigger_id")
    return automation, trigger


def create_trigger(
    session: Session,
    clock: Clock,
    keyring: Keyring,
    principal: Principal,
    automation_id: uuid.UUID,
    new: NewTrigger,
) -> CreatedTrigger:
    automation = get_automation(session, principal, automation_id, write=True)
    now = clock.now()
    trigger = AutomationTrigger(
        automation_id=automation.id,
        type=new.type,
        label_paths=dict(new.label_paths),
        filter={},
        event_types=[],
        message_template=new.message_template,
        created_at=now,
        updated_at=now,
    )
    secret: SecretForms | None = None
    if new.type is TriggerType.WEBHOOK:
        trigger.filter = dict(new.filter)
        trigger.event_types = list(new.event_types)
        trigger.replay_window_seconds = new.replay_window_seconds
        secret = generate_secret()
        trigger.webhook_secret, trigger.webhook_secret_key_id = keys.seal(
            session, clock, keyring, secret.hex
        )
    else:
        trigger.cron_schedule = new.cron_schedule
    session.add(trigger)
    session.flush()
    if new.type is TriggerType.CRON:
        _schedule(session, trigger, automation.status, now)
    audit.record(
        session,
        clock,
        actor_id=principal.user_id,
        organization_id=automation.organization_id,
        action="trigger.create",
        resource_type="automation_trigger",
        resource_id=trigger.id,
        details={"automation_id": str(automation.id), "type": str(new.type)},
    )
    return CreatedTrigger(trigger=trigger, secret=secret)


def list_triggers(
    session: Session,
    principal: Principal,
    automation_id: uuid.UUID,
    *,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[AutomationTrigger]:
    automation = get_automation(session, principal, automation_id)
    stmt = select(AutomationTrigger).where(AutomationTrigger.automation_id == automation.id)
    return paginate(
        session,
        stmt,
        kind="triggers",
        sort_col=AutomationTrigger.created_at,
        id_col=AutomationTrigger.id,
        limit=limit,
        cursor=cursor,
        descending=False,
    )


def update_trigger(
    session: Session,
    clock: Clock,
    principal: Principal,
    automation_id: uuid.UUID,
    trigger_id: uuid.UUID,
    changes: TriggerChanges,
) -> AutomationTrigger:
    """Apply ``changes``; what a trigger may have depends on its stored type (400 otherwise;
    an empty filter or event-type list, or a replay window of 0, on a cron trigger is
    ignored)."""
    automation, trigger = get_trigger(session, principal, automation_id, trigger_id, write=True)
    now = clock.now()
    changed: list[str] = []
    for name, value in changes.items():
        if name in _WEBHOOK_ONLY and trigger.type is TriggerType.CRON:
            if value:
                raise kind_error(name)
            continue
        if name == "cron_schedule" and trigger.type is not TriggerType.CRON:
            raise kind_error("cron_schedule")
        if getattr(trigger, name) != value:
            setattr(trigger, name, value)
            changed.append(name)
    if not changed:
        return trigger
    trigger.updated_at = now
    if "cron_schedule" in changed:
        _schedule(session, trigger, automation.status, now)
    session.flush()
    audit.record(
        session,
        clock,
        actor_id=principal.user_id,
        organization_id=automation.organization_id,
        action="trigger.update",
        resource_type="automation_trigger",
        resource_id=trigger.id,
        details={"automation_id": str(automation.id), "fields": sorted(changed)},
    )
    return trigger


def delete_trigger(
    session: Session,
    clock: Clock,
    principal: Principal,
    automation_id: uuid.UUID,
    trigger_id: uuid.UUID,
) -> None:
    automation, trigger = get_trigger(session, principal, automation_id, trigger_id, write=True)
    audit.record(
        session,
        clock,
        actor_id=principal.user_id,
        organization_id=automation.organization_id,
        action="trigger.delete",
        resource_type="automation_trigger",
        resource_id=trigger.id,
        details={"automation_id": str(automation.id), "type": str(trigger.type)},
    )
    session.delete(trigger)
    session.flush()


def regenerate_secret(
    session: Session,
    clock: Clock,
    keyring: Keyring,
    principal: Principal,
    automation_id: uuid.UUID,
    trigger_id: uuid.UUID,
    previous_valid_for_seconds: int = 0,
) -> CreatedTrigger:
    """A new secret, shown once. With ``previous_valid_for_seconds`` (0 to
    :data:`MAX_PREVIOUS_VALID_SECONDS`, checked by the schema) the old secret keeps verifying
    until then (rotation without dropped events); 0 invalidates it at once."""
    automation, trigger = get_trigger(session, principal, automation_id, trigger_id, write=True)
    if trigger.type is not TriggerType.WEBHOOK:
        raise Invalid(
            "trigger_id: cron triggers have no secret to regenerate",
            field="trigger_id",
            code="not_a_webhook_trigger",
        )
    now = clock.now()
    if previous_valid_for_seconds > 0:
        # The old ciphertext moves as-is: no need to decrypt it (it may even use an old key).
        trigger.previous_webhook_secret = trigger.webhook_secret
        trigger.previous_webhook_secret_key_id = trigger.webhook_secret_key_id
        trigger.previous_secret_expires_at = now + timedelta(seconds=previous_valid_for_seconds)
    else:
        trigger.previous_webhook_secret = None
        trigger.previous_webhook_secret_key_id = None
        trigger.previous_secret_expires_at = None
    secret = generate_secret()
    trigger.webhook_secret, trigger.webhook_secret_key_id = keys.seal(
        session, clock, keyring, secret.hex
    )
    trigger.updated_at = now
    session.flush()
    audit.record(
        session,
        clock,
        actor_id=principal.user_id,
        organization_id=automation.organization_id,
        action="trigger.regenerate_secret",
        resource_type="automation_trigger",
        resource_id=trigger.id,
        details={
            "automation_id": str(automation.id),
            "previous_valid_for_seconds": previous_valid_for_seconds,
        },
    )
    return CreatedTrigger(trigger=trigger, secret=secret)
