"""The dry run behind ``POST /api/v1/automations/<id>/test`` (SPEC 5): stores nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.automations.dry_run import dry_run
from shared.infra.clock import FrozenClock
from shared.models import AutomationEvent, Chat, ChatMessage, User
from tests import factories as f


def _counts(session: Session) -> tuple[Any, ...]:
    return tuple(
        session.scalar(select(func.count()).select_from(model))
        for model in (AutomationEvent, Chat, ChatMessage)
    )


def test_uses_the_automations_trigger_and_reports_the_chat_it_would_continue(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = f.automation(any_session, clock)
    f.webhook_trigger(
        any_session,
        clock,
        auto,
        filter={"action": {"$in": ["opened", "reopened"]}},
        label_paths={"repo": "repository.name"},
    )
    owner = any_session.get(User, auto.owner_id)
    assert owner is not None
    chat = f.chat(
        any_session,
        clock,
        owner,
        auto.organization_id,
        labels={"repo": "api"},
        automation_id=auto.id,
    )
    before = _counts(any_session)

    hit = dry_run(any_session, auto, {"action": "opened", "repository": {"name": "api"}})
    assert hit == {
        "filter_matched": True,
        "event_type_matched": None,
        "resolved_labels": {"repo": "api"},
        "existing_chat_id": str(chat.id),
        "would_create_new_chat": False,
    }
    new = dry_run(any_session, auto, {"action": "reopened", "repository": {"name": "web"}})
    assert new == {
        "filter_matched": True,
        "event_type_matched": None,
        "resolved_labels": {"repo": "web"},
        "existing_chat_id": None,
        "would_create_new_chat": True,
    }
    miss = dry_run(any_session, auto, {"action": "closed", "repository": {"name": "web"}})
    assert miss["filter_matched"] is False and miss["would_create_new_chat"] is False
    assert miss["resolved_labels"] == {"repo": "web"}  # still shown, to debug label paths
    assert _counts(any_session) == before


def test_supplied_filter_and_label_paths_override_and_are_validated(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = f.automation(any_session, clock)
    f.webhook_trigger(any_session, clock, auto, filter={"never": True})
    result = dry_run(
        any_session,
        auto,
        {"n": 1.0, "tag": "x"},
        filter={"n": 1},
        label_paths={"tag": "tag", "gone": "missing"},
    )
    assert result["filter_matched"] is True
    assert result["resolved_labels"] == {"tag": "x"}
    assert result["would_create_new_chat"] is True
    # the trigger's filter is used when only label paths are supplied
    assert dry_run(any_session, auto, {"n": 1}, label_paths={})["filter_matched"] is False

    with pytest.raises(ValueError):
        dry_run(any_session, auto, {}, filter={"a.#(b==": 1})
    with pytest.raises(ValueError):
        dry_run(any_session, auto, {}, label_paths={"l": "a.#(b=="})


def test_without_triggers_everything_matches_and_no_labels_resolve(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = f.automation(any_session, clock)
    assert dry_run(any_session, auto, {"x": 1}) == {
        "filter_matched": True,
        "event_type_matched": None,
        "resolved_labels": {},
        "existing_chat_id": None,
        "would_create_new_chat": True,
    }
