"""The dry run behind ``POST /api/v1/automations/<id>/test`` (SPEC 5): stores nothing."""

# ruff: noqa: F811 - tests take the imported `api` fixture as a parameter

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import shared.automations.dry_run as dry_run_module
from shared.automations.dry_run import dry_run
from shared.infra.clock import FrozenClock
from shared.models import Automation, AutomationEvent, Chat, ChatMessage, User
from tests import factories as f

# the API tests' fixtures: pytest finds fixtures among a test module's names (hence F811)
from tests.api.conftest import Api, api, api_app  # noqa: F401


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


# --- issue 16: the CPU budget, on the dry-run pool ------------------------------------------

PATHOLOGICAL = "[a-z]*[a-z]*[a-z]*\\d|z$"


def _pathological_trigger(api: Api) -> str:
    """An automation whose trigger stores the issue's 64-condition filter (saved before the
    save-time check existed), and the dry run's path."""
    data = api.create_automation("budget")
    auto = api.session.get(Automation, uuid.UUID(data["id"]))
    assert auto is not None
    flt = {f"f{i}": {"$regex": PATHOLOGICAL} for i in range(64)}
    f.webhook_trigger(api.session, api.clock, auto, filter=flt, label_paths={"first": "f0"})
    api.session.flush()
    return f"/automations/{data['id']}/test"


def test_the_pathological_filter_dry_runs_quickly_off_the_request_thread(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real = dry_run_module.filter_matches

    def recording(*args: Any) -> bool:
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(dry_run_module, "filter_matches", recording)
    path = _pathological_trigger(api)
    payload = {f"f{i}": "a" * 83 + "z" for i in range(64)}
    assert api.post(path, {"payload": {}}).status_code == 200  # warm up the app

    started = time.process_time()  # every thread of the process: the pool's too
    resp = api.post(path, {"payload": payload})
    spent = time.process_time() - started

    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["filter_matched"] is True
    assert resp.get_json()["resolved_labels"] == {"first": "a" * 83 + "z"}
    # Python's re took 3.3 s of CPU on this filter; a generous bound, as the issue asks
    assert spent < 0.1, f"{spent * 1000:.0f} ms of CPU"
    assert threads and all(name.startswith("dry-run") for name in threads), threads
    assert threading.current_thread().name not in threads


def test_dry_runs_refuse_what_saving_refuses(api: Api) -> None:
    path = _pathological_trigger(api)
    flt = {f"f{i}": {"$regex": PATHOLOGICAL} for i in range(64)}
    resp = api.post(path, {"payload": {}, "filter": flt})
    assert resp.status_code == 400
    assert "use fewer or simpler $regex patterns" in resp.get_json()["message"]
    resp = api.post(path, {"payload": {}, "filter": {"ref": {"$regex": "(?<=refs/)tags"}}})
    assert resp.status_code == 400
    message = resp.get_json()["message"]
    assert "lookaround" in message and "RE2" in message and "does not support" in message


def test_a_dry_run_past_the_budget_answers_a_clear_error(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = api.app.extensions["automations"]
    monkeypatch.setattr(gw, "settings", gw.settings.model_copy(update={"filter_budget_ms": 0.001}))
    path = _pathological_trigger(api)
    resp = api.post(path, {"payload": {"f0": "a" * 83 + "z"}})
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["code"] == "filter_evaluation_failed" and body["field"] == "filter"
    assert body["message"].startswith("filter evaluation would exceed its 0.001 ms CPU budget")


def test_a_full_dry_run_pool_answers_503_with_retry_after(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _pathological_trigger(api)
    full = threading.BoundedSemaphore(1)
    full.acquire()  # every slot of the pool and its queue is taken
    monkeypatch.setattr(dry_run_module, "_slots", full)
    resp = api.post(path, {"payload": {}})
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "1"
    assert resp.get_json()["code"] == "unavailable"
    assert "too many dry runs" in resp.get_json()["message"]
