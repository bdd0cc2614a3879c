"""Notifications e-mailed through a real local SMTP server (aiosmtpd, started by the test):
one message per notification, redelivery sends nothing more, a server that is down is
retried until it is back, and the password never reaches a log line or an error.

The task runs in-process against real PostgreSQL (and SQLite): called directly (a failure
raises instead of retrying, so each call is one delivery of the message) or with ``apply``
(Celery's eager mode runs the whole retry chain at once, without the back-off's waits).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.infra.clock import FrozenClock
from shared.infra.config import Settings
from shared.infra.db import migrate
from shared.infra.db.uow import TaskMessage
from shared.infra.queues import (
    QUEUE_NOTIFICATIONS,
    REQUEUE_NOTIFICATION_EMAILS,
    SEND_NOTIFICATION_EMAIL,
)
from shared.models import Notification
from shared.notifications import list_notifications, mark_read, notify
from shared.notifications.service import EMAIL_FAILED, EMAIL_NONE, EMAIL_PENDING, EMAIL_SENT
from tests import factories as f
from worker import celery_app
from worker.tasks.base import runtime_of
from worker.tasks.notifications import MAX_EMAIL_ATTEMPTS, MailRetry

SENDER = "Automations <noreply@automations.test>"
PASSWORD = "hunter2-Secret"


# A real SMTP server --------------------------------------------------------------------------


class Inbox:
    """aiosmtpd handler: keeps every message it accepted; can hold DATA until released."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.in_data = threading.Event()
        self.release = threading.Event()
        self.release.set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.in_data.set()
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # a failure answers 535


class SmtpServer:
    """An aiosmtpd Controller on 127.0.0.1 that the test can start and stop on one port."""

    def __init__(self, port: int, *, auth: bool = False) -> None:
        self.port = port
        self.inbox = Inbox()
        self.auth = auth
        self._controller: Controller | None = None

    def start(self) -> None:
        kw: dict[str, Any] = {}
        if self.auth:
            kw = {"authenticator": _authenticator, "auth_require_tls": False}
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **kw)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A server on a free port, not started: the test starts it (or leaves it down)."""
    server = SmtpServer(_free_port())
    yield server
    server.stop()


# The worker's app on a database ----------------------------------------------------------------


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_committed"))
    url = f"sqlite:///{tmp_path / 'automations.db'}"
    migrate.upgrade(url)
    return url


class Recorder:
    """The publisher: the tasks units of work published after commit."""

    def __init__(self) -> None:
        self.messages: list[TaskMessage] = []

    def publish(self, messages: Any) -> None:
        self.messages.extend(messages)


def _make_app(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_url: str
) -> tuple[Celery, Recorder]:
    settings = Settings(
        database_url=database_url,
        broker_url="memory://",
        data_dir=tmp_path,
        smtp_url=smtp_url,
        smtp_from=SENDER if smtp_url else "",
    )
    app = celery_app.create_celery(settings, clock=FrozenClock(datetime.now(UTC)))
    recorder = Recorder()
    monkeypatch.setattr(runtime_of(app).db, "publisher", recorder)
    return app, recorder


AppFactory = Callable[[str], tuple[Celery, Recorder]]


@pytest.fixture
def make_app(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AppFactory]:
    apps: list[Celery] = []

    def make(smtp_url: str) -> tuple[Celery, Recorder]:
        app, recorder = _make_app(database_url, tmp_path, monkeypatch, smtp_url)
        apps.append(app)
        return app, recorder

    yield make
    for app in apps:
        runtime_of(app).reset_after_fork()


def _notify(app: Celery, *, email: str = "ada@example.com", **kw: Any) -> uuid.UUID:
    rt = runtime_of(app)
    with rt.unit_of_work() as uow:
        user = f.user(uow.session, rt.clock, email=email)
        return notify(
            uow,
            kw.pop("now", rt.clock.now()),
            smtp_enabled=rt.settings.smtp_enabled,
            user_id=user.id,
            kind="chat.auto_archive",
            title=kw.pop("title", "Chats auto-archived after 7 days of inactivity"),
            body="Archived:\n- Deploy failed\n",
            details={"chat_ids": []},
        )


def _row(app: Celery, nid: uuid.UUID) -> Notification:
    with runtime_of(app).unit_of_work() as uow:
        row = uow.session.get(Notification, nid)
        assert row is not None
        uow.session.expunge(row)
        return row


def _send(app: Celery, nid: uuid.UUID) -> Any:
    """One delivery of the task's message, run in-process; a transient failure raises."""
    return app.tasks[SEND_NOTIFICATION_EMAIL](str(nid))


# Tests ------------------------------------------------------------------------------------------


def test_one_message_per_notification_and_a_redelivery_sends_nothing(
    make_app: AppFactory, smtp: SmtpServer
) -> None:
    smtp.start()
    app, published = make_app(f"smtp://127.0.0.1:{smtp.port}")
    first = _notify(app)
    second = _notify(app, email="bob@example.com", title="Another one")
    # published after commit, on the notifications queue
    assert published.messages == [
        TaskMessage(SEND_NOTIFICATION_EMAIL, (str(first),), QUEUE_NOTIFICATIONS),
        TaskMessage(SEND_NOTIFICATION_EMAIL, (str(second),), QUEUE_NOTIFICATIONS),
    ]
    assert _row(app, first).email_status == EMAIL_PENDING

    assert _send(app, first) == EMAIL_SENT
    assert _send(app, first) == "skipped"  # redelivered: nothing more
    assert app.tasks[SEND_NOTIFICATION_EMAIL].apply(args=[str(first)]).get() == "skipped"
    assert _send(app, second) == EMAIL_SENT
    assert _send(app, second) == "skipped"

    assert len(smtp.inbox.messages) == 2
    mail = smtp.inbox.messages[0]
    assert mail["From"] == SENDER
    assert mail["To"] == "ada@example.com"
    assert mail["Subject"] == "Chats auto-archived after 7 days of inactivity"
    assert mail["Message-ID"] == f"<notification.{first}@automations.test>"
    assert isinstance(mail, EmailMessage) and "Deploy failed" in mail.get_content()
    assert smtp.inbox.messages[1]["To"] == "bob@example.com"
    row = _row(app, first)
    assert row.email_status == EMAIL_SENT and row.email_attempts == 1
    assert row.emailed_at is not None


def test_server_down_is_retried_and_once_back_exactly_one_mail_arrives(
    make_app: AppFactory, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app, _ = make_app(f"smtp://127.0.0.1:{smtp.port}")  # nothing listens there yet
    nid = _notify(app)
    for attempt in (1, 2):
        with pytest.raises(MailRetry, match="unreachable"):
            _send(app, nid)  # a worker would retry it with back-off
        row = _row(app, nid)
        assert (row.email_status, row.email_attempts) == (EMAIL_PENDING, attempt)

    smtp.start()
    assert _send(app, nid) == EMAIL_SENT
    smtp.stop()
    assert _send(app, nid) == "skipped"  # a late duplicate: the server is not even needed
    assert len(smtp.inbox.messages) == 1
    row = _row(app, nid)
    assert (row.email_status, row.email_attempts) == (EMAIL_SENT, 3)
    assert "retrying" in caplog.text


def test_the_declared_retry_policy_and_a_server_down_for_good(
    make_app: AppFactory, smtp: SmtpServer
) -> None:
    app, _ = make_app(f"smtp://127.0.0.1:{smtp.port}")
    task = app.tasks[SEND_NOTIFICATION_EMAIL]
    assert MailRetry in task.autoretry_for and task.retry_backoff and task.retry_jitter
    assert task.max_retries > MAX_EMAIL_ATTEMPTS  # the row's budget ends the chain
    nid = _notify(app)
    # eager mode runs the whole retry chain now (without the waits)
    assert task.apply(args=[str(nid)]).get() == EMAIL_FAILED
    row = _row(app, nid)
    assert (row.email_status, row.email_attempts) == (EMAIL_FAILED, MAX_EMAIL_ATTEMPTS)
    assert row.emailed_at is None
    smtp.start()
    assert _send(app, nid) == "skipped"  # failed is final
    assert smtp.inbox.messages == []


def test_login_and_the_password_never_in_logs_or_errors(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = SmtpServer(_free_port(), auth=True)
    server.start()
    try:
        good, _ = make_app(f"smtp://bot:{PASSWORD}@127.0.0.1:{server.port}")
        nid = _notify(good)
        assert _send(good, nid) == EMAIL_SENT  # logged in (loopback: no STARTTLS needed)
        assert len(server.inbox.messages) == 1

        bad, _ = make_app(f"smtp://bot:wrong-{PASSWORD}@127.0.0.1:{server.port}")
        other = _notify(bad, email="eve@example.com")
        assert _send(bad, other) == EMAIL_FAILED  # 535: another attempt would fail the same
        assert len(server.inbox.messages) == 1
    finally:
        server.stop()

    # and a server that is down, with credentials in the URL
    down, _ = make_app(f"smtps://bot:{PASSWORD}@127.0.0.1:{_free_port()}")
    third = _notify(down, email="carl@example.com")
    with pytest.raises(MailRetry) as failure:
        _send(down, third)
    assert PASSWORD not in str(failure.value) and PASSWORD not in repr(failure.value)
    assert caplog.records and PASSWORD not in caplog.text
    assert "535" in caplog.text


def test_without_smtp_a_notification_stays_none_and_enqueues_nothing(
    make_app: AppFactory, smtp: SmtpServer
) -> None:
    smtp.start()
    app, published = make_app("")
    nid = _notify(app)
    assert published.messages == []
    row = _row(app, nid)
    assert (row.email_status, row.email_attempts) == (EMAIL_NONE, 0)
    assert app.tasks[REQUEUE_NOTIFICATION_EMAILS].apply().get() == 0
    # a stray message (SMTP configured away since it was sent) changes nothing
    assert _send(app, nid) == "disabled"
    assert _row(app, nid).email_status == EMAIL_NONE
    assert smtp.inbox.messages == []


def test_the_safety_net_publishes_old_pending_notifications_again(
    make_app: AppFactory, smtp: SmtpServer
) -> None:
    smtp.start()
    app, published = make_app(f"smtp://127.0.0.1:{smtp.port}")
    now = runtime_of(app).clock.now()
    lost = _notify(app, now=now - timedelta(minutes=20))  # its message never arrived
    recent = _notify(app, email="bob@example.com", now=now - timedelta(minutes=1))
    done = _notify(app, email="carl@example.com", now=now - timedelta(minutes=30))
    assert _send(app, done) == EMAIL_SENT
    published.messages.clear()

    assert app.tasks[REQUEUE_NOTIFICATION_EMAILS].apply().get() == 1
    assert published.messages == [
        TaskMessage(SEND_NOTIFICATION_EMAIL, (str(lost),), QUEUE_NOTIFICATIONS)
    ]
    assert _send(app, lost) == EMAIL_SENT
    assert _row(app, recent).email_status == EMAIL_PENDING
    assert len(smtp.inbox.messages) == 2


@pytest.mark.postgres
def test_two_deliveries_at_once_send_one_mail(
    make_app: AppFactory, smtp: SmtpServer, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite serialises writers at BEGIN IMMEDIATE")
    smtp.start()
    smtp.inbox.release.clear()  # the first delivery holds the row while the server waits
    app, _ = make_app(f"smtp://127.0.0.1:{smtp.port}")
    nid = _notify(app)
    outcome: list[Any] = []
    first = threading.Thread(target=lambda: outcome.append(_send(app, nid)))
    first.start()
    try:
        assert smtp.inbox.in_data.wait(30)
        assert _send(app, nid) == "skipped"  # locked by the first: skipped, not sent
    finally:
        smtp.inbox.release.set()
        first.join(30)
    assert outcome == [EMAIL_SENT]
    assert len(smtp.inbox.messages) == 1


def test_list_and_mark_read(make_app: AppFactory) -> None:
    app, _ = make_app("")
    rt = runtime_of(app)
    base = rt.clock.now()
    ids = [_notify(app, email=f"u{i}@example.com", now=base) for i in range(2)]
    with rt.unit_of_work() as uow:
        owner = uow.session.get(Notification, ids[0])
        assert owner is not None
        mine = [
            notify(
                uow,
                base + timedelta(seconds=i + 1),
                smtp_enabled=False,
                user_id=owner.user_id,
                kind="test",
                title=f"n{i}",
                body="",
            )
            for i in range(3)
        ]
    session: Session
    with rt.unit_of_work() as uow:
        session = uow.session
        page = list_notifications(session, owner.user_id, limit=2)
        assert [n.title for n in page.items] == ["n2", "n1"]
        rest = list_notifications(session, owner.user_id, limit=2, cursor=page.next_cursor)
        assert [n.title for n in rest.items] == [
            "n0",
            "Chats auto-archived after 7 days of inactivity",
        ]
        assert rest.next_cursor is None
        read = mark_read(session, base, owner.user_id, mine[2])
        assert read.read_at is not None
        assert mark_read(session, base + timedelta(hours=1), owner.user_id, mine[2]).read_at == (
            read.read_at
        )
        unread = list_notifications(session, owner.user_id, unread_only=True)
        assert [n.title for n in unread.items][:2] == ["n1", "n0"]
        other = session.scalars(select(Notification.id).where(Notification.id == ids[1])).one()
        with pytest.raises(Exception) as failure:  # someone else's: 404, like a missing one
            mark_read(session, base, owner.user_id, other)
        assert getattr(failure.value, "status", None) == 404


@pytest.mark.postgres
def test_a_real_worker_retries_while_the_server_is_down_and_sends_once_when_back(
    pg_committed: str, redis_url: str, tmp_path: Path, smtp: SmtpServer
) -> None:
    """A worker process on Redis + PostgreSQL, the SMTP server down: the task retries with
    back-off (attempts counted on the row) and, once the server is up, one mail arrives."""
    from shared.infra.runtime import Runtime
    from tests.harness.processes import service_env, start_worker
    from tests.pipeline.helpers import wait_until

    smtp_url = f"smtp://bot:{PASSWORD}@127.0.0.1:{smtp.port}"
    env = service_env(
        database_url=pg_committed,
        broker_url=redis_url,
        data_dir=tmp_path,
        extra={"AUTOMATIONS_SMTP_URL": smtp_url, "AUTOMATIONS_SMTP_FROM": SENDER},
    )
    settings = Settings(
        database_url=pg_committed,
        broker_url=redis_url,
        data_dir=tmp_path,
        smtp_url=smtp_url,
        smtp_from=SENDER,
    )
    rt = Runtime(settings)
    worker = start_worker(env, tmp_path, "-Q", QUEUE_NOTIFICATIONS, "--concurrency", "2")
    try:
        with rt.unit_of_work() as uow:  # published to Redis after the commit
            user = f.user(uow.session, rt.clock, email="ada@example.com")
            nid = notify(
                uow,
                rt.clock.now(),
                smtp_enabled=True,
                user_id=user.id,
                kind="test",
                title="Hello",
                body="From a real worker.",
            )

        def attempts() -> int:
            with rt.unit_of_work() as uow:
                row = uow.session.get(Notification, nid)
                assert row is not None and row.email_status == EMAIL_PENDING
                return row.email_attempts

        wait_until(lambda: attempts() >= 2, 60, interval=0.2, what="two failed attempts")
        server = SmtpServer(smtp.port, auth=True)
        server.start()
        try:

            def sent() -> bool:
                return _row_of(rt, nid).email_status == EMAIL_SENT

            wait_until(sent, 120, interval=0.2, what="the notification sent")
            assert len(server.inbox.messages) == 1
            assert server.inbox.messages[0]["Message-ID"] == (
                f"<notification.{nid}@automations.test>"
            )
        finally:
            server.stop()
    finally:
        worker.stop()
        rt.dispose()
    log_text = worker.log()
    assert "retrying" in log_text
    assert PASSWORD not in log_text


def _row_of(rt: Any, nid: uuid.UUID) -> Notification:
    with rt.unit_of_work() as uow:
        row = uow.session.get(Notification, nid)
        assert row is not None
        uow.session.expunge(row)
        return row
