"""Factories for the main models. Each takes a session and a clock, flushes, and returns."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.orm import Session

from shared.infra.clock import Clock
from shared.models import (
    Automation,
    AutomationEvent,
    AutomationStatus,
    AutomationTrigger,
    Chat,
    ChatMessage,
    ChatStatus,
    EventStatus,
    MessageRole,
    Organization,
    OrganizationMember,
    OrgRole,
    TriggerType,
    User,
)

_seq = itertools.count(1)


def org(session: Session, clock: Clock, **kw: Any) -> Organization:
    now = clock.now()
    obj = Organization(
        name=kw.pop("name", f"org-{next(_seq)}"), created_at=now, updated_at=now, **kw
    )
    session.add(obj)
    session.flush()
    return obj


def user(
    session: Session,
    clock: Clock,
    organization: Organization | None = None,
    role: OrgRole = OrgRole.MEMBER,
    **kw: Any,
) -> User:
    now = clock.now()
    obj = User(
        email=kw.pop("email", f"user{next(_seq)}@example.com"), created_at=now, updated_at=now, **kw
    )
    session.add(obj)
    session.flush()
    if organization is not None:
        session.add(
            OrganizationMember(
                organization_id=organization.id,
                user_id=obj.id,
                role=role,
                created_at=now,
                updated_at=now,
            )
        )
        session.flush()
    return obj


def automation(session: Session, clock: Clock, owner: User | None = None, **kw: Any) -> Automation:
    now = clock.now()
    if owner is None:
        o = org(session, clock)
        owner = user(session, clock, o)
        kw.setdefault("organization_id", o.id)
    if "organization_id" not in kw:
        kw["organization_id"] = owner.memberships[0].organization_id
    obj = Automation(
        owner_id=owner.id,
        name=kw.pop("name", f"automation-{next(_seq)}"),
        status=kw.pop("status", AutomationStatus.ACTIVE),
        created_at=now,
        updated_at=now,
        **kw,
    )
    session.add(obj)
    session.flush()
    return obj


def webhook_trigger(
    session: Session, clock: Clock, auto: Automation, **kw: Any
) -> AutomationTrigger:
    now = clock.now()
    obj = AutomationTrigger(
        automation_id=auto.id,
        type=TriggerType.WEBHOOK,
        webhook_secret=kw.pop("webhook_secret", "ab" * 32),
        created_at=now,
        updated_at=now,
        **kw,
    )
    session.add(obj)
    session.flush()
    return obj


def cron_trigger(session: Session, clock: Clock, auto: Automation, **kw: Any) -> AutomationTrigger:
    now = clock.now()
    obj = AutomationTrigger(
        automation_id=auto.id,
        type=TriggerType.CRON,
        cron_schedule=kw.pop("cron_schedule", "*/5 * * * *"),
        created_at=now,
        updated_at=now,
        **kw,
    )
    session.add(obj)
    session.flush()
    return obj


def event(session: Session, clock: Clock, auto: Automation, **kw: Any) -> AutomationEvent:
    obj = AutomationEvent(
        automation_id=auto.id,
        received_at=kw.pop("received_at", clock.now()),
        payload=kw.pop("payload", {}),
        status=kw.pop("status", EventStatus.PENDING),
        **kw,
    )
    session.add(obj)
    session.flush()
    return obj


def chat(session: Session, clock: Clock, owner: User, organization_id: Any, **kw: Any) -> Chat:
    now = clock.now()
    obj = Chat(
        owner_id=owner.id,
        organization_id=organization_id,
        title=kw.pop("title", f"chat {next(_seq)}"),
        status=kw.pop("status", ChatStatus.WAITING),
        labels=kw.pop("labels", {}),
        created_at=kw.pop("created_at", now),
        updated_at=kw.pop("updated_at", now),
        **kw,
    )
    session.add(obj)
    session.flush()
    return obj


def message(
    session: Session, clock: Clock, chat_obj: Chat, content: str = "hi", **kw: Any
) -> ChatMessage:
    obj = ChatMessage(
        chat_id=chat_obj.id,
        role=kw.pop("role", MessageRole.USER),
        content=content,
        created_at=clock.now(),
        **kw,
    )
    session.add(obj)
    session.flush()
    return obj
