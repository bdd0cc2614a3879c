"""Issue 16 item 2 in the worker's pipeline (real PostgreSQL): the filter and labels of one
event share a CPU budget; an event past it, or with a stored ``$regex`` RE2 refuses, ends as
``error`` with the reason and nothing else is written."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.events.options import PipelineOptions
from shared.infra.clock import FrozenClock
from shared.models import Automation, AutomationTrigger, Chat, EventStatus
from tests import factories as f
from tests.pipeline.helpers import OPTIONS, messages_for, run

PATHOLOGICAL = "[a-z]*[a-z]*[a-z]*\\d|z$"


def _setup(
    session: Session, clock: FrozenClock, filter: dict[str, Any], labels: dict[str, str]
) -> tuple[Automation, AutomationTrigger]:
    auto = f.automation(session, clock, instructions="Triage.")
    # stored as is: a filter saved before the rules of issue 16
    trig = f.webhook_trigger(session, clock, auto, filter=filter, label_paths=labels)
    return auto, trig


def _budget(ms: float) -> PipelineOptions:
    """The pipeline's options with ``AUTOMATIONS_FILTER_BUDGET_MS`` set to ``ms``."""
    return dataclasses.replace(OPTIONS, filter_budget_ms=ms)


def _chats(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Chat)) or 0)


def test_an_event_past_the_cpu_budget_becomes_error_and_writes_nothing_else(
    pg_session: Session, clock: FrozenClock
) -> None:
    auto, trig = _setup(pg_session, clock, {"title": {"$regex": "^fix"}}, {"repo": "repo"})
    ev = f.event(pg_session, clock, auto, trigger_id=trig.id, payload={"title": "fix " * 20})
    chats = _chats(pg_session)

    outcome, row = run(pg_session, clock, ev, _budget(0.001))  # an artificially tiny budget

    assert outcome.status == EventStatus.ERROR and row.status == EventStatus.ERROR
    assert row.error is not None
    assert row.error.startswith(
        "filter evaluation would exceed its 0.001 ms CPU budget (at filter path 'title'"
    )
    assert row.processed_at is not None
    assert _chats(pg_session) == chats and messages_for(pg_session, ev.id) == []


def test_labels_past_the_cpu_budget_make_the_event_error(
    pg_session: Session, clock: FrozenClock
) -> None:
    big = {"items": [{"n": i} for i in range(50_000)]}
    auto, trig = _setup(pg_session, clock, {}, {"last": "items.#(n>=0)#.n"})
    ev = f.event(pg_session, clock, auto, trigger_id=trig.id, payload=big)

    _, row = run(pg_session, clock, ev, _budget(1.0))

    assert row.status == EventStatus.ERROR
    assert row.error == "filter evaluation exceeded its 1 ms CPU budget (at label 'last')"
    assert row.filter_matched is True


def test_a_stored_regex_re2_refuses_makes_the_event_error(
    pg_session: Session, clock: FrozenClock
) -> None:
    auto, trig = _setup(pg_session, clock, {"ref": {"$regex": "^refs/(?!tags/)"}}, {})
    ev = f.event(pg_session, clock, auto, trigger_id=trig.id, payload={"ref": "refs/heads/x"})

    _, row = run(pg_session, clock, ev)

    assert row.status == EventStatus.ERROR
    assert row.error is not None
    assert row.error.startswith("filter path 'ref': $regex uses a lookaround")
    assert "RE2" in row.error


def test_the_pathological_filter_is_evaluated_within_the_default_budget(
    pg_session: Session, clock: FrozenClock
) -> None:
    """The issue's 64 conditions on 84-character strings (3.3 s of CPU with Python's re):
    the event is processed normally."""
    flt = {f"f{i}": {"$regex": PATHOLOGICAL} for i in range(64)}
    auto, trig = _setup(pg_session, clock, flt, {"first": "f0"})
    payload = {f"f{i}": "a" * 83 + "z" for i in range(64)}
    ev = f.event(pg_session, clock, auto, trigger_id=trig.id, payload=payload)

    _, row = run(pg_session, clock, ev)

    assert row.status == EventStatus.CREATED, row.error
    assert row.filter_matched is True
    assert row.resolved_labels == {"first": "a" * 83 + "z"}
