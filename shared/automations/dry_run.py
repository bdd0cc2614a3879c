"""The dry run behind ``POST /api/v1/automations/<id>/test`` (SPEC 5, last paragraph): the
pipeline's filter, labels and chat match on a payload, storing nothing.

:func:`test_automation` is the API's operation (authorization, 404s); :func:`dry_run` is the
evaluation on an automation already loaded, for callers that have not validated their filter.

**Where the evaluation runs.** The filter and labels are evaluated on a small dedicated pool
(:data:`DRY_RUN_THREADS` threads, at most :data:`DRY_RUN_QUEUE` more waiting), never on the
thread that serves the request: those threads also serve webhook ingress, and any tenant with
a read-only token can send dry runs. The GIL still makes the pool share the CPU with ingress,
so the pool alone is not the defence; the bounds are. Each run has the same CPU budget as
the worker's evaluation of an event (:class:`~shared.triggers.filters.CpuBudget`), and at most
:data:`DRY_RUN_THREADS` runs evaluate at once, so dry runs can take at most that many budgets
of CPU at any moment. A dry run that finds the pool and its queue full is answered at once
with :class:`DryRunBusy` (503 with ``Retry-After``) instead of piling up waiting threads.
The database work (loading the trigger, the chat match) stays on the request's thread and
session.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Final, TypedDict, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.accounts.authz import Principal
from shared.automations.service import get_automation
from shared.chats.matching import find_matching_chat
from shared.errors import DomainError, Invalid, NotFound
from shared.models import Automation, AutomationTrigger, ChatScope, TriggerType
from shared.triggers.filters import (
    FILTER_BUDGET_MS,
    CpuBudget,
    FilterEvaluationError,
    event_type_accepted,
    filter_matches,
    resolve_labels,
    validate_filter,
    validate_label_paths,
)

__all__ = [
    "DRY_RUN_QUEUE",
    "DRY_RUN_THREADS",
    "DryRunBusy",
    "DryRunResult",
    "default_trigger",
    "dry_run",
    "evaluate_bounded",
    "test_automation",
]

T = TypeVar("T")

#: Threads that evaluate dry runs' filters and labels (see the module doc).
DRY_RUN_THREADS: Final = 2
#: Dry runs that may wait for a thread; one more is answered with :class:`DryRunBusy`.
DRY_RUN_QUEUE: Final = 8
#: Seconds a client is asked to wait when the pool is full (a run takes milliseconds).
DRY_RUN_RETRY_AFTER: Final = 1
#: A safety net only: a run ends by itself within about two CPU budgets.
_WAIT_SECONDS: Final = 30.0

_executor = ThreadPoolExecutor(max_workers=DRY_RUN_THREADS, thread_name_prefix="dry-run")
_slots = threading.BoundedSemaphore(DRY_RUN_THREADS + DRY_RUN_QUEUE)


class DryRunBusy(DomainError):
    """Too many dry runs in progress: answered 503 with ``Retry-After``."""

    status = 503
    code = "unavailable"

    def __init__(self) -> None:
        super().__init__("too many dry runs in progress; retry shortly")
        self.retry_after = DRY_RUN_RETRY_AFTER


def evaluate_bounded(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the dry-run pool, waiting for its result; :class:`DryRunBusy` when
    the pool and its queue are full. Exceptions of ``fn`` propagate."""
    if not _slots.acquire(blocking=False):
        raise DryRunBusy()
    try:
        future = _executor.submit(fn, *args)
    except BaseException:
        _slots.release()
        raise
    future.add_done_callback(lambda _done: _slots.release())
    try:
        return future.result(timeout=_WAIT_SECONDS)
    except FutureTimeout:
        raise DryRunBusy() from None


def _filter_and_labels(
    filter: dict[str, Any], label_paths: dict[str, Any], payload: Any, budget_ms: float
) -> tuple[bool, dict[str, str]]:
    """The filter and the labels under one CPU budget, as the worker evaluates an event."""
    budget = CpuBudget(budget_ms)
    matched = filter_matches(filter, payload, budget)
    # Labels are reported even when the filter does not match: the dry run is how users
    # debug their label paths.
    return matched, resolve_labels(label_paths, payload, budget)


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
    budget_ms: float = FILTER_BUDGET_MS,
) -> DryRunResult:
    """Needs only read access: nothing is written. ``filter`` / ``label_paths`` were validated
    by the request schema; when absent, those of ``trigger_id`` or of the automation's oldest
    webhook trigger are used."""
    automation = get_automation(session, principal, automation_id)
    nested = session.begin_nested()
    try:
        return _evaluate(
            session, automation, payload, filter, label_paths, trigger_id, event_type, budget_ms
        )
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
    budget_ms: float = FILTER_BUDGET_MS,
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
    considered. The evaluation runs on the dry-run pool (:func:`evaluate_bounded`) under the
    CPU budget; a filter that cannot be evaluated (over budget, or a stored ``$regex`` RE2
    refuses) raises :class:`~shared.errors.Invalid` (``filter_evaluation_failed``), and a
    full pool :class:`DryRunBusy`.
    """
    if filter is not None:
        validate_filter(dict(filter))
    if label_paths is not None:
        validate_label_paths(dict(label_paths))
    return _evaluate(
        session, automation, payload, filter, label_paths, trigger_id, event_type, budget_ms
    )


def _evaluate(
    session: Session,
    automation: Automation,
    payload: Any,
    filter: Mapping[str, Any] | None,
    label_paths: Mapping[str, str] | None,
    trigger_id: uuid.UUID | None,
    event_type: str | None,
    budget_ms: float,
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

    try:
        matched, labels = evaluate_bounded(
            _filter_and_labels, dict(filter), dict(label_paths), payload, budget_ms
        )
    except FilterEvaluationError as exc:
        # what would make the event `error`; the filter itself may be the stored one
        raise Invalid(str(exc), code="filter_evaluation_failed", field="filter") from None
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
