"""Triggers: create (with a secret shown once), list, update, delete, regenerate the secret."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import audit, keys
from shared.accounts.authz import Principal
from shared.automations.service import get_automation
from shared.cron.schedule import ScheduleError, next_fire_after, parse_schedule
from shared.errors import Invalid, NotFound
from shared.infra.clock import Clock
from shared.infra.crypto import Keyring
from shared.infra.db.pagination import Page, paginate
from shared.models import Automation, AutomationStatus, AutomationTrigger, TriggerType
from shared.triggers.signatures import SecretForms, generate_secret

__all__ = [
    "MAX_PREVIOUS_VALID_SECONDS",
    "CreatedTrigger",
    "create_trigger",
    "delete_trigger",
    "get_trigger",
    "list_triggers",
    "refresh_all_triggers",
    "regenerate_secret",
    "update_trigger",
    "webhook_path",
]

#: a regenerated secret's predecessor stays valid at most this long (7 days)
MAX_PREVIOUS_VALID_SECONDS = 7 * 24 * 3600
SCHEDULE_MAX = 200


@dataclass
class CreatedTrigger:
    trigger: AutomationTrigger
    #: only for webhook triggers, only in this response
    secret: SecretForms | None = field(default=None, repr=False)


def webhook_path(trigger_id: uuid.UUID) -> str:
    return f"/api/v1/automations/triggers/{trigger_id}/webhook"


# Validation of the pieces owned by other modules (filters, cron) ----------------------------


def validate_filter(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid("filter: must be a JSON object {path: expected value}", field="filter")
    try:
        from shared.triggers.filters import FilterError
        from shared.triggers.filters import validate_filter as _validate
    except ImportError:  # pragma: no cover - the filter engine lands separately
        return dict(value)
    try:
        _validate(value)
    except FilterError as exc:
        raise Invalid(f"filter: {exc}", field="filter", code="invalid_filter") from None
    return dict(value)


def validate_label_paths(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()
    ):
        raise Invalid(
            "label_paths: must be a JSON object {label: gjson path} of non-empty strings",
            field="label_paths",
        )
    try:
        from shared.triggers.filters import FilterError
        from shared.triggers.filters import validate_label_paths as _validate
    except ImportError:  # pragma: no cover
        return dict(value)
    try:
        _validate(value)
    except FilterError as exc:
        raise Invalid(f"label_paths: {exc}", field="label_paths", code="invalid_filter") from None
    return dict(value)


def _validate_schedule(value: Any, now: datetime) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("cron_schedule: required for cron triggers", field="cron_schedule")
    text = value.strip()
    if len(text) > SCHEDULE_MAX:
        raise Invalid(f"cron_schedule: at most {SCHEDULE_MAX} characters", field="cron_schedule")
    try:
        parse_schedule(text, now)
    except ScheduleError as exc:
        raise Invalid(
            f"cron_schedule: {exc}", field="cron_schedule", code="invalid_schedule"
        ) from None
    return text


def refresh_next_fire(
    session: Session, trigger: AutomationTrigger, status: AutomationStatus, now: datetime
) -> None:
    """Recompute ``next_fire_at`` of a cron trigger (None unless the automation fires)."""
    try:
        from shared.cron.scheduling import refresh_next_fire as _refresh
    except ImportError:  # pragma: no cover - the cron dispatcher lands separately
        if trigger.type is not TriggerType.CRON or trigger.cron_schedule is None:
            return
        if status in (AutomationStatus.ACTIVE, AutomationStatus.PREVIEW):
            trigger.next_fire_at = next_fire_after(parse_schedule(trigger.cron_schedule, now), now)
        else:
            trigger.next_fire_at = None
        return
    _refresh(session, trigger, status, now)


def refresh_all_triggers(session: Session, automation: Automation, now: datetime) -> None:
    """After a status change: cron triggers start or stop being scheduled."""
    try:
        from shared.cron.scheduling import refresh_automation_triggers
    except ImportError:  # pragma: no cover
        for trigger in session.scalars(
            select(AutomationTrigger).where(
                AutomationTrigger.automation_id == automation.id,
                AutomationTrigger.type == TriggerType.CRON,
            )
        ):
            refresh_next_fire(session, trigger, automation.status, now)
        return
    refresh_automation_triggers(session, automation, now)


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
    fields: Mapping[str, Any],
) -> CreatedTrigger:
    automation = get_automation(session, principal, automation_id, write=True)
    fields = dict(fields)
    unknown = set(fields) - {"type", "cron_schedule", "filter", "label_paths"}
    if unknown:
        name = sorted(unknown)[0]
        raise Invalid(f"{name}: unknown field", field=name, code="unknown_field")
    try:
        ttype = TriggerType(str(fields.get("type")))
    except ValueError:
        raise Invalid("type: must be webhook or cron", field="type") from None
    now = clock.now()
    label_paths = validate_label_paths(fields.get("label_paths"))
    trigger = AutomationTrigger(
        automation_id=automation.id,
        type=ttype,
        label_paths=label_paths,
        filter={},
        created_at=now,
        updated_at=now,
    )
    secret: SecretForms | None = None
    if ttype is TriggerType.WEBHOOK:
        if fields.get("cron_schedule") is not None:
            raise Invalid(
                "cron_schedule: only cron triggers have a schedule", field="cron_schedule"
            )
        trigger.filter = validate_filter(fields.get("filter"))
        secret = generate_secret()
        trigger.webhook_secret, trigger.webhook_secret_key_id = keys.seal(
            session, clock, keyring, secret.hex
        )
    else:
        if fields.get("filter"):
            raise Invalid(
                "filter: cron triggers have no filter (it is never evaluated for cron events)",
                field="filter",
            )
        trigger.cron_schedule = _validate_schedule(fields.get("cron_schedule"), now)
    session.add(trigger)
    session.flush()
    if ttype is TriggerType.CRON:
        refresh_next_fire(session, trigger, automation.status, now)
    audit.record(
        session,
        clock,
        actor_id=principal.user_id,
        organization_id=automation.organization_id,
        action="trigger.create",
        resource_type="automation_trigger",
        resource_id=trigger.id,
        details={"automation_id": str(automation.id), "type": str(ttype)},
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
    fields: Mapping[str, Any],
) -> AutomationTrigger:
    automation, trigger = get_trigger(session, principal, automation_id, trigger_id, write=True)
    now = clock.now()
    changed: list[str] = []
    for name, value in fields.items():
        if name == "filter":
            if trigger.type is TriggerType.CRON:
                if value:
                    raise Invalid(
                        "filter: cron triggers have no filter (it is never evaluated for "
                        "cron events)",
                        field="filter",
                    )
                continue
            value = validate_filter(value)
        elif name == "label_paths":
            value = validate_label_paths(value)
        elif name == "cron_schedule":
            if trigger.type is not TriggerType.CRON:
                raise Invalid(
                    "cron_schedule: only cron triggers have a schedule", field="cron_schedule"
                )
            value = _validate_schedule(value, now)
        else:
            raise Invalid(f"{name}: unknown field", field=name, code="unknown_field")
        if getattr(trigger, name) != value:
            setattr(trigger, name, value)
            changed.append(name)
    if not changed:
        return trigger
    trigger.updated_at = now
    if "cron_schedule" in changed:
        refresh_next_fire(session, trigger, automation.status, now)
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
    """A new secret, shown once. With ``previous_valid_for_seconds`` > 0 the old secret keeps
    verifying until then (rotation without dropped events); 0 invalidates it at once."""
    if (
        isinstance(previous_valid_for_seconds, bool)
        or not isinstance(previous_valid_for_seconds, int)
        or not 0 <= previous_valid_for_seconds <= MAX_PREVIOUS_VALID_SECONDS
    ):
        raise Invalid(
            f"previous_valid_for_seconds: must be between 0 and {MAX_PREVIOUS_VALID_SECONDS} "
            "(7 days)",
            field="previous_valid_for_seconds",
        )
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
