"""Helpers shared by the pipeline tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.events.backends import open_store
from shared.events.options import PipelineOptions
from shared.events.pipeline import Outcome, process_event
from shared.infra.clock import Clock
from shared.models import AutomationEvent, ChatMessage, EventStatus

OPTIONS = PipelineOptions()


def run(
    session: Session,
    clock: Clock,
    event: AutomationEvent,
    options: PipelineOptions = OPTIONS,
) -> tuple[Outcome, AutomationEvent]:
    """Process ``event`` and return the outcome and the reloaded row."""
    outcome = process_event(open_store(session.connection(), options), clock, event.id, options)
    session.expire_all()
    row = session.get(AutomationEvent, event.id)
    assert row is not None
    return outcome, row


def messages_for(session: Session, event_id: uuid.UUID) -> list[ChatMessage]:
    return list(session.scalars(select(ChatMessage).where(ChatMessage.event_id == event_id)))


def status_counts(session: Session, automation_id: uuid.UUID) -> dict[str, int]:
    rows = session.execute(
        select(AutomationEvent.status, func.count())
        .where(AutomationEvent.automation_id == automation_id)
        .group_by(AutomationEvent.status)
    ).all()
    return {str(status): int(n) for status, n in rows}


def wait_until(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: {last!r}")


def pending_count(session_factory: Callable[[], Session], automation_id: uuid.UUID) -> int:
    with session_factory() as s:
        return int(
            s.scalar(
                select(func.count()).where(
                    AutomationEvent.automation_id == automation_id,
                    AutomationEvent.status == EventStatus.PENDING,
                )
            )
            or 0
        )
