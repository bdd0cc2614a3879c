"""SPEC 5 step 4: chats match on EQUAL label sets, within the automation's chat scope.

The issue this answers: a ``check_run`` event sent to ``deploys`` continued the chat of
``pr-review`` because the two shared a ``repo`` label, and an ``issues`` event labelled only
``repo`` continued a pull request's chat labelled ``repo`` and ``pr``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.automations.dry_run import dry_run
from shared.chats.matching import find_matching_chat
from shared.events.backends import open_store
from shared.events.options import PipelineOptions
from shared.events.pipeline import process_event
from shared.infra.clock import FrozenClock, system_clock
from shared.infra.db.engine import make_engine, make_session_factory
from shared.models import (
    Automation,
    AutomationEvent,
    AutomationTrigger,
    Chat,
    ChatScope,
    EventStatus,
    User,
)
from tests import factories as f
from tests.pipeline.helpers import run

LABELS = {"repo": "repository.full_name", "pr": "number"}
PR = {"repository": {"full_name": "acme/api"}, "number": 7}


def _two_automations(
    session: Session, clock: FrozenClock, scope: ChatScope
) -> tuple[Automation, Automation]:
    """Two active automations of one owner, each with a webhook trigger on the same labels."""
    first = f.automation(session, clock, name="pr-review", chat_scope=scope)
    owner = session.get(User, first.owner_id)
    assert owner is not None
    second = f.automation(session, clock, owner, name="deploys", chat_scope=scope)
    for auto in (first, second):
        f.webhook_trigger(session, clock, auto, label_paths=LABELS)
    session.flush()
    return first, second


def _event(
    session: Session, clock: FrozenClock, auto: Automation, payload: object
) -> AutomationEvent:
    """A pending event of ``auto``'s (only) webhook trigger."""
    trigger_id = session.scalar(
        select(AutomationTrigger.id).where(AutomationTrigger.automation_id == auto.id)
    )
    return f.event(session, clock, auto, trigger_id=trigger_id, payload=payload)


def test_automation_scope_keeps_each_automations_chats_apart(
    any_session: Session, clock: FrozenClock
) -> None:
    first, second = _two_automations(any_session, clock, ChatScope.AUTOMATION)
    a, _ = run(any_session, clock, _event(any_session, clock, first, PR))
    b, _ = run(any_session, clock, _event(any_session, clock, second, PR))
    assert a.status is EventStatus.CREATED and b.status is EventStatus.CREATED
    assert a.chat_id != b.chat_id
    # each automation's next event continues its own chat
    again, _ = run(any_session, clock, _event(any_session, clock, second, PR))
    assert again.status is EventStatus.CONTINUED and again.chat_id == b.chat_id


def test_organization_scope_lets_two_automations_feed_one_chat(
    any_session: Session, clock: FrozenClock
) -> None:
    first, second = _two_automations(any_session, clock, ChatScope.ORGANIZATION)
    a, _ = run(any_session, clock, _event(any_session, clock, first, PR))
    b, _ = run(any_session, clock, _event(any_session, clock, second, PR))
    assert a.status is EventStatus.CREATED
    assert b.status is EventStatus.CONTINUED and b.chat_id == a.chat_id


def test_labels_must_be_equal_not_contained(any_session: Session, clock: FrozenClock) -> None:
    auto = f.automation(any_session, clock)
    owner = any_session.get(User, auto.owner_id)
    assert owner is not None
    pr_chat = f.chat(
        any_session,
        clock,
        owner,
        auto.organization_id,
        automation_id=auto.id,
        labels={"repo": "acme/api", "pr": "7"},
    )
    repo_chat = f.chat(
        any_session,
        clock,
        owner,
        auto.organization_id,
        automation_id=auto.id,
        labels={"repo": "acme/api"},
    )
    any_session.flush()
    match = find_matching_chat
    org = auto.organization_id
    # fewer labels than the chat: no longer a match (was: containment)
    assert match(any_session, owner.id, org, {"repo": "acme/api"}, auto.id) == repo_chat.id
    assert match(any_session, owner.id, org, {"repo": "acme/api", "pr": "7"}, auto.id) == (
        pr_chat.id
    )
    # more labels than any chat
    three = {"repo": "acme/api", "pr": "7", "sha": "abc"}
    assert match(any_session, owner.id, org, three, auto.id) is None
    # other automation's scope sees neither; organization scope (None) sees both kinds
    assert match(any_session, owner.id, org, {"repo": "acme/api"}, uuid.uuid4()) is None
    assert match(any_session, owner.id, org, {"repo": "acme/api"}, None) == repo_chat.id


def test_an_issues_event_with_only_repo_does_not_continue_a_pr_chat(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = f.automation(any_session, clock)
    f.webhook_trigger(any_session, clock, auto, label_paths=LABELS)
    any_session.flush()
    pr, _ = run(any_session, clock, _event(any_session, clock, auto, PR))
    issue = {"repository": {"full_name": "acme/api"}, "issue": {"number": 9}}
    out, row = run(any_session, clock, _event(any_session, clock, auto, issue))
    assert out.status is EventStatus.CREATED and out.chat_id != pr.chat_id
    assert row.resolved_labels == {"repo": "acme/api"}


def test_dry_run_reports_the_match_under_the_same_rules(
    any_session: Session, clock: FrozenClock
) -> None:
    first, second = _two_automations(any_session, clock, ChatScope.AUTOMATION)
    created, _ = run(any_session, clock, _event(any_session, clock, first, PR))
    assert dry_run(any_session, first, PR)["existing_chat_id"] == str(created.chat_id)
    # another automation does not see it in the automation scope ...
    other = dry_run(any_session, second, PR)
    assert other["existing_chat_id"] is None and other["would_create_new_chat"] is True
    # ... and does in the organization scope
    second.chat_scope = ChatScope.ORGANIZATION
    any_session.flush()
    assert dry_run(any_session, second, PR)["existing_chat_id"] == str(created.chat_id)
    # a subset of the labels matches nothing
    subset = dry_run(any_session, first, PR, label_paths={"repo": "repository.full_name"})
    assert subset["existing_chat_id"] is None


# --- concurrency on real PostgreSQL ---------------------------------------------------


@pytest.fixture
def factory(pg_committed: str) -> Iterator[sessionmaker[Session]]:
    engine: Engine = make_engine(pg_committed, pool_size=12, max_overflow=4)
    yield make_session_factory(engine)
    engine.dispose()


def _race(
    factory: sessionmaker[Session], scope: ChatScope, per_automation: int
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Two automations with the same labels; ``per_automation`` events each, all with the
    same labels, processed by 8 threads at once. The automations' ids and their events."""
    clock = FrozenClock(datetime.now(UTC))
    with factory.begin() as s:
        first, second = _two_automations(s, clock, scope)
        ids = [
            _event(s, clock, auto, PR).id for _ in range(per_automation) for auto in (first, second)
        ]
        autos = [first.id, second.id]
    barrier = threading.Barrier(8)
    chunks = [ids[i::8] for i in range(8)]
    errors: list[BaseException] = []

    def work(chunk: list[uuid.UUID]) -> None:
        try:
            barrier.wait()
            for event_id in chunk:
                with factory.begin() as s:
                    options = PipelineOptions()
                    process_event(
                        open_store(s.connection(), options), system_clock, event_id, options
                    )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return autos, ids


def _chats_by_automation(
    factory: sessionmaker[Session], autos: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    with factory() as s:
        rows = s.execute(
            select(Chat.automation_id, func.count())
            .where(Chat.automation_id.in_(autos))
            .group_by(Chat.automation_id)
        ).all()
    return {a: int(n) for a, n in rows}


def _statuses(factory: sessionmaker[Session], ids: list[uuid.UUID]) -> dict[str, int]:
    with factory() as s:
        rows = s.execute(
            select(AutomationEvent.status, func.count())
            .where(AutomationEvent.id.in_(ids))
            .group_by(AutomationEvent.status)
        ).all()
    return {str(status): int(n) for status, n in rows}


@pytest.mark.postgres
def test_concurrent_automation_scope_creates_one_chat_per_automation(
    factory: sessionmaker[Session],
) -> None:
    autos, ids = _race(factory, ChatScope.AUTOMATION, 12)
    assert _chats_by_automation(factory, autos) == {autos[0]: 1, autos[1]: 1}
    assert _statuses(factory, ids) == {"created": 2, "continued": 22}


@pytest.mark.postgres
def test_concurrent_organization_scope_creates_one_chat_in_all(
    factory: sessionmaker[Session],
) -> None:
    autos, ids = _race(factory, ChatScope.ORGANIZATION, 12)
    chats = _chats_by_automation(factory, autos)
    assert sum(chats.values()) == 1, chats
    assert _statuses(factory, ids) == {"created": 1, "continued": 23}
    with factory() as s:
        chat_ids = set(
            s.scalars(
                select(
                    func.coalesce(AutomationEvent.created_chat_id, AutomationEvent.matched_chat_id)
                ).where(AutomationEvent.id.in_(ids))
            )
        )
    assert len(chat_ids) == 1
