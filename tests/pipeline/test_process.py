"""SPEC 5 steps 1-8 through :func:`shared.pipeline.process_event`, on PostgreSQL and SQLite."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.errors import describe_error
from shared.events.backends import open_store
from shared.events.options import PipelineOptions
from shared.events.pipeline import (
    DROPPED_DISABLED,
    DROPPED_TRIGGER_DELETED,
    mark_failed,
    process_event,
)
from shared.infra.clock import FrozenClock
from shared.models import (
    Automation,
    AutomationEvent,
    AutomationStatus,
    AutomationTrigger,
    Chat,
    ChatMessage,
    ChatStatus,
    ClientType,
    EventStatus,
    MessageRole,
    ModelConfig,
    User,
)
from tests import factories as f
from tests.pipeline.helpers import messages_for, run


def _setup(
    session: Session,
    clock: FrozenClock,
    *,
    filter: dict[str, Any] | None = None,
    label_paths: dict[str, str] | None = None,
    **automation_kw: Any,
) -> tuple[Automation, AutomationTrigger]:
    auto = f.automation(session, clock, instructions="Triage this event.", **automation_kw)
    trig = f.webhook_trigger(
        session, clock, auto, filter=filter or {}, label_paths=label_paths or {}
    )
    return auto, trig


def _event(
    session: Session,
    clock: FrozenClock,
    auto: Automation,
    trig: AutomationTrigger | None,
    payload: Any,
    **kw: Any,
) -> Any:
    return f.event(
        session, clock, auto, trigger_id=trig.id if trig else None, payload=payload, **kw
    )


def _chat_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Chat)) or 0)


# --- created ---------------------------------------------------------------------------


def test_active_event_creates_a_pending_chat_with_the_first_message(
    any_session: Session, clock: FrozenClock
) -> None:
    now = clock.now()
    mc = ModelConfig(
        organization_id=f.org(any_session, clock).id,
        name="m",
        base_url="http://x",
        model="m",
        created_at=now,
        updated_at=now,
    )
    any_session.add(mc)
    any_session.flush()
    auto, trig = _setup(
        any_session,
        clock,
        name="triage",
        label_paths={"repo": "repository.full_name", "pr": "number"},
        model_config_id=mc.id,
    )
    received = datetime(2026, 1, 15, 11, 59, 30, tzinfo=UTC)
    payload = {"repository": {"full_name": "acme/api"}, "number": 42, "action": "opened"}
    ev = _event(any_session, clock, auto, trig, payload, received_at=received)
    clock.advance(seconds=5)

    outcome, row = run(any_session, clock, ev)

    assert outcome.applied and outcome.status is EventStatus.CREATED
    assert row.status == EventStatus.CREATED
    assert row.filter_matched is True
    assert row.resolved_labels == {"repo": "acme/api", "pr": "42"}
    assert row.matched_chat_id is None
    assert row.created_chat_id == outcome.chat_id
    assert row.error is None
    assert row.processed_at == clock.now()
    assert row.pending_payload is None

    chat = any_session.get(Chat, row.created_chat_id)
    assert chat is not None
    assert chat.title == "[triage] 2026-01-15 11:59"
    assert chat.status == ChatStatus.PENDING
    assert chat.labels == {"repo": "acme/api", "pr": "42"}
    assert chat.automation_id == auto.id
    assert chat.model_config_id == mc.id
    assert chat.owner_id == auto.owner_id
    assert chat.organization_id == auto.organization_id
    assert chat.client_type == ClientType.API
    assert chat.parent_chat_id is None and not chat.archived
    assert chat.created_at == chat.updated_at == clock.now()

    (msg,) = messages_for(any_session, ev.id)
    assert msg.chat_id == chat.id and msg.role == MessageRole.USER
    text = msg.content
    assert text.startswith("Triage this event.\n")
    assert "Trigger: webhook" in text
    assert "Received: 2026-01-15T11:59:30Z" in text
    assert "  repo: acme/api" in text and "  pr: 42" in text
    block = text.split("```json\n", 1)[1].rsplit("\n```", 1)[0]
    assert json.loads(block) == payload
    assert block.startswith('{\n  "')  # pretty-printed


def test_message_payload_is_reduced_to_valid_json_at_the_configured_size_with_a_note(
    any_session: Session, clock: FrozenClock
) -> None:
    auto, trig = _setup(any_session, clock)
    payload = {"blob": "é" * 5000, "number": 7}
    ev = _event(any_session, clock, auto, trig, payload)
    run(any_session, clock, ev, PipelineOptions(message_payload_max_bytes=300))
    (msg,) = messages_for(any_session, ev.id)
    block = msg.content.split("```json\n", 1)[1].split("\n```", 1)[0]
    shown = json.loads(block)  # never cut in the middle of a value
    assert shown["number"] == 7 and shown["blob"].startswith("éé")
    assert len(block.encode()) <= 300
    total = len(json.dumps(payload, indent=2, ensure_ascii=False).encode())
    assert f"[payload reduced from {total:,} to" in msg.content
    assert "1 string shortened" in msg.content


def test_filters_and_labels_see_the_whole_body_of_a_truncated_payload(
    any_session: Session, clock: FrozenClock
) -> None:
    auto, trig = _setup(
        any_session, clock, filter={"action": "opened"}, label_paths={"n": "number"}
    )
    full = {"action": "opened", "number": 7, "big": "x" * 100}
    ev = _event(
        any_session,
        clock,
        auto,
        trig,
        {"_truncated": True, "_original_size": 140},
        pending_payload=full,
    )
    _, row = run(any_session, clock, ev)
    assert row.status == EventStatus.CREATED
    assert row.resolved_labels == {"n": "7"}
    assert row.pending_payload is None  # the full copy is dropped once processed
    assert row.payload == {"_truncated": True, "_original_size": 140}
    (msg,) = messages_for(any_session, ev.id)
    assert '"big"' in msg.content


# --- filtered ---------------------------------------------------------------------------


def test_filter_mismatch_is_filtered_and_touches_nothing(
    any_session: Session, clock: FrozenClock
) -> None:
    auto, trig = _setup(
        any_session, clock, filter={"action": "opened"}, label_paths={"a": "action"}
    )
    ev = _event(any_session, clock, auto, trig, {"action": "closed"})
    outcome, row = run(any_session, clock, ev)
    assert outcome.status is EventStatus.FILTERED
    assert row.status == EventStatus.FILTERED
    assert row.filter_matched is False
    assert row.resolved_labels is None
    assert row.error is None
    assert row.processed_at is not None
    assert _chat_count(any_session) == 0


FILTER_CASES = [
    # (filter, payload, matches)
    ({"n": 1}, {"n": 1.0}, True),
    ({"n": 1.0}, {"n": 1}, True),
    ({"n": 1}, {"n": "1"}, False),
    ({"n": "1"}, {"n": 1}, False),
    ({"b": True}, {"b": 1}, False),
    ({"x": None}, {"x": None}, True),
    ({"x": None}, {}, False),
    ({"x": None}, {"x": 0}, False),
    ({"o": {"a": [1, {"b": 2}]}}, {"o": {"a": [1.0, {"b": 2}]}}, True),
    ({"o": {"a": 1}}, {"o": {"a": 1, "b": 2}}, False),
    ({"arr": [1, 2]}, {"arr": [1, 2]}, True),
    ({"arr": [1, 2]}, {"arr": [2, 1]}, False),
    ({"a.b": 1}, {"a": {"b": 1}}, True),
    ({"labels.#(name==bug).name": "bug"}, {"labels": [{"name": "x"}, {"name": "bug"}]}, True),
    ({"a": 1, "b": 2}, {"a": 1, "b": 3}, False),
    ({"s": {"$in": ["x", 1]}}, {"s": 1.0}, True),
    ({"s": {"$in": ["x", 1]}}, {"s": "1"}, False),
    ({"s": {"$ne": "x"}}, {}, True),
    ({"s": {"$ne": "x"}}, {"s": "x"}, False),
    ({"s": {"$exists": True}}, {"s": None}, True),
    ({"s": {"$exists": False}}, {"s": None}, False),
    ({"s": {"$exists": False}}, {}, True),
    ({"s": {"$regex": "^rel-\\d+$"}}, {"s": "rel-12"}, True),
    ({"s": {"$regex": "^1"}}, {"s": 12}, False),
    ({"n": {"$gt": 5}}, {"n": 6}, True),
    ({"n": {"$gt": 5}}, {"n": 5}, False),
    ({"n": {"$gte": 5}}, {"n": 5.0}, True),
    ({"n": {"$lt": 5}}, {"n": "4"}, False),
    ({"n": {"$lte": "b"}}, {"n": "a"}, True),
    ({}, {"anything": 1}, True),
]


@pytest.mark.parametrize(("filter", "payload", "matches"), FILTER_CASES)
def test_filter_typing_through_the_pipeline(
    sqlite_session: Session,
    clock: FrozenClock,
    filter: dict[str, Any],
    payload: Any,
    matches: bool,
) -> None:
    auto, trig = _setup(sqlite_session, clock, filter=filter)
    ev = _event(sqlite_session, clock, auto, trig, payload)
    _, row = run(sqlite_session, clock, ev)
    assert row.filter_matched is matches
    assert row.status == (EventStatus.CREATED if matches else EventStatus.FILTERED)


# --- labels ----------------------------------------------------------------------------


def test_labels_take_gjson_string_forms_and_missing_paths_are_omitted(
    any_session: Session, clock: FrozenClock
) -> None:
    auto, trig = _setup(
        any_session,
        clock,
        label_paths={
            "s": "s",
            "int": "i",
            "float": "fl",
            "big": "big",
            "t": "t",
            "f": "f",
            "obj": "obj",
            "arr": "arr",
            "null": "nul",
            "missing": "nope.nothing",
        },
    )
    payload = {
        "s": "main",
        "i": 42,
        "fl": 1.50,
        "big": 1e21,
        "t": True,
        "f": False,
        "obj": {"a": 1, "b": [1, "x"]},
        "arr": [1, 2],
        "nul": None,
    }
    ev = _event(any_session, clock, auto, trig, payload)
    _, row = run(any_session, clock, ev)
    assert row.resolved_labels == {
        "s": "main",
        "int": "42",
        "float": "1.5",
        "big": "1000000000000000000000",
        "t": "true",
        "f": "false",
        "obj": '{"a":1,"b":[1,"x"]}',
        "arr": "[1,2]",
        "null": "",
    }
    chat = any_session.get(Chat, row.created_chat_id)
    assert chat is not None and chat.labels == row.resolved_labels


# --- chat match / continued -----------------------------------------------------------------


def test_continue_picks_the_newest_equal_non_archived_root_chat_of_the_automation(
    any_session: Session, clock: FrozenClock
) -> None:
    auto, trig = _setup(any_session, clock, label_paths={"repo": "repo"})
    owner = any_session.get(User, auto.owner_id)
    assert owner is not None
    org_id = auto.organization_id
    t0 = clock.now() - timedelta(hours=5)

    def chat(minutes: int, labels: dict[str, Any], **kw: Any) -> Chat:
        when = t0 + timedelta(minutes=minutes)
        return f.chat(
            any_session,
            clock,
            kw.pop("owner", owner),
            kw.pop("organization_id", org_id),
            labels=labels,
            created_at=when,
            updated_at=when,
            automation_id=kw.pop("automation_id", auto.id),
            **kw,
        )

    older = chat(1, {"repo": "api"})
    expected = chat(2, {"repo": "api"})
    chat(3, {"repo": "api", "extra": "x"})  # more labels: not equal
    chat(3, {"repo": "web"})  # other value
    chat(4, {"repo": "api"}, archived=True)  # archived: never
    chat(5, {"repo": 1})  # not the same JSON value
    chat(6, {"repo": "api"}, parent_chat_id=older.id, root_chat_id=older.id)  # not a root
    other_owner = f.user(any_session, clock)
    chat(7, {"repo": "api"}, owner=other_owner)  # another owner, same org
    other_org = f.org(any_session, clock)
    chat(8, {"repo": "api"}, organization_id=other_org.id)  # same owner, other org
    other_auto = f.automation(any_session, clock, owner)
    chat(9, {"repo": "api"}, automation_id=other_auto.id)  # another automation's (scope)
    chat(10, {"repo": "api"}, automation_id=None)  # no automation's

    ev = _event(any_session, clock, auto, trig, {"repo": "api"})
    outcome, row = run(any_session, clock, ev)

    assert outcome.status is EventStatus.CONTINUED
    assert row.status == EventStatus.CONTINUED
    assert row.matched_chat_id == expected.id
    assert row.created_chat_id is None
    any_session.refresh(expected)
    assert expected.status == ChatStatus.PENDING
    assert expected.updated_at == clock.now()
    (msg,) = messages_for(any_session, ev.id)
    assert msg.chat_id == expected.id
    assert _chat_count(any_session) == 11  # nothing created


def test_no_labels_means_no_match_even_with_label_less_chats(
    any_session: Session, clock: FrozenClock
) -> None:
    auto, trig = _setup(any_session, clock, label_paths={"repo": "missing"})
    owner = any_session.get(User, auto.owner_id)
    assert owner is not None
    f.chat(any_session, clock, owner, auto.organization_id, labels={})
    ev = _event(any_session, clock, auto, trig, {"x": 1})
    _, row = run(any_session, clock, ev)
    assert row.status == EventStatus.CREATED
    assert row.resolved_labels == {}


def test_second_event_with_the_same_labels_continues_the_chat_the_first_created(
    any_session: Session, clock: FrozenClock
) -> None:
    auto, trig = _setup(any_session, clock, label_paths={"pr": "pr"})
    first = _event(any_session, clock, auto, trig, {"pr": 1})
    _, r1 = run(any_session, clock, first)
    clock.advance(seconds=1)
    second = _event(any_session, clock, auto, trig, {"pr": 1})
    _, r2 = run(any_session, clock, second)
    assert r1.status == EventStatus.CREATED and r2.status == EventStatus.CONTINUED
    assert r2.matched_chat_id == r1.created_chat_id
    n = any_session.scalar(select(func.count()).where(ChatMessage.chat_id == r1.created_chat_id))
    assert n == 2


# --- preview ---------------------------------------------------------------------------


def test_preview_records_the_match_and_never_touches_chats_or_limits(
    any_session: Session, clock: FrozenClock
) -> None:
    auto, trig = _setup(
        any_session,
        clock,
        label_paths={"repo": "repo"},
        status=AutomationStatus.PREVIEW,
        max_chat_creates_per_hour=1,
        max_messages_per_hour=1,
    )
    owner = any_session.get(User, auto.owner_id)
    assert owner is not None
    earlier = clock.now() - timedelta(minutes=30)
    existing = f.chat(
        any_session,
        clock,
        owner,
        auto.organization_id,
        labels={"repo": "api"},
        created_at=earlier,
        updated_at=earlier,
        automation_id=auto.id,
    )
    # the limits are already exhausted: preview must not care
    for _ in range(3):
        f.event(
            any_session,
            clock,
            auto,
            status=EventStatus.CREATED,
            created_chat_id=existing.id,
            received_at=clock.now() - timedelta(minutes=1),
        )

    matching = _event(any_session, clock, auto, trig, {"repo": "api"})
    fresh = _event(any_session, clock, auto, trig, {"repo": "new"})
    _, r1 = run(any_session, clock, matching)
    _, r2 = run(any_session, clock, fresh)

    assert r1.status == EventStatus.PREVIEW and r1.matched_chat_id == existing.id
    assert r2.status == EventStatus.PREVIEW and r2.matched_chat_id is None
    for r in (r1, r2):
        assert r.created_chat_id is None and r.error is None and r.filter_matched is True
    assert r1.resolved_labels == {"repo": "api"}
    assert _chat_count(any_session) == 1
    any_session.refresh(existing)
    assert existing.updated_at == earlier and existing.status == ChatStatus.WAITING
    assert any_session.scalar(select(func.count()).select_from(ChatMessage)) == 0


# --- rate limits -----------------------------------------------------------------------


def test_chat_creation_limit_counts_created_events_in_the_last_hour(
    any_session: Session, clock: FrozenClock
) -> None:
    auto, trig = _setup(any_session, clock, label_paths={"k": "k"}, max_chat_creates_per_hour=2)
    # an old creation (61 min ago) does not count
    old = _event(any_session, clock, auto, trig, {"k": "old"})
    old.received_at = clock.now() - timedelta(minutes=61)
    any_session.flush()
    run(any_session, clock, old)

    rows = []
    for k in ("a", "b", "c"):
        ev = _event(any_session, clock, auto, trig, {"k": k})
        rows.append(run(any_session, clock, ev)[1])
    assert [r.status for r in rows] == [
        EventStatus.CREATED,
        EventStatus.CREATED,
        EventStatus.RATE_LIMITED,
    ]
    limited = rows[2]
    assert limited.error == "chat creation rate limit exceeded: 2/2 per hour"
    assert limited.resolved_labels == {"k": "c"}
    assert limited.created_chat_id is None and limited.matched_chat_id is None
    assert messages_for(any_session, limited.id) == []

    # continuing an existing chat is still allowed: only creations are capped
    again = _event(any_session, clock, auto, trig, {"k": "a"})
    _, r = run(any_session, clock, again)
    assert r.status == EventStatus.CONTINUED and r.matched_chat_id == rows[0].created_chat_id

    # an hour later the window has moved on
    clock.advance(minutes=61)
    later = _event(any_session, clock, auto, trig, {"k": "d"})
    assert run(any_session, clock, later)[1].status == EventStatus.CREATED


def test_message_limit_counts_created_and_continued_and_applies_before_continuing(
    any_session: Session, clock: FrozenClock
) -> None:
    auto, trig = _setup(
        any_session,
        clock,
        label_paths={"k": "k"},
        max_chat_creates_per_hour=10,
        max_messages_per_hour=3,
    )
    statuses = []
    chats = []
    for _ in range(5):
        ev = _event(any_session, clock, auto, trig, {"k": "same"})
        _, row = run(any_session, clock, ev)
        statuses.append(row.status)
        chats.append(row.matched_chat_id)
        clock.advance(seconds=1)
    assert statuses == [
        EventStatus.CREATED,
        EventStatus.CONTINUED,
        EventStatus.CONTINUED,
        EventStatus.RATE_LIMITED,
        EventStatus.RATE_LIMITED,
    ]
    assert chats[3] == chats[1]  # the rate-limited event shows the chat it would have fed
    last = any_session.scalars(
        select(AutomationEvent)
        .where(AutomationEvent.status == EventStatus.RATE_LIMITED)
        .order_by(AutomationEvent.received_at.desc())
    ).first()
    assert last is not None
    assert last.error == "message rate limit exceeded: 3/3 per hour"
    # filtered, preview, rate_limited and error events never count
    assert any_session.scalar(select(func.count()).select_from(ChatMessage)) == 3


# --- lifecycle: disabled, deleted trigger, cron -----------------------------------------


def test_event_of_a_disabled_automation_is_dropped_and_never_acted_on(
    any_session: Session, clock: FrozenClock
) -> None:
    auto, trig = _setup(any_session, clock, label_paths={"k": "k"})
    ev = _event(any_session, clock, auto, trig, {"k": "v"})
    auto.status = AutomationStatus.DISABLED
    any_session.flush()
    outcome, row = run(any_session, clock, ev)
    assert outcome.applied
    assert row.status == EventStatus.FILTERED
    assert row.error == DROPPED_DISABLED
    assert row.filter_matched is None and row.resolved_labels is None
    assert row.processed_at is not None
    assert _chat_count(any_session) == 0


def test_event_whose_trigger_was_deleted_is_dropped(
    any_session: Session, clock: FrozenClock
) -> None:
    auto, _ = _setup(any_session, clock)
    ev = _event(any_session, clock, auto, None, {"k": "v"})
    _, row = run(any_session, clock, ev)
    assert row.status == EventStatus.FILTERED
    assert row.error == DROPPED_TRIGGER_DELETED
    assert _chat_count(any_session) == 0


def test_cron_events_skip_the_filter_and_resolve_labels_from_the_cron_payload(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = f.automation(any_session, clock, instructions="Daily report.")
    trig = f.cron_trigger(
        any_session,
        clock,
        auto,
        filter={"never": "matches"},
        label_paths={"schedule": "schedule"},
    )
    payload = {
        "trigger": "cron",
        "schedule": "0 9 * * *",
        "scheduled_at": "2026-01-15T09:00:00Z",
        "fired_at": "2026-01-15T09:00:01Z",
    }
    ev = _event(any_session, clock, auto, trig, payload, delivery_id="cron:2026-01-15T09:00Z")
    _, row = run(any_session, clock, ev)
    assert row.status == EventStatus.CREATED
    assert row.filter_matched is None
    assert row.resolved_labels == {"schedule": "0 9 * * *"}
    (msg,) = messages_for(any_session, ev.id)
    assert "Trigger: cron" in msg.content


# --- idempotency and failures --------------------------------------------------------------


def test_processing_an_event_twice_applies_it_once(
    any_session: Session, clock: FrozenClock
) -> None:
    auto, trig = _setup(any_session, clock)
    ev = _event(any_session, clock, auto, trig, {"a": 1})
    first, _ = run(any_session, clock, ev)
    clock.advance(seconds=3)
    second, row = run(any_session, clock, ev)
    assert first.applied and not second.applied
    assert second.status is EventStatus.CREATED
    assert row.processed_at == clock.now() - timedelta(seconds=3)
    assert len(messages_for(any_session, ev.id)) == 1
    assert _chat_count(any_session) == 1


def test_missing_event_is_a_no_op(any_session: Session, clock: FrozenClock) -> None:
    outcome = process_event(
        open_store(any_session.connection(), PipelineOptions()),
        clock,
        uuid.uuid4(),
        PipelineOptions(),
    )
    assert outcome.status is None and not outcome.applied


def test_failure_rolls_back_and_marks_the_event_error(
    any_session: Session, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    auto, trig = _setup(any_session, clock)
    ev = _event(any_session, clock, auto, trig, {"a": 1})
    any_session.commit()  # (a savepoint) the event exists before the worker runs

    import shared.events.pipeline as proc

    real_message = proc.NewMessage

    def orphan_message(message_id: uuid.UUID, _chat_id: uuid.UUID, content: str) -> Any:
        return real_message(message_id, uuid.uuid4(), content)  # violates the chat foreign key

    monkeypatch.setattr(proc, "NewMessage", orphan_message)
    with pytest.raises(IntegrityError) as info:
        process_event(
            open_store(any_session.connection(), PipelineOptions()), clock, ev.id, PipelineOptions()
        )
    any_session.rollback()  # the caller's job: nothing of the attempt survives (the chat)
    assert mark_failed(any_session.connection(), clock, ev.id, describe_error(info.value))
    any_session.commit()

    any_session.expire_all()
    row = any_session.get(AutomationEvent, ev.id)
    assert row is not None
    assert row.status == EventStatus.ERROR
    assert row.error is not None and row.error.startswith("IntegrityError: ")
    assert row.processed_at is not None
    assert _chat_count(any_session) == 0
    # an outcome is never overwritten
    assert not mark_failed(any_session.connection(), clock, ev.id, "again")
