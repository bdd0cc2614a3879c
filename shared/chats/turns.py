"""The database side of a chat turn (SPEC 9 "A turn", "Errors", "Retry").

Plain functions over a Core connection (inside the caller's transaction; they never commit)
and a clock. The asyncio side that streams the reply lives in :mod:`shared.runner.host`.

The life of a turn:

1. :func:`claim_chat`: a ``pending`` chat whose ``retry_at`` passed becomes ``running`` with a
   fresh ``runner_id`` (the fence) and ``heartbeat_at`` (PostgreSQL: ``FOR UPDATE SKIP
   LOCKED``; SQLite: a conditional UPDATE under its single write lock).
2. :func:`load_turn`: the request (system prompt, messages, provider config) and the
   snapshot the follow-up rule compares against; or a setup error (no model config, the
   usage limit, an undecryptable key) that fails the turn like a provider error.
3. :func:`heartbeat` while streaming (one UPDATE for every turn of a process); a turn whose
   claim is gone is aborted without writing.
4. :func:`commit_success` or :func:`commit_failure`: fenced. They first lock the chat row on
   the condition that the claim is still this turn's (``runner_id`` and ``running``);
   otherwise they raise :class:`ClaimLost` and the caller rolls back, so a runner that lost
   its claim writes nothing. Locking the row first also orders the commit against a message
   posted at the same moment (:mod:`shared.chats.messages` and the pipeline update the same
   row): either the message committed before and is counted (the chat goes back to
   ``pending``: a follow-up turn), or its writer waits and then finds the chat ``waiting``.

The attempt number of a turn is the stored ``retry.attempt`` + 1 (1 without a retry in
progress); it resets on success and when a new user message or ``POST /retry`` arrives.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, func, insert, select, update
from sqlalchemy.orm import Session

from shared.infra.clock import Clock
from shared.infra.crypto import CryptoError, Keyring
from shared.infra.db.base import new_id
from shared.models import ModelConfig, Organization, OrganizationMember
from shared.models.enums import ChatStatus, MessageRole
from shared.models.tables import automations, chat_messages, chats
from shared.runner.clients import ProviderConfig
from shared.runner.errors import ChatError, NoModelConfig, TurnSignal, UsageLimitExceeded, classify
from shared.runner.providers import TurnResult
from shared.runner.retry import GiveUp, RandomSource, Retry, decide
from shared.usage.service import check_limits, record_turn_usage

__all__ = [
    "Claim",
    "ClaimLost",
    "FailureOutcome",
    "SuccessOutcome",
    "TurnRequest",
    "TurnSettings",
    "claim_chat",
    "commit_failure",
    "commit_success",
    "heartbeat",
    "load_turn",
    "release_claims",
    "system_prompt",
]

model_configs = cast(Table, ModelConfig.__table__)
organizations = cast(Table, Organization.__table__)
members = cast(Table, OrganizationMember.__table__)


class ClaimLost(Exception):
    """The chat is no longer this turn's (recovered and re-claimed, or deleted): write nothing."""


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """What a turn takes from :class:`~shared.infra.config.Settings`."""

    startup_timeout_seconds: float = 60.0
    stream_idle_timeout_seconds: float = 300.0
    allow_private: bool = False
    max_attempts: int = 10
    max_retry_after_seconds: float = 600.0

    @classmethod
    def from_settings(cls, settings: Any) -> TurnSettings:
        return cls(
            startup_timeout_seconds=settings.startup_timeout_seconds,
            stream_idle_timeout_seconds=settings.stream_idle_timeout_seconds,
            allow_private=settings.effective_outbound_allow_private,
            max_attempts=settings.max_attempts,
            max_retry_after_seconds=float(settings.max_retry_after_seconds),
        )


@dataclass(frozen=True, slots=True)
class Claim:
    chat_id: uuid.UUID
    runner_id: str
    claimed_at: datetime


def claim_chat(conn: Connection, clock: Clock, chat_id: uuid.UUID) -> Claim | None:
    """Claim ``chat_id`` for a turn; None when it is not claimable (running elsewhere,
    waiting, paused, in error, waiting out a retry, gone)."""
    now = clock.now()
    claimable = (
        (chats.c.id == chat_id)
        & (chats.c.status == ChatStatus.PENDING)
        & (chats.c.retry_at.is_(None) | (chats.c.retry_at <= now))
    )
    runner_id = uuid.uuid4().hex
    if conn.dialect.name == "postgresql":
        # One statement: the row is locked SKIP LOCKED by the subquery (a chat another
        # runner is claiming is skipped, not waited for) and updated in the same round trip.
        locked = select(chats.c.id).where(claimable).with_for_update(skip_locked=True)
        where = chats.c.id == locked.scalar_subquery()
    else:
        where = claimable  # SQLite: one writer at a time; the conditional UPDATE decides
    result = conn.execute(
        update(chats)
        .where(where)
        .values(status=ChatStatus.RUNNING, runner_id=runner_id, heartbeat_at=now)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    return Claim(chat_id, runner_id, now)


def system_prompt(instructions: str | None, pinned_context: str | None = None) -> str | None:
    """The system prompt of a turn: the automation's instructions.

    Seam for SPEC 12 (issue 20): the chat's pinned context goes in ``pinned_context`` and is
    placed before the instructions.
    """
    parts = [p.strip() for p in (pinned_context, instructions) if p and p.strip()]
    return "\n\n".join(parts) or None


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """Everything a turn sends and everything its commit needs."""

    chat_id: uuid.UUID
    runner_id: str
    organization_id: uuid.UUID
    owner_id: uuid.UUID
    automation_id: uuid.UUID | None
    model_config_id: uuid.UUID | None
    #: the number of this attempt (1-based)
    attempt: int
    #: user messages the chat had (deleted ones included) when the request was built
    user_messages_seen: int
    #: when the request was built: the reply is dated here when messages arrived meanwhile,
    #: so that it sorts before them (the follow-up turn then ends with a user message)
    snapshot_at: datetime
    system_prompt: str | None
    messages: tuple[dict[str, str], ...]
    provider: str | None = None
    config: ProviderConfig | None = None
    #: set when the turn cannot start (no model config, the usage limit, a bad key)
    setup_error: ChatError | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)


def _attempt(retry: Mapping[str, Any] | None) -> int:
    if isinstance(retry, Mapping):
        previous = retry.get("attempt")
        if isinstance(previous, int) and previous >= 1:
            return previous + 1
    return 1


def _user_messages(conn: Connection, chat_id: uuid.UUID) -> int:
    return int(
        conn.scalar(
            select(func.count())
            .select_from(chat_messages)
            .where(chat_messages.c.chat_id == chat_id, chat_messages.c.role == MessageRole.USER)
        )
        or 0
    )


def load_turn(
    conn: Connection,
    clock: Clock,
    claim: Claim,
    *,
    keyring: Keyring,
    settings: TurnSettings,
) -> TurnRequest:
    """The request of the claimed chat's turn. Raises :class:`ClaimLost` when the chat is
    gone or no longer held by ``claim``.

    Two statements (a turn's CPU is mostly its database work, docs/performance.md): the chat
    with its automation, model config and the two monthly limits in one join, then every
    message of the chat (deleted ones too: the count of user messages the commit compares
    against includes them)."""
    config_id = func.coalesce(chats.c.model_config_id, automations.c.model_config_id)
    row = conn.execute(
        select(
            chats.c.organization_id,
            chats.c.owner_id,
            chats.c.automation_id,
            chats.c.retry,
            chats.c.runner_id,
            chats.c.status,
            automations.c.instructions,
            model_configs.c.id.label("config_id"),
            model_configs.c.provider,
            model_configs.c.base_url,
            model_configs.c.model,
            model_configs.c.api_key,
            model_configs.c.api_key_key_id,
            model_configs.c.max_output_tokens,
            model_configs.c.temperature,
            organizations.c.monthly_token_limit.label("org_limit"),
            members.c.monthly_token_limit.label("member_limit"),
        )
        .select_from(
            chats.outerjoin(automations, automations.c.id == chats.c.automation_id)
            .outerjoin(model_configs, model_configs.c.id == config_id)
            .outerjoin(organizations, organizations.c.id == chats.c.organization_id)
            .outerjoin(
                members,
                (members.c.organization_id == chats.c.organization_id)
                & (members.c.user_id == chats.c.owner_id),
            )
        )
        .where(chats.c.id == claim.chat_id)
    ).first()
    if row is None or row.runner_id != claim.runner_id or row.status != ChatStatus.RUNNING:
        raise ClaimLost(str(claim.chat_id))
    rows = conn.execute(
        select(chat_messages.c.role, chat_messages.c.content, chat_messages.c.deleted)
        .where(chat_messages.c.chat_id == claim.chat_id)
        .order_by(chat_messages.c.created_at, chat_messages.c.id)
    ).all()
    system_parts: list[str] = []
    messages: list[dict[str, str]] = []
    user_messages = 0
    for role, content, deleted in rows:
        if role == MessageRole.USER:
            user_messages += 1
        if deleted:
            continue
        if role == MessageRole.SYSTEM:  # both providers take system text only up front
            system_parts.append(content)
        elif role in (MessageRole.USER, MessageRole.ASSISTANT):
            messages.append({"role": str(MessageRole(role)), "content": content})
    prompt = system_prompt(row.instructions)
    if system_parts:
        prompt = "\n\n".join(filter(None, (prompt, *system_parts)))
    request = TurnRequest(
        chat_id=claim.chat_id,
        runner_id=claim.runner_id,
        organization_id=row.organization_id,
        owner_id=row.owner_id,
        automation_id=row.automation_id,
        model_config_id=row.config_id,
        attempt=_attempt(row.retry),
        user_messages_seen=user_messages,
        snapshot_at=clock.now(),
        system_prompt=prompt,
        messages=tuple(messages),
    )
    config_row = row if row.config_id is not None else None
    if config_row is None:
        error = classify(NoModelConfig("the chat and its automation have no model config"), None)
        return replace(request, model_config_id=None, setup_error=error)
    provider = str(config_row.provider)
    request = replace(request, provider=provider)
    try:
        check_limits(
            _session_free(conn),
            clock.now(),
            row.organization_id,
            row.owner_id,
            row.member_limit,
            row.org_limit,
        )
    except UsageLimitExceeded as exc:
        return replace(request, setup_error=classify(exc, provider))
    api_key: str | None = None
    if config_row.api_key:
        try:
            api_key = keyring.decrypt(config_row.api_key, config_row.api_key_key_id)
        except CryptoError as exc:
            error = classify(_KeyUnreadable(str(exc)), provider)
            return replace(request, setup_error=replace(error, kind="config", retryable=False))
    config = ProviderConfig(
        provider=provider,
        base_url=config_row.base_url,
        model=config_row.model,
        api_key=api_key,
        max_output_tokens=config_row.max_output_tokens,
        temperature=config_row.temperature,
        startup_timeout_seconds=settings.startup_timeout_seconds,
        stream_idle_timeout_seconds=settings.stream_idle_timeout_seconds,
        allow_private=settings.allow_private,
    )
    return replace(request, config=config, secrets=(api_key,) if api_key else ())


class _KeyUnreadable(TurnSignal):
    """The model config's API key was encrypted with a key this process does not have."""


def _session_free(conn: Connection) -> Session:
    """The usage functions take a Session but only call ``scalar`` and ``execute``, which a
    Connection has too (same transaction, no ORM state involved)."""
    return cast(Session, conn)


def heartbeat(conn: Connection, clock: Clock, claims: Iterable[tuple[uuid.UUID, str]]) -> set[str]:
    """One UPDATE for every turn of a process (``(chat_id, runner_id)`` pairs); the runner ids
    whose claim still holds (the others lost it and must abort without writing)."""
    pairs = list(claims)
    if not pairs:
        return set()
    rows = conn.execute(
        update(chats)
        .where(
            chats.c.id.in_([chat_id for chat_id, _ in pairs]),
            chats.c.runner_id.in_([runner_id for _, runner_id in pairs]),
            chats.c.status == ChatStatus.RUNNING,
        )
        .values(heartbeat_at=clock.now())
        .returning(chats.c.runner_id)
    ).all()
    return {runner_id for (runner_id,) in rows}


def _fence(conn: Connection, chat_id: uuid.UUID, runner_id: str) -> None:
    """Lock the chat row if, and only if, the claim is still ``runner_id``'s."""
    held = conn.execute(
        select(chats.c.id)
        .where(
            chats.c.id == chat_id,
            chats.c.runner_id == runner_id,
            chats.c.status == ChatStatus.RUNNING,
        )
        .with_for_update()
    ).first()
    if held is None:
        raise ClaimLost(str(chat_id))


@dataclass(frozen=True, slots=True)
class SuccessOutcome:
    status: ChatStatus
    message: dict[str, Any]  # the stored assistant message's columns

    @property
    def follow_up(self) -> bool:
        return self.status == ChatStatus.PENDING


def commit_success(
    conn: Connection, clock: Clock, request: TurnRequest, result: TurnResult
) -> SuccessOutcome:
    """Store the reply (one assistant message), the usage, and the next status: ``waiting``,
    or ``pending`` when user messages arrived during the turn. Fenced."""
    _fence(conn, request.chat_id, request.runner_id)
    now = clock.now()
    arrived = _user_messages(conn, request.chat_id) > request.user_messages_seen
    status = ChatStatus.PENDING if arrived else ChatStatus.WAITING
    message = {
        "id": new_id(),
        "chat_id": request.chat_id,
        "role": MessageRole.ASSISTANT,
        "content": result.content,
        "created_at": min(now, request.snapshot_at) if arrived else now,
        "deleted": False,
        "model": (result.model or "")[:200] or None,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "finish_reason": (result.finish_reason or None) and result.finish_reason[:50],
    }
    conn.execute(insert(chat_messages).values(**message))
    record_turn_usage(
        _session_free(conn),
        now=now,
        organization_id=request.organization_id,
        user_id=request.owner_id,
        automation_id=request.automation_id,
        chat_id=request.chat_id,
        model_config_id=request.model_config_id,
        model=result.model or (request.config.model if request.config else ""),
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
    )
    conn.execute(
        update(chats)
        .where(chats.c.id == request.chat_id)
        .values(
            status=status,
            runner_id=None,
            heartbeat_at=None,
            retry=None,
            retry_at=None,
            last_error=None,
            updated_at=now,
            queued_at=now if arrived else None,
        )
    )
    return SuccessOutcome(status, message)


@dataclass(frozen=True, slots=True)
class FailureOutcome:
    status: ChatStatus
    error: ChatError
    #: the retry shown on the chat, None when the turn gave up
    retry: dict[str, Any] | None = None
    #: seconds until the next attempt may run (publish ``run_chat`` with this countdown)
    countdown: float | None = None


def commit_failure(
    conn: Connection,
    clock: Clock,
    request: TurnRequest,
    error: ChatError,
    settings: TurnSettings,
    *,
    rng: RandomSource | None = None,
) -> FailureOutcome:
    """Apply the retry decision: back to ``pending`` with ``retry_at`` and ``retry``, or
    ``error`` for good (``pending`` with a fresh attempt count when a user message arrived
    during the turn: a new message makes a chat in error pending). Fenced."""
    _fence(conn, request.chat_id, request.runner_id)
    now = clock.now()
    decision = decide(
        request.attempt,
        error,
        now,
        max_attempts=settings.max_attempts,
        max_retry_after_seconds=settings.max_retry_after_seconds,
        rng=rng,
    )
    common: dict[str, Any] = {"runner_id": None, "heartbeat_at": None, "updated_at": now}
    if isinstance(decision, Retry):
        values = {
            **common,
            "status": ChatStatus.PENDING,
            "retry_at": decision.retrying_at,
            "retry": decision.retry,
            "last_error": decision.error.to_json(),
            # the delayed publish is due then; recovery re-publishes if it is lost
            "queued_at": decision.retrying_at,
        }
        conn.execute(update(chats).where(chats.c.id == request.chat_id).values(**values))
        return FailureOutcome(
            ChatStatus.PENDING, decision.error, decision.retry, decision.delay_ms / 1000.0
        )
    assert isinstance(decision, GiveUp)
    arrived = _user_messages(conn, request.chat_id) > request.user_messages_seen
    status = ChatStatus.PENDING if arrived else ChatStatus.ERROR
    values = {
        **common,
        "status": status,
        "retry_at": None,
        "retry": None,
        "last_error": decision.error.to_json(),
        "queued_at": now if arrived else None,
    }
    conn.execute(update(chats).where(chats.c.id == request.chat_id).values(**values))
    return FailureOutcome(status, decision.error, None, 0.0 if arrived else None)


def release_claims(
    conn: Connection, clock: Clock, claims: Iterable[tuple[uuid.UUID, str]]
) -> list[uuid.UUID]:
    """Hand still-held claims back (``pending``, due now): a runner shutting down leaves its
    unfinished turns to the next runner instead of to the stale-heartbeat recovery."""
    now = clock.now()
    released: list[uuid.UUID] = []
    for chat_id, runner_id in claims:
        result = conn.execute(
            update(chats)
            .where(
                chats.c.id == chat_id,
                chats.c.runner_id == runner_id,
                chats.c.status == ChatStatus.RUNNING,
            )
            .values(status=ChatStatus.PENDING, runner_id=None, heartbeat_at=None, queued_at=now)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            released.append(chat_id)
    return released


def retry_due_in(retry_at: datetime | None, now: datetime) -> float:
    """Seconds until ``retry_at`` (0 when due)."""
    if retry_at is None:
        return 0.0
    return max((retry_at - now) / timedelta(seconds=1), 0.0)
