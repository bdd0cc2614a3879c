"""Every CHECK, unique and foreign-key rule of SPEC 3, on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from shared.infra.clock import FrozenClock
from shared.models import (
    Automation,
    AutomationEvent,
    AutomationTrigger,
    Chat,
    ChatMessage,
    EventStatus,
    OrganizationMember,
    TriggerType,
)
from tests import factories as f


def rejects(session: Session, build: Callable[[], object]) -> None:
    """Assert that flushing what ``build`` adds violates a constraint, and recover."""
    nested = session.begin_nested()
    with pytest.raises((IntegrityError, StatementError)):
        obj = build()
        if obj is not None:
            session.add(obj)
        session.flush()
    nested.rollback()


def accepts(session: Session, obj: object) -> None:
    session.add(obj)
    session.flush()


@pytest.mark.parametrize("limit", [0, 1001, -5])
def test_rate_limits_outside_1_to_1000_rejected(
    any_session: Session, clock: FrozenClock, limit: int
) -> None:
    auto = f.automation(any_session, clock)
    for column in ("max_chat_creates_per_hour", "max_messages_per_hour"):

        def build(column: str = column) -> None:
            setattr(auto, column, limit)

        rejects(any_session, build)
        any_session.refresh(auto)


@pytest.mark.parametrize("limit", [1, 1000])
def test_rate_limit_bounds_accepted(any_session: Session, clock: FrozenClock, limit: int) -> None:
    auto = f.automation(
        any_session, clock, max_chat_creates_per_hour=limit, max_messages_per_hour=limit
    )
    assert auto.max_chat_creates_per_hour == limit


def test_new_automation_defaults(any_session: Session, clock: FrozenClock) -> None:
    o = f.org(any_session, clock)
    u = f.user(any_session, clock, o)
    now = clock.now()
    auto = Automation(owner_id=u.id, organization_id=o.id, name="x", created_at=now, updated_at=now)
    accepts(any_session, auto)
    any_session.expire_all()
    auto = any_session.get(Automation, auto.id)
    assert auto is not None
    assert auto.status == "disabled"
    assert (auto.max_chat_creates_per_hour, auto.max_messages_per_hour) == (10, 60)
    assert auto.created_at == now and auto.created_at.tzinfo is not None


def test_duplicate_automation_name_same_owner_and_org_rejected(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = f.automation(any_session, clock, name="deploys")
    owner = _owner(any_session, auto)
    rejects(
        any_session,
        lambda: f.automation(
            any_session, clock, owner=owner, name="deploys", organization_id=auto.organization_id
        ),
    )


def _owner(session: Session, auto: Automation):  # type: ignore[no-untyped-def]
    from shared.models import User

    return session.get(User, auto.owner_id)


def test_same_name_allowed_for_other_owner_or_org(any_session: Session, clock: FrozenClock) -> None:
    auto = f.automation(any_session, clock, name="deploys")
    other_user = f.user(any_session, clock, _org_of(any_session, auto))
    f.automation(
        any_session, clock, owner=other_user, name="deploys", organization_id=auto.organization_id
    )
    other_org = f.org(any_session, clock)
    owner = _owner(any_session, auto)
    any_session.add(
        OrganizationMember(
            organization_id=other_org.id,
            user_id=owner.id,
            role="member",
            created_at=clock.now(),
            updated_at=clock.now(),
        )
    )
    f.automation(any_session, clock, owner=owner, name="deploys", organization_id=other_org.id)


def _org_of(session: Session, auto: Automation):  # type: ignore[no-untyped-def]
    from shared.models import Organization

    return session.get(Organization, auto.organization_id)


def test_cron_trigger_with_secret_rejected(any_session: Session, clock: FrozenClock) -> None:
    auto = f.automation(any_session, clock)
    rejects(any_session, lambda: f.cron_trigger(any_session, clock, auto, webhook_secret="s"))


def test_cron_trigger_without_schedule_rejected(any_session: Session, clock: FrozenClock) -> None:
    auto = f.automation(any_session, clock)
    rejects(any_session, lambda: f.cron_trigger(any_session, clock, auto, cron_schedule=None))


def test_webhook_trigger_without_secret_rejected(any_session: Session, clock: FrozenClock) -> None:
    auto = f.automation(any_session, clock)
    rejects(any_session, lambda: f.webhook_trigger(any_session, clock, auto, webhook_secret=None))


def test_webhook_trigger_with_cron_fields_rejected(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = f.automation(any_session, clock)
    rejects(
        any_session, lambda: f.webhook_trigger(any_session, clock, auto, cron_schedule="* * * * *")
    )
    rejects(
        any_session, lambda: f.webhook_trigger(any_session, clock, auto, next_fire_at=clock.now())
    )


def test_previous_secret_needs_expiry(any_session: Session, clock: FrozenClock) -> None:
    auto = f.automation(any_session, clock)
    rejects(
        any_session,
        lambda: f.webhook_trigger(any_session, clock, auto, previous_webhook_secret="old"),
    )
    t = f.webhook_trigger(
        any_session,
        clock,
        auto,
        previous_webhook_secret="old",
        previous_secret_expires_at=clock.now() + timedelta(hours=1),
    )
    assert t.type == TriggerType.WEBHOOK


def test_unknown_enum_value_rejected(any_session: Session, clock: FrozenClock) -> None:
    auto = f.automation(any_session, clock)
    rejects(any_session, lambda: f.event(any_session, clock, auto, status="exploded"))


def test_event_with_both_chat_ids_rejected(any_session: Session, clock: FrozenClock) -> None:
    auto = f.automation(any_session, clock)
    owner = _owner(any_session, auto)
    c1 = f.chat(any_session, clock, owner, auto.organization_id)
    c2 = f.chat(any_session, clock, owner, auto.organization_id)
    rejects(
        any_session,
        lambda: f.event(
            any_session,
            clock,
            auto,
            status=EventStatus.CREATED,
            created_chat_id=c1.id,
            matched_chat_id=c2.id,
        ),
    )
    ok = f.event(any_session, clock, auto, status=EventStatus.CREATED, created_chat_id=c1.id)
    assert ok.created_chat_id == c1.id


def test_delivery_id_unique_per_trigger(any_session: Session, clock: FrozenClock) -> None:
    auto = f.automation(any_session, clock)
    t1 = f.webhook_trigger(any_session, clock, auto)
    t2 = f.webhook_trigger(any_session, clock, auto)
    f.event(any_session, clock, auto, trigger_id=t1.id, delivery_id="d-1")
    rejects(
        any_session, lambda: f.event(any_session, clock, auto, trigger_id=t1.id, delivery_id="d-1")
    )
    f.event(any_session, clock, auto, trigger_id=t2.id, delivery_id="d-1")  # other trigger: fine
    f.event(any_session, clock, auto, trigger_id=t1.id, delivery_id=None)
    f.event(any_session, clock, auto, trigger_id=t1.id, delivery_id=None)  # NULLs never clash


def test_naive_datetime_refused(any_session: Session, clock: FrozenClock) -> None:
    auto = f.automation(any_session, clock)
    rejects(
        any_session,
        lambda: f.event(any_session, clock, auto, received_at=clock.now().replace(tzinfo=None)),
    )


def test_deleting_automation_cascades_triggers_and_events_and_nulls_chats(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = f.automation(any_session, clock)
    trig = f.webhook_trigger(any_session, clock, auto)
    ev = f.event(any_session, clock, auto, trigger_id=trig.id)
    chat = f.chat(
        any_session, clock, _owner(any_session, auto), auto.organization_id, automation_id=auto.id
    )
    ids = (trig.id, ev.id, chat.id)
    any_session.delete(auto)
    any_session.flush()
    any_session.expire_all()
    assert any_session.get(AutomationTrigger, ids[0]) is None
    assert any_session.get(AutomationEvent, ids[1]) is None
    kept = any_session.get(Chat, ids[2])
    assert kept is not None and kept.automation_id is None


def test_deleting_trigger_keeps_events_with_null_trigger(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = f.automation(any_session, clock)
    trig = f.webhook_trigger(any_session, clock, auto)
    ev = f.event(any_session, clock, auto, trigger_id=trig.id)
    any_session.delete(trig)
    any_session.flush()
    any_session.expire_all()
    kept = any_session.get(AutomationEvent, ev.id)
    assert kept is not None and kept.trigger_id is None


def test_deleting_chat_nulls_event_chat_ids_and_cascades_messages_and_children(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = f.automation(any_session, clock)
    owner = _owner(any_session, auto)
    root = f.chat(any_session, clock, owner, auto.organization_id)
    child = f.chat(
        any_session,
        clock,
        owner,
        auto.organization_id,
        parent_chat_id=root.id,
        root_chat_id=root.id,
    )
    msg = f.message(any_session, clock, root)
    ev = f.event(any_session, clock, auto, status=EventStatus.PREVIEW, matched_chat_id=root.id)
    ids = (child.id, msg.id, ev.id)
    any_session.delete(root)
    any_session.flush()
    any_session.expire_all()
    assert any_session.get(Chat, ids[0]) is None
    assert any_session.get(ChatMessage, ids[1]) is None
    kept = any_session.get(AutomationEvent, ids[2])
    assert kept is not None and kept.matched_chat_id is None


@pytest.mark.parametrize("status", [EventStatus.CREATED, EventStatus.CONTINUED])
def test_deleting_a_chat_keeps_its_events_status_with_a_null_reference(
    any_session: Session, clock: FrozenClock, status: EventStatus
) -> None:
    """SPEC 11 chat retention: events that pointed at a deleted chat keep their status, with
    a null chat reference (migration 0010 dropped the CHECKs that refused the delete)."""
    auto = f.automation(any_session, clock)
    chat = f.chat(any_session, clock, _owner(any_session, auto), auto.organization_id)
    column = "created_chat_id" if status == EventStatus.CREATED else "matched_chat_id"
    event = f.event(any_session, clock, auto, status=status, **{column: chat.id})
    event_id = event.id
    any_session.delete(chat)
    any_session.flush()
    any_session.expunge_all()
    kept = any_session.get(AutomationEvent, event_id)
    assert kept is not None and kept.status == status
    assert getattr(kept, column) is None


def test_deleting_user_cascades_automations_and_memberships(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = f.automation(any_session, clock)
    owner = _owner(any_session, auto)
    auto_id, owner_id = auto.id, owner.id
    any_session.delete(owner)
    any_session.flush()
    any_session.expunge_all()
    assert any_session.get(Automation, auto_id) is None
    members = select(OrganizationMember).where(OrganizationMember.user_id == owner_id)
    assert any_session.scalars(members).all() == []


def test_json_columns_round_trip_exactly(any_session: Session, clock: FrozenClock) -> None:
    """orjson handles JSON columns; values it would round or refuse still round-trip."""
    auto = f.automation(any_session, clock)
    payload = {
        "big": 123456789012345678901234567890,
        "neg": -(2**70),
        "float": 1.5,
        "text": "caf\u00e9 \u2603",
        "nested": [{"a": None, "b": True}],
    }
    ev = f.event(any_session, clock, auto, payload=payload)
    any_session.expunge_all()
    stored = any_session.get(AutomationEvent, ev.id)
    assert stored is not None and stored.payload == payload
    assert isinstance(stored.payload["big"], int)
