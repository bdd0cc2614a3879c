"""The database side of a turn (shared.chats.turns, shared.chats.messages), on PostgreSQL and
SQLite: claim, request, fenced commits, the retry bookkeeping and the follow-up rule."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.accounts.authz import Principal
from shared.chats import messages
from shared.chats.turns import (
    ClaimLost,
    TurnSettings,
    claim_chat,
    commit_failure,
    commit_success,
    heartbeat,
    load_turn,
)
from shared.errors import Conflict
from shared.infra.clock import FrozenClock
from shared.infra.crypto import Keyring
from shared.infra.db.uow import TaskMessage, UnitOfWork
from shared.infra.queues import RUN_CHAT
from shared.models import (
    Automation,
    Chat,
    ChatStatus,
    EventStatus,
    MessageRole,
    Organization,
    UsageRecord,
)
from shared.models.enums import OrgRole, SiteRole
from shared.runner.errors import ChatError
from shared.runner.providers import TurnResult
from tests import factories as f
from tests.pipeline.helpers import run
from tests.runner.runner_helpers import (
    INSTRUCTIONS,
    KEY,
    add_message,
    assistant_messages,
    seed_chat,
)

SETTINGS = TurnSettings(allow_private=True, max_attempts=3, max_retry_after_seconds=600)
RESULT = TurnResult("Release 1.2 fixed the login bug.", "fake-model-1", 12, 8, "stop")


def _claim_and_load(s: Session, clock: FrozenClock, chat: Chat):  # type: ignore[no-untyped-def]
    claim = claim_chat(s.connection(), clock, chat.id)
    assert claim is not None
    return claim, load_turn(s.connection(), clock, claim, keyring=Keyring([]), settings=SETTINGS)


def _reload(s: Session, chat: Chat) -> Chat:
    s.expire_all()
    row = s.get(Chat, chat.id)
    assert row is not None
    return row


def _error(
    kind: str = "rate_limit", retryable: bool = True, after: float | None = None
) -> ChatError:
    return ChatError(
        message="OpenAI-compatible provider rate limit reached (HTTP 429).",
        kind=kind,
        provider="openai",
        retryable=retryable,
        status_code=429,
        retry_after_seconds=after,
    )


def test_claim_takes_a_pending_chat_once(any_session: Session, clock: FrozenClock) -> None:
    chat = seed_chat(any_session, clock)
    claim = claim_chat(any_session.connection(), clock, chat.id)
    assert claim is not None and len(claim.runner_id) == 32
    row = _reload(any_session, chat)
    assert row.status == ChatStatus.RUNNING
    assert row.runner_id == claim.runner_id and row.heartbeat_at == clock.now()
    assert claim_chat(any_session.connection(), clock, chat.id) is None  # running elsewhere


@pytest.mark.parametrize(
    "status", [ChatStatus.WAITING, ChatStatus.PAUSED, ChatStatus.ERROR, ChatStatus.RUNNING]
)
def test_only_pending_chats_are_claimable(
    any_session: Session, clock: FrozenClock, status: ChatStatus
) -> None:
    chat = seed_chat(any_session, clock, status=status)
    assert claim_chat(any_session.connection(), clock, chat.id) is None


def test_a_chat_waiting_out_a_retry_is_claimed_only_once_due(
    any_session: Session, clock: FrozenClock
) -> None:
    chat = seed_chat(any_session, clock, retry_at=clock.now() + timedelta(seconds=30))
    assert claim_chat(any_session.connection(), clock, chat.id) is None
    clock.advance(seconds=30)
    assert claim_chat(any_session.connection(), clock, chat.id) is not None


def test_the_request_is_instructions_then_every_message_in_order(
    any_session: Session, clock: FrozenClock
) -> None:
    chat = seed_chat(any_session, clock, messages=("first",))
    clock.advance(seconds=1)
    add_message(any_session, clock, chat.id, "an answer", MessageRole.ASSISTANT)
    clock.advance(seconds=1)
    gone = add_message(any_session, clock, chat.id, "deleted")
    gone.deleted = True
    clock.advance(seconds=1)
    add_message(any_session, clock, chat.id, "second")
    _, request = _claim_and_load(any_session, clock, chat)
    assert request.setup_error is None and request.config is not None
    assert request.system_prompt == INSTRUCTIONS
    assert [m["content"] for m in request.messages] == ["first", "an answer", "second"]
    assert [m["role"] for m in request.messages] == ["user", "assistant", "user"]
    assert request.config.api_key == KEY and request.attempt == 1
    assert KEY not in repr(request.config)


def test_the_chats_own_model_config_wins(any_session: Session, clock: FrozenClock) -> None:
    chat = seed_chat(any_session, clock, config_on_chat=True)
    _, request = _claim_and_load(any_session, clock, chat)
    assert request.model_config_id == chat.model_config_id and request.config is not None


def test_no_model_config_is_a_config_error(any_session: Session, clock: FrozenClock) -> None:
    chat = seed_chat(any_session, clock, provider=None)
    _, request = _claim_and_load(any_session, clock, chat)
    assert request.setup_error is not None
    assert (request.setup_error.kind, request.setup_error.retryable) == ("config", False)
    outcome = commit_failure(
        any_session.connection(), clock, request, request.setup_error, SETTINGS
    )
    assert outcome.status == ChatStatus.ERROR
    row = _reload(any_session, chat)
    assert row.status == ChatStatus.ERROR and row.last_error is not None
    assert row.last_error["kind"] == "config" and row.retry is None and row.runner_id is None


def test_the_usage_limit_fails_the_turn_before_it_starts(
    any_session: Session, clock: FrozenClock
) -> None:
    chat = seed_chat(any_session, clock)
    org = any_session.get(Organization, chat.organization_id)
    assert org is not None
    org.monthly_token_limit = 10
    any_session.add(
        UsageRecord(
            organization_id=org.id,
            user_id=chat.owner_id,
            chat_id=chat.id,
            model="m",
            input_tokens=6,
            output_tokens=4,
            created_at=clock.now(),
        )
    )
    any_session.flush()
    _, request = _claim_and_load(any_session, clock, chat)
    assert request.setup_error is not None
    assert (request.setup_error.kind, request.setup_error.retryable) == ("usage_limit", False)


def test_success_stores_one_assistant_message_usage_and_waits(
    any_session: Session, clock: FrozenClock
) -> None:
    chat = seed_chat(any_session, clock, retry={"attempt": 2, "kind": "timeout"})
    claim, request = _claim_and_load(any_session, clock, chat)
    assert request.attempt == 3
    outcome = commit_success(any_session.connection(), clock, request, RESULT)
    assert outcome.status == ChatStatus.WAITING and not outcome.follow_up
    row = _reload(any_session, chat)
    assert row.status == ChatStatus.WAITING
    assert (row.runner_id, row.heartbeat_at, row.retry, row.retry_at, row.last_error) == (
        None,
        None,
        None,
        None,
        None,
    )
    (reply,) = assistant_messages(any_session, chat.id)
    assert reply.content == RESULT.content and reply.model == "fake-model-1"
    assert (reply.input_tokens, reply.output_tokens, reply.finish_reason) == (12, 8, "stop")
    usage = any_session.scalars(select(UsageRecord).where(UsageRecord.chat_id == chat.id)).one()
    assert (usage.input_tokens, usage.output_tokens, usage.user_id) == (12, 8, chat.owner_id)
    # the claim is spent: a second commit with it writes nothing
    with pytest.raises(ClaimLost):
        commit_success(any_session.connection(), clock, request, RESULT)
    assert len(assistant_messages(any_session, chat.id)) == 1
    assert claim.chat_id == chat.id


def test_a_message_arriving_during_the_turn_makes_a_follow_up(
    any_session: Session, clock: FrozenClock
) -> None:
    chat = seed_chat(any_session, clock)
    clock.advance(seconds=1)
    _, request = _claim_and_load(any_session, clock, chat)
    clock.advance(seconds=1)
    add_message(any_session, clock, chat.id, "and also 1.3?")
    clock.advance(seconds=1)
    outcome = commit_success(any_session.connection(), clock, request, RESULT)
    assert outcome.follow_up
    row = _reload(any_session, chat)
    assert row.status == ChatStatus.PENDING and row.queued_at == clock.now()
    (reply,) = assistant_messages(any_session, chat.id)
    assert reply.created_at == request.snapshot_at
    _, follow_up = _claim_and_load(any_session, clock, chat)
    # the reply sorts before the message it did not see: the follow-up ends with that message
    assert [m["content"] for m in follow_up.messages][-2:] == [RESULT.content, "and also 1.3?"]


def test_a_retryable_failure_goes_back_to_pending_with_the_retry_visible(
    any_session: Session, clock: FrozenClock
) -> None:
    chat = seed_chat(any_session, clock)
    _, request = _claim_and_load(any_session, clock, chat)
    outcome = commit_failure(any_session.connection(), clock, request, _error(after=20), SETTINGS)
    assert outcome.status == ChatStatus.PENDING and outcome.countdown is not None
    assert outcome.countdown >= 20
    row = _reload(any_session, chat)
    assert row.status == ChatStatus.PENDING and row.runner_id is None
    assert row.retry_at is not None and row.retry_at >= clock.now() + timedelta(seconds=20)
    assert row.retry is not None and row.retry["attempt"] == 1
    assert row.retry["kind"] == "rate_limit" and row.retry["delay_ms"] >= 20_000
    assert row.last_error is not None and row.last_error["kind"] == "rate_limit"
    assert claim_chat(any_session.connection(), clock, chat.id) is None  # not before retry_at


def test_attempts_count_up_to_max_attempts_then_error(
    any_session: Session, clock: FrozenClock
) -> None:
    chat = seed_chat(any_session, clock)
    for attempt in (1, 2):
        _, request = _claim_and_load(any_session, clock, chat)
        assert request.attempt == attempt
        outcome = commit_failure(any_session.connection(), clock, request, _error(), SETTINGS)
        assert outcome.status == ChatStatus.PENDING
        clock.advance(seconds=120)
    _, request = _claim_and_load(any_session, clock, chat)
    assert request.attempt == 3
    outcome = commit_failure(any_session.connection(), clock, request, _error(), SETTINGS)
    assert outcome.status == ChatStatus.ERROR and outcome.retry is None
    row = _reload(any_session, chat)
    assert row.status == ChatStatus.ERROR and row.retry is None and row.retry_at is None
    assert row.last_error is not None and "Gave up after 3 attempts" in row.last_error["message"]


def test_a_retry_after_beyond_the_limit_is_a_non_retryable_error(
    any_session: Session, clock: FrozenClock
) -> None:
    chat = seed_chat(any_session, clock)
    _, request = _claim_and_load(any_session, clock, chat)
    outcome = commit_failure(any_session.connection(), clock, request, _error(after=3600), SETTINGS)
    assert outcome.status == ChatStatus.ERROR
    row = _reload(any_session, chat)
    assert row.last_error is not None and row.last_error["retryable"] is False
    assert "more than the limit of 600 s" in row.last_error["message"]


def test_heartbeat_reports_which_claims_still_hold(
    any_session: Session, clock: FrozenClock
) -> None:
    a = seed_chat(any_session, clock)
    b = seed_chat(any_session, clock)
    claim_a = claim_chat(any_session.connection(), clock, a.id)
    claim_b = claim_chat(any_session.connection(), clock, b.id)
    assert claim_a is not None and claim_b is not None
    row = _reload(any_session, b)
    row.runner_id = "someone-else"
    any_session.flush()
    clock.advance(seconds=10)
    alive = heartbeat(
        any_session.connection(),
        clock,
        [(a.id, claim_a.runner_id), (b.id, claim_b.runner_id)],
    )
    assert alive == {claim_a.runner_id}
    assert _reload(any_session, a).heartbeat_at == clock.now()


# --- posting messages and retrying (shared.chats.messages) ------------------------------------


def _owner(chat: Chat) -> Principal:
    return Principal(
        user_id=chat.owner_id,
        email="owner@example.com",
        site_role=SiteRole.MEMBER,
        memberships={chat.organization_id: OrgRole.MEMBER},
        scopes=frozenset({"*"}),
    )


def _uow(s: Session) -> UnitOfWork:
    return UnitOfWork(s.connection())


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[TaskMessage] = []

    def publish(self, messages: Sequence[TaskMessage]) -> None:
        self.messages.extend(messages)


def _published(uow: UnitOfWork) -> list[str]:
    recorder = _Recorder()
    uow.commit()
    uow.run_after_commit(recorder)
    return [m.name for m in recorder.messages]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (ChatStatus.WAITING, ChatStatus.PENDING),
        (ChatStatus.PENDING, ChatStatus.PENDING),
        (ChatStatus.ERROR, ChatStatus.PENDING),
        (ChatStatus.RUNNING, ChatStatus.RUNNING),
        (ChatStatus.PAUSED, ChatStatus.PAUSED),
    ],
)
def test_a_posted_message_makes_the_chat_pending_unless_running_or_paused(
    any_session: Session, clock: FrozenClock, before: ChatStatus, after: ChatStatus
) -> None:
    chat = seed_chat(any_session, clock, status=before, retry={"attempt": 4, "kind": "timeout"})
    uow = _uow(any_session)
    message = messages.post_message(uow, clock, _owner(chat), chat.id, "any news?")
    assert message.role == MessageRole.USER
    row = _reload(any_session, chat)
    assert row.status == after
    expected = [RUN_CHAT] if after == ChatStatus.PENDING else []
    assert _published(uow) == expected
    if before == ChatStatus.ERROR:
        assert row.retry is None  # a fresh attempt count


def test_retry_makes_a_chat_in_error_pending_and_refuses_others(
    any_session: Session, clock: FrozenClock
) -> None:
    chat = seed_chat(any_session, clock, status=ChatStatus.ERROR)
    messages.retry_chat(_uow(any_session), clock, _owner(chat), chat.id)
    assert _reload(any_session, chat).status == ChatStatus.PENDING
    with pytest.raises(Conflict) as refused:
        messages.retry_chat(_uow(any_session), clock, _owner(chat), chat.id)
    assert refused.value.code == "not_in_error"
    count = any_session.scalar(select(func.count()).select_from(Chat).where(Chat.id == chat.id))
    assert count == 1


# --- the pipeline's continue follows the same rule (shared/events/store_*.py) -----------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (ChatStatus.WAITING, ChatStatus.PENDING),
        (ChatStatus.ERROR, ChatStatus.PENDING),
        (ChatStatus.RUNNING, ChatStatus.RUNNING),
        (ChatStatus.PAUSED, ChatStatus.PAUSED),
    ],
)
def test_an_event_continuing_a_chat_follows_the_status_rule(
    any_session: Session, clock: FrozenClock, before: ChatStatus, after: ChatStatus
) -> None:
    s = any_session
    chat = seed_chat(
        s, clock, status=before, labels={"k": "v"}, retry={"attempt": 3, "kind": "timeout"}
    )
    assert chat.automation_id is not None
    auto = s.get(Automation, chat.automation_id)
    assert auto is not None
    trigger = f.webhook_trigger(s, clock, auto, label_paths={"k": "k"})
    clock.advance(seconds=5)
    event = f.event(s, clock, auto, trigger_id=trigger.id, payload={"k": "v"})
    outcome, row = run(s, clock, event)
    assert row.status == EventStatus.CONTINUED and outcome.chat_id == chat.id
    updated = _reload(s, chat)
    assert updated.status == after
    if after == ChatStatus.PENDING:
        assert updated.queued_at == clock.now()
    if before == ChatStatus.ERROR:
        assert updated.retry is None and updated.retry_at is None
    elif before == ChatStatus.RUNNING:
        assert updated.retry == {"attempt": 3, "kind": "timeout"}


def test_a_chat_the_pipeline_creates_is_pending_and_queued(
    any_session: Session, clock: FrozenClock
) -> None:
    auto = f.automation(any_session, clock)
    trigger = f.webhook_trigger(any_session, clock, auto, label_paths={"k": "k"})
    event = f.event(any_session, clock, auto, trigger_id=trigger.id, payload={"k": "new"})
    outcome, row = run(any_session, clock, event)
    assert row.status == EventStatus.CREATED and outcome.chat_id is not None
    chat = any_session.get(Chat, outcome.chat_id)
    assert chat is not None and chat.status == ChatStatus.PENDING
    assert chat.queued_at == clock.now()
