"""Seeding and driving chats for the runner-core tests (turns, host, worker processes)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from shared.chats.turns import TurnSettings
from shared.infra.clock import Clock
from shared.infra.crypto import Keyring
from shared.infra.db.uow import Database, UnitOfWork
from shared.models import Chat, ChatMessage, ChatStatus, MessageRole, ModelConfig
from shared.runner.host import RunnerHost
from tests import factories as f

KEY = "sk-test-9d8c7b6a5f4e3d2c1b0a99887766"
INSTRUCTIONS = "You are the release bot. Be brief."


def model_config(
    s: Session, clock: Clock, organization_id: uuid.UUID, *, provider: str, base_url: str, **kw: Any
) -> ModelConfig:
    now = clock.now()
    row = ModelConfig(
        organization_id=organization_id,
        name=kw.pop("name", f"model-{uuid.uuid4().hex[:8]}"),
        provider=provider,
        base_url=base_url,
        model=kw.pop("model", "fake-model-1"),
        api_key=kw.pop("api_key", KEY),
        created_at=now,
        updated_at=now,
        **kw,
    )
    s.add(row)
    s.flush()
    return row


def seed_chat(
    s: Session,
    clock: Clock,
    *,
    provider: str | None = "openai",
    base_url: str = "http://127.0.0.1:9/v1",
    messages: tuple[str, ...] = ("What changed in release 1.2?",),
    status: ChatStatus = ChatStatus.PENDING,
    config_on_chat: bool = False,
    **chat_kw: Any,
) -> Chat:
    """An organization, a user, a model config (unless ``provider`` is None), an automation
    using it, and a chat of that automation with ``messages`` as user messages."""
    org = f.org(s, clock)
    owner = f.user(s, clock, org)
    config = (
        model_config(s, clock, org.id, provider=provider, base_url=base_url)
        if provider is not None
        else None
    )
    auto = f.automation(
        s,
        clock,
        owner,
        organization_id=org.id,
        instructions=INSTRUCTIONS,
        model_config_id=None if config is None or config_on_chat else config.id,
    )
    if config is not None and config_on_chat:
        chat_kw.setdefault("model_config_id", config.id)
    chat = f.chat(s, clock, owner, org.id, automation_id=auto.id, status=status, **chat_kw)
    for text in messages:
        add_message(s, clock, chat.id, text)
    return chat


def add_message(
    s: Session, clock: Clock, chat_id: uuid.UUID, text: str, role: MessageRole = MessageRole.USER
) -> ChatMessage:
    row = ChatMessage(
        chat_id=chat_id, role=role, content=text, created_at=clock.now(), deleted=False
    )
    s.add(row)
    s.flush()
    return row


def assistant_messages(s: Session, chat_id: uuid.UUID) -> list[ChatMessage]:
    return list(
        s.scalars(
            select(ChatMessage)
            .where(ChatMessage.chat_id == chat_id, ChatMessage.role == MessageRole.ASSISTANT)
            .order_by(ChatMessage.created_at)
        )
    )


def count_assistant(s: Session, chat_id: uuid.UUID) -> int:
    return int(
        s.scalar(
            select(func.count()).where(
                ChatMessage.chat_id == chat_id, ChatMessage.role == MessageRole.ASSISTANT
            )
        )
        or 0
    )


class Published:
    """Records ``run_chat`` publishes of an in-process host (chat id, countdown)."""

    def __init__(self) -> None:
        self.calls: list[tuple[uuid.UUID, float | None]] = []
        self._lock = threading.Lock()

    def __call__(self, chat_id: uuid.UUID, countdown: float | None) -> None:
        with self._lock:
            self.calls.append((chat_id, countdown))


@contextmanager
def in_process_host(
    engine: Engine,
    clock: Clock,
    *,
    publish: Callable[[uuid.UUID, float | None], None] | None = None,
    live: Any = None,
    heartbeat_seconds: float = 3600.0,
    **turn_settings: Any,
) -> Iterator[RunnerHost]:
    db = Database(engine)
    settings = TurnSettings(allow_private=True, **turn_settings)

    @contextmanager
    def units() -> Iterator[UnitOfWork]:
        with db.unit() as uow:
            yield uow

    host = RunnerHost(
        clock=clock,
        units=units,
        publish=publish or Published(),
        turn_settings=settings,
        keyring=Keyring([]),
        heartbeat_seconds=heartbeat_seconds,
        live=live,
    )
    host.start()
    try:
        yield host
    finally:
        host.stop()


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def aware(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive UTC datetimes."""
    from datetime import UTC

    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=UTC)
