"""Every process logs JSON lines: the formatter, gunicorn's logconfig_dict, Celery's loggers
(worker and beat, task loggers, redirected stdout), and real worker, beat and gateway
processes; idle beat ticks are silent at INFO; the missing-encryption-key warning is said once
per process, where a secret is stored.

The process tests run embedded (SQLite and the file broker), so they need no servers."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from celery import Celery
from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS
from celery.beat import ScheduleEntry, Scheduler
from sqlalchemy import update
from sqlalchemy.orm import Session

from shared.cron.dispatch import dispatch_due
from shared.infra import crypto
from shared.infra.clock import FrozenClock, system_clock
from shared.infra.config import Settings, load_settings
from shared.infra.crypto import UNENCRYPTED_WARNING, Keyring
from shared.infra.db import migrate
from shared.infra.db.engine import make_engine
from shared.infra.logs import JsonFormatter
from shared.infra.queues import (
    AUTO_ARCHIVE,
    CHAT_RETENTION,
    DISPATCH_CRON,
    PROCESS_EVENT,
    PURGE_EVENTS,
    RECOVER_CHATS,
    REQUEUE_NOTIFICATION_EMAILS,
    SWEEP_PENDING_EVENTS,
)
from shared.models import AutomationTrigger
from tests import factories
from tests.cron.helpers import Collector, cron, units
from tests.harness.processes import REPO, cli, service_env, wait_http
from worker.celery_app import QuietTicks, create_celery, tick_task_names

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line of ``text`` as a JSON object (fails on the first that is not)."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"line {number} is not JSON: {line!r}\n--- whole output:\n{text[-6000:]}")
        assert isinstance(entry, dict), line
        assert {"ts", "level", "logger", "msg"} <= entry.keys(), line
        entries.append(entry)
    return entries


# The formatter -------------------------------------------------------------------------------


def _format(record: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(record)
    assert "\n" not in line
    return json.loads(line)  # type: ignore[no-any-return]


def test_formatter_writes_one_json_line_with_extras_and_traceback() -> None:
    try:
        raise ValueError("multi\nline")
    except ValueError:
        record = logging.LogRecord(
            "shared.x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    record.event_id = "e1"
    record.when = datetime(2026, 12, 5, tzinfo=UTC)  # not JSON by itself
    entry = _format(record)
    assert entry["level"] == "error" and entry["logger"] == "shared.x"
    assert entry["msg"] == "failed here" and entry["event_id"] == "e1"
    assert entry["when"].startswith("2026-12-05")
    assert "Traceback" in entry["exc"] and "multi\nline" in entry["exc"]


def test_formatter_never_fails() -> None:
    bad_args = logging.LogRecord("x", logging.INFO, __file__, 1, "%d items", ("many",), None)
    assert "%d items" in _format(bad_args)["msg"]
    odd = logging.LogRecord("x", logging.INFO, __file__, 1, "odd extras", (), None)
    odd.big = 2**70  # beyond orjson's integers
    odd.keyed = {1: "int key", (2, 3): "tuple key"}
    entry = _format(odd)
    assert entry["big"] == 2**70 and entry["msg"] == "odd extras"


# gunicorn: logconfig_dict --------------------------------------------------------------------

_GUNICORN_LOGGER = """
import datetime, sys
from gunicorn.config import Config
from gunicorn.glogging import Logger
from shared.infra.logs import gunicorn_logconfig

class Resp:
    status, status_code, sent = "202 Accepted", 202, 20
    headers = [("Content-Type", "application/json")]

class Req:
    method, path, query, version, uri = "POST", "/hook", "", (1, 1), "/hook"
    headers = [("HOST", "x"), ("USER-AGENT", "GitHub-Hookshot/1")]

cfg = Config()
cfg.set("logconfig_dict", gunicorn_logconfig("INFO", access_log=sys.argv[1] == "on"))
log = Logger(cfg)
log.info("Booting worker with pid: %s", 1)
log.warning("multi\\nline")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("Error handling request")
environ = {"REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": "POST", "RAW_URI": "/hook",
           "SERVER_PROTOCOL": "HTTP/1.1", "QUERY_STRING": ""}
log.access(Resp(), Req(), environ, datetime.timedelta(milliseconds=3))
"""


@pytest.mark.parametrize("access", ["on", "off"])
def test_gunicorn_error_and_access_log_are_json(access: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _GUNICORN_LOGGER, access],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # gunicorn's default access handler writes to stdout
    entries = json_lines(result.stderr)
    by_logger = {e["logger"] for e in entries}
    assert "gunicorn.error" in by_logger
    assert any("ZeroDivisionError" in e.get("exc", "") for e in entries)
    access_lines = [e for e in entries if e["logger"] == "gunicorn.access"]
    if access == "on":
        assert len(access_lines) == 1 and '"POST /hook HTTP/1.1" 202' in access_lines[0]["msg"]
    else:  # the app's own automations.access line is the access log
        assert access_lines == []


# Celery: the signals -------------------------------------------------------------------------

_CELERY_SETUP = """
import logging
from celery.utils.log import get_task_logger
from worker.app import app

# what the worker and beat do on start (redirecting stdout like the worker)
app.log.setup(loglevel="INFO", redirect_stdouts=True, redirect_level="WARNING")
logging.getLogger("celery.worker").info("celery's own logger")
get_task_logger("worker.tasks.x").warning("a task logger")
logging.getLogger("shared.cron.dispatch").info("ours")
print("printed to the redirected stdout")
"""


def test_celery_loggers_task_loggers_and_redirected_stdout_are_json(tmp_path: Path) -> None:
    env = service_env(
        database_url=f"sqlite:///{tmp_path / 'a.db'}",
        broker_url="memory://",
        data_dir=tmp_path,
    )
    result = subprocess.run(
        [sys.executable, "-c", _CELERY_SETUP],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    entries = {e["msg"]: e for e in json_lines(result.stderr)}
    assert entries["celery's own logger"]["logger"] == "celery.worker"
    assert entries["a task logger"]["logger"] == "worker.tasks.x"
    assert entries["ours"]["level"] == "info"
    assert entries["printed to the redirected stdout"]["logger"] == "celery.redirected"


# Idle ticks ----------------------------------------------------------------------------------


class Catch(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _app(tmp_path: Path) -> Celery:
    return create_celery(Settings(data_dir=tmp_path, broker_url="memory://"))


def _quiet_ticks_caught(app: Celery, level: int) -> list[logging.LogRecord]:
    """Celery's lines about ticks and about an event, as the worker's handler passes them."""
    handler = Catch()
    caught = handler.records
    handler.addFilter(QuietTicks(tick_task_names(app), level))
    celery_logger = logging.getLogger("celery")
    celery_logger.addHandler(handler)
    old_level = celery_logger.level
    celery_logger.setLevel(level)  # the process's level
    try:
        # beat, for real: sends the tick over the in-memory broker
        Scheduler(app, lazy=True).apply_entry(
            ScheduleEntry(name="dispatch-cron", task=DISPATCH_CRON, schedule=5.0, app=app)
        )
        # the worker's lines, as Celery's strategy and tracer log them
        for name in (DISPATCH_CRON, PROCESS_EVENT):
            context = {"id": "t1", "name": name, "args": "()", "kwargs": "{}", "eta": None}
            logging.getLogger("celery.worker.strategy").info(
                LOG_RECEIVED, context, extra={"data": context}
            )
            done = {**context, "return_value": "0", "runtime": 0.01}
            logging.getLogger("celery.app.trace").info(LOG_SUCCESS, done, extra={"data": done})
        logging.getLogger("celery.app.trace").error(
            "Task %(name)s[%(id)s] raised", {"name": DISPATCH_CRON, "id": "t2"}
        )
    finally:
        celery_logger.removeHandler(handler)
        celery_logger.setLevel(old_level)
    # Celery's lines about sending and running tasks (not its other DEBUG lines)
    return [r for r in caught if r.getMessage().startswith(("Scheduler: Sending", "Task "))]


def test_ticks_are_the_tasks_of_the_beat_schedule(tmp_path: Path) -> None:
    ticks = sorted(
        [
            AUTO_ARCHIVE,
            CHAT_RETENTION,
            DISPATCH_CRON,
            PURGE_EVENTS,
            RECOVER_CHATS,
            REQUEUE_NOTIFICATION_EMAILS,
            SWEEP_PENDING_EVENTS,
        ]
    )
    assert tick_task_names(_app(tmp_path)) == ticks


def test_tick_lines_are_dropped_at_info_and_debug_at_debug(tmp_path: Path) -> None:
    app = _app(tmp_path)
    at_info = [(r.levelno, r.getMessage()) for r in _quiet_ticks_caught(app, logging.INFO)]
    assert at_info == [
        (logging.INFO, "Task automations.process_event[t1] received"),
        (logging.INFO, "Task automations.process_event[t1] succeeded in 0.01s: 0"),
        (logging.ERROR, "Task automations.dispatch_cron[t2] raised"),
    ]
    at_debug = [(r.levelno, r.getMessage()) for r in _quiet_ticks_caught(app, logging.DEBUG)]
    assert at_debug == [
        (logging.DEBUG, "Scheduler: Sending due task dispatch-cron (automations.dispatch_cron)"),
        (logging.DEBUG, "Task automations.dispatch_cron[t1] received"),
        (logging.DEBUG, "Task automations.dispatch_cron[t1] succeeded in 0.01s: 0"),
        (logging.INFO, "Task automations.process_event[t1] received"),
        (logging.INFO, "Task automations.process_event[t1] succeeded in 0.01s: 0"),
        (logging.ERROR, "Task automations.dispatch_cron[t2] raised"),
    ]


def test_idle_cron_dispatch_logs_only_at_debug(
    sqlite_session: Session, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    cron(sqlite_session, clock, "*/5 * * * *")  # due at :05, not now
    with caplog.at_level(logging.DEBUG, logger="shared.cron.dispatch"):
        assert dispatch_due(units(sqlite_session, Collector()), clock, 100) == []
    records = [r for r in caplog.records if r.name == "shared.cron.dispatch"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.DEBUG, "cron dispatch: nothing due")
    ]

    caplog.clear()
    clock.advance(minutes=5)
    with caplog.at_level(logging.DEBUG, logger="shared.cron.dispatch"):
        assert len(dispatch_due(units(sqlite_session, Collector()), clock, 100)) == 1
    records = [r for r in caplog.records if r.name == "shared.cron.dispatch"]
    assert [r.levelno for r in records] == [logging.INFO]
    assert records[0].getMessage().startswith("cron dispatch: 1 fire(s)")


# The missing encryption key ------------------------------------------------------------------


def _key_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == UNENCRYPTED_WARNING]


def test_key_warning_once_per_process_when_a_secret_is_stored(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(crypto, "_warned", False)
    monkeypatch.delenv("AUTOMATIONS_ENCRYPTION_KEYS", raising=False)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            load_settings()  # loading settings stores nothing: no warning
        assert _key_warnings(caplog) == []
        Keyring(Settings(encryption_keys=KEY).keys).encrypt("s3cret")
        assert _key_warnings(caplog) == []  # encrypted: nothing to say
        for _ in range(3):
            assert Keyring([]).encrypt("s3cret") == ("s3cret", None)
    [warning] = _key_warnings(caplog)
    assert warning.levelno == logging.WARNING


def test_cli_commands_do_not_print_the_key_warning(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'automations.db'}"
    migrate.upgrade(db)
    env = service_env(
        database_url=db, broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}", data_dir=tmp_path
    )
    for args in (
        ["users", "create", "ada@example.com", "--org", "acme"],
        ["users", "list"],
        ["tokens", "create", "ada@example.com", "--name", "t"],
        ["db", "upgrade"],
    ):
        result = subprocess.run(
            cli(*args), env=env, cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, (args, result.stderr)
        assert "AUTOMATIONS_ENCRYPTION_KEYS" not in result.stderr + result.stdout, args


# Real processes ------------------------------------------------------------------------------


class Started:
    """A child process with its stdout and stderr in separate files."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.out_path, self.err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(
                argv, env=env, cwd=REPO, stdout=out, stderr=err, start_new_session=True
            )

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.stderr():
                return
            assert self.popen.poll() is None, f"{self.name} exited:\n{self.stderr()[-4000:]}"
            time.sleep(0.1)
        pytest.fail(f"{self.name} did not log {needle!r}:\n{self.stderr()[-4000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    db = f"sqlite:///{tmp_path / 'automations.db'}"
    migrate.upgrade(db)
    env = service_env(
        database_url=db,
        broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        data_dir=tmp_path / "var",
        extra={
            # a tick expires after its interval, and the file broker is polled every second:
            # dispatch every 2 s so its ticks arrive in time; the sweeper ticks fast
            "AUTOMATIONS_CRON_DISPATCH_INTERVAL_SECONDS": "2",
            "AUTOMATIONS_SWEEPER_INTERVAL_SECONDS": "0.5",
            "AUTOMATIONS_GATEWAY_WORKERS": "2",
        },
    )
    yield env, db


@pytest.mark.e2e
def test_worker_beat_and_gateway_log_only_json_and_idle_ticks_are_quiet(
    embedded: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, db = embedded
    engine = make_engine(db)
    with Session(engine, expire_on_commit=False) as session:
        auto = factories.automation(session, system_clock, instructions="Summarise")
        trigger = factories.cron_trigger(
            session,
            system_clock,
            auto,
            cron_schedule="* * * * *",
            next_fire_at=system_clock.now() + timedelta(days=1),  # idle until armed below
        )
        session.commit()
    procs: list[Started] = []
    try:
        worker = Started("worker", cli("worker", "--concurrency", "1"), env, tmp_path)
        procs.append(worker)
        # beat at DEBUG: its tick lines are still there, as debug (and still JSON)
        beat_env = {**env, "AUTOMATIONS_LOG_LEVEL": "DEBUG"}
        beat = Started("beat", cli("beat"), beat_env, tmp_path)
        procs.append(beat)
        gateway = Started("gateway", cli("gateway"), env, tmp_path)
        procs.append(gateway)
        worker.wait_for(" ready.")
        beat.wait_for("beat: Starting")
        base = f"http://{env['AUTOMATIONS_BIND']}"
        wait_http(f"{base}/healthz", timeout=60)
        hook = f"{base}/api/v1/automations/triggers/{uuid.uuid4()}/webhook"
        assert requests.post(hook, data=b"{}", timeout=10).status_code == 404

        # idle ticks: beat sends them, the worker runs them, nobody says so at INFO
        deadline = time.monotonic() + 30
        while beat.stderr().count("Sending due task") < 6:
            assert time.monotonic() < deadline, beat.stderr()[-4000:]
            time.sleep(0.2)

        # a tick that fires says so
        with engine.begin() as conn:
            slot = datetime.now(UTC).replace(second=0, microsecond=0)
            conn.execute(
                update(AutomationTrigger)
                .where(AutomationTrigger.id == trigger.id)
                .values(next_fire_at=slot)
            )
        # generous: under a loaded CI machine the embedded broker and beat can lag
        worker.wait_for("cron dispatch: 1 fire(s)", timeout=90)
    finally:
        for proc in procs:
            proc.stop()
        engine.dispose()

    logs = {p.name: json_lines(p.stderr()) for p in procs}
    worker_log, beat_log, gateway_log = logs["worker"], logs["beat"], logs["gateway"]

    # Celery's own loggers and ours, all JSON
    assert any(e["logger"].startswith("celery") and "ready" in e["msg"] for e in worker_log)
    fired = [e for e in worker_log if e["msg"].startswith("cron dispatch: 1 fire(s)")]
    assert [e["level"] for e in fired] == ["info"]
    # idle ticks: nothing at INFO about the tick tasks, in the worker or in beat
    for entry in worker_log + beat_log:
        if entry["level"] == "info":
            assert not any(t in entry["msg"] for t in ("dispatch_cron", "sweep_pending")), entry
    sent = [e for e in beat_log if "Sending due task" in e["msg"]]
    assert len(sent) >= 6 and {e["level"] for e in sent} == {"debug"}
    assert any("dispatch-cron" in e["msg"] for e in sent)
    assert any(e["logger"] == "celery.beat" and e["msg"] == "beat: Starting..." for e in beat_log)

    # gunicorn's error log and the app's access log
    assert any(e["logger"] == "gunicorn.error" and "Listening at" in e["msg"] for e in gateway_log)
    access = [e for e in gateway_log if e["logger"] == "automations.access"]
    assert any(e["status"] == 404 and e["method"] == "POST" for e in access)

    # the missing key: once for the gateway (its master), never for worker or beat
    def key_warnings(entries: list[dict[str, Any]]) -> int:
        return sum(e["msg"] == UNENCRYPTED_WARNING for e in entries)

    assert key_warnings(gateway_log) == 1
    assert key_warnings(worker_log) == key_warnings(beat_log) == 0
