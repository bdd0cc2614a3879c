"""The dry run behind ``POST /api/v1/automations/<id>/test`` (SPEC 5, last paragraph): the
pipeline's filter, labels and chat match on a payload, storing nothing.

:func:`test_automation` is the API's operation (authorization, 404s); :func:`dry_run` is the
evaluation on an automation already loaded, for callers that have not validated their filter.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.accounts.authz import Principal
from shared.automations.service import get_automation
from shared.chats.matching import find_matching_chat
from shared.errors import NotFound
from shared.models import Automation, AutomationTrigger, ChatScope, TriggerType
from shared.triggers.filters import (
    event_type_accepted,
    filter_matches,
    resolve_labels,
    validate_filter,
    validate_label_paths,
)

__all__ = ["DryRunResult", "default_trigger", "dry_run", "test_automation"]


class DryRunResult(TypedDict):
    filter_matched: bool
    #: None when no event type was given or the trigger accepts every type
    event_type_matched: bool | None
    resolved_labels: dict[str, str]
    existing_chat_id: str | None
    would_create_new_chat: bool


def default_trigger(session: Session, automation_id: uuid.UUID) -> AutomationTrigger | None:
    """The automation's oldest webhook trigger, whose filter and label paths a dry run uses
    when none are supplied."""
    return session.scalars(
        select(AutomationTrigger)
        .where(
            AutomationTrigger.automation_id == automation_id,
            AutomationTrigger.type == TriggerType.WEBHOOK,
        )
        .order_by(AutomationTrigger.created_at, AutomationTrigger.id)
        .limit(1)
    ).first()


def test_automation(
    session: Session,
    principal: Principal,
    automation_id: uuid.UUID,
    payload: Any,
    filter: Mapping[str, Any] | None = None,
    label_paths: Mapping[str, str] | None = None,
    trigger_id: uuid.UUID | None = None,
    event_type: str | None = None,
) -> DryRunResult:
    """Needs only read access: nothing is written. ``filter`` / ``label_paths`` were validated
    by the request schema; when absent, those of ``trigger_id`` or of the automation's oldest
    webhook trigger are used."""
    automation = get_automation(session, principal, automation_id)
    nested = session.begin_nested()
    try:
        return _evaluate(session, automation, payload, filter, label_paths, trigger_id, event_type)
    except LookupError:
        raise NotFound(f"trigger {trigger_id} not found", field="trigger_id") from None
    finally:
        nested.rollback()  # belt and braces: a dry run stores nothing


def dry_run(
    session: Session,
    automation: Automation,
    payload: Any,
    filter: Mapping[str, Any] | None = None,
    label_paths: Mapping[str, str] | None = None,
    *,
    trigger_id: uuid.UUID | None = None,
    event_type: str | None = None,
) -> DryRunResult:
    """Steps 2-4 of the pipeline on ``payload``; writes nothing.

    ``filter`` / ``label_paths`` default to those of the trigger ``trigger_id`` (which must
    belong to the automation, else ``LookupError``), else of the automation's oldest webhook
    trigger, else empty. Supplied ones are validated first (``FilterError``), so an
    unsupported path raises the same error as saving it would. Labels and
    ``existing_chat_id`` are reported whether or not the filter matched;
    ``would_create_new_chat`` is True when the filter (and the trigger's ``event_types``,
    when ``event_type`` is given) matched and no chat would be continued. The chat match
    follows the automation's ``chat_scope``. Automation status and rate limits are not
    considered.
    """
    if filter is not None:
        validate_filter(dict(filter))
    if label_paths is not None:
        validate_label_paths(dict(label_paths))
    return _evaluate(session, automation, payload, filter, label_paths, trigger_id, event_type)


def _evaluate(
    session: Session,
    automation: Automation,
    payload: Any,
    filter: Mapping[str, Any] | None,
    label_paths: Mapping[str, str] | None,
    trigger_id: uuid.UUID | None,
    event_type: str | None,
) -> DryRunResult:
    """:func:`dry_run` on a filter and label paths already validated (or absent)."""
    trigger: AutomationTrigger | None
    if trigger_id is not None:
        trigger = session.get(AutomationTrigger, trigger_id)
        if trigger is None or trigger.automation_id != automation.id:
            raise LookupError(f"trigger {trigger_id} does not belong to this automation")
    else:
        trigger = default_trigger(session, automation.id)
    if filter is None:
        filter = trigger.filter if trigger is not None else {}
    if label_paths is None:
        label_paths = trigger.label_paths if trigger is not None else {}
    type_matched: bool | None = None
    if event_type is not None and trigger is not None and trigger.event_types:
        type_matched = event_type_accepted(trigger.event_types, event_type)

    matched = filter_matches(dict(filter), payload)
    # Labels and the chat lookup are reported even when the filter does not match: the dry
    # run is how users debug their label paths.
    labels = resolve_labels(dict(label_paths), payload)
    scope = None if automation.chat_scope == ChatScope.ORGANIZATION else automation.id
    chat_id = find_matching_chat(
        session, automation.owner_id, automation.organization_id, labels, scope
    )
    return DryRunResult(
        filter_matched=matched,
        event_type_matched=type_matched,
        resolved_labels=labels,
        existing_chat_id=str(chat_id) if chat_id is not None else None,
        would_create_new_chat=matched and type_matched is not False and chat_id is None,
    )
