"""Keeping ``automation_triggers.next_fire_at`` right when triggers or automations change.

``next_fire_at`` is the single source of truth for the dispatcher (:mod:`shared.cron.dispatch`):
a cron trigger fires when ``next_fire_at <= now`` and its automation is ``active`` or
``preview``. ``NULL`` means "not scheduled". The rules:

* A cron trigger of an ``active`` or ``preview`` automation has ``next_fire_at`` = the first
  slot of its schedule strictly after the moment it was (re)scheduled.
* A cron trigger of a ``disabled`` automation has ``next_fire_at = NULL``. Disabling throws the
  pending slot away, so re-enabling schedules from the re-enable time: the disabled period is
  never replayed (not even as one coalesced fire). The dispatcher also clears ``next_fire_at``
  of due triggers whose automation is disabled, so this holds even for a writer that forgot.
* Webhook triggers never have a ``next_fire_at`` (a CHECK constraint enforces it).

The management API calls :func:`refresh_next_fire` whenever it creates a cron trigger or changes
its schedule, and :func:`refresh_automation_triggers` whenever an automation's status changes.
Neither commits: the caller's transaction makes the change atomic with the edit that caused it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.cron.schedule import ScheduleError, next_fire_after, parse_schedule
from shared.models import Automation, AutomationStatus, AutomationTrigger, TriggerType

__all__ = ["FIRING_STATUSES", "refresh_automation_triggers", "refresh_next_fire"]

log = logging.getLogger(__name__)

#: Automation statuses whose cron triggers fire (``preview`` fires and records ``preview``).
FIRING_STATUSES = frozenset({AutomationStatus.ACTIVE, AutomationStatus.PREVIEW})


def refresh_next_fire(
    session: Session,
    trigger: AutomationTrigger,
    automation_status: AutomationStatus | str,
    now: datetime,
) -> None:
    """Recompute ``trigger.next_fire_at`` from its schedule as of ``now`` (aware UTC).

    Call it after creating a cron trigger or changing its ``cron_schedule``. For an automation
    in ``active``/``preview`` it sets the first slot strictly after ``now`` (a slot exactly at
    ``now`` is not fired retroactively); otherwise, and for webhook triggers, it sets ``None``.

    Raises :class:`~shared.cron.schedule.ScheduleError` (a ``ValueError`` with a message meant
    for the user) when the schedule is invalid, whatever the automation status, so an invalid
    schedule is rejected at save time. Does not flush or commit; ``session`` is accepted so the
    signature matches :func:`refresh_automation_triggers`.
    """
    del session  # the change rides on the caller's unit of work
    if trigger.type != TriggerType.CRON:
        trigger.next_fire_at = None
        return
    if trigger.cron_schedule is None:
        raise ScheduleError("a cron trigger needs a schedule")
    schedule = parse_schedule(trigger.cron_schedule, now=now)
    if AutomationStatus(automation_status) in FIRING_STATUSES:
        trigger.next_fire_at = next_fire_after(schedule, now)
    else:
        trigger.next_fire_at = None


def refresh_automation_triggers(session: Session, automation: Automation, now: datetime) -> None:
    """Bring every cron trigger of ``automation`` in line with its (new) status.

    Call it after changing ``automation.status`` (in the same transaction):

    * to ``disabled``: every cron trigger gets ``next_fire_at = None``.
    * to ``active``/``preview``: a trigger that already has a future ``next_fire_at`` keeps it
      (an ``active`` <-> ``preview`` switch neither skips nor adds a fire); any other trigger
      (``None`` after being disabled, or a stale past value) is scheduled from ``now``, so the
      time the automation was disabled is not replayed.

    A stored schedule that no longer parses (e.g. its zone vanished from the tz database) is
    unscheduled (``None``) and logged instead of failing the status change. The triggers are
    loaded with ``session`` (the pending ORM state is flushed first by autoflush); nothing is
    committed.
    """
    status = AutomationStatus(automation.status)
    triggers = session.scalars(
        select(AutomationTrigger).where(
            AutomationTrigger.automation_id == automation.id,
            AutomationTrigger.type == TriggerType.CRON,
        )
    ).all()
    for trigger in triggers:
        if status not in FIRING_STATUSES:
            trigger.next_fire_at = None
            continue
        if trigger.next_fire_at is not None and trigger.next_fire_at > now:
            continue
        try:
            refresh_next_fire(session, trigger, status, now)
        except ScheduleError as exc:
            log.warning("cron trigger %s not scheduled: %s", trigger.id, exc)
            trigger.next_fire_at = None
