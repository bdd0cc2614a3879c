"""Fault-injection harness: seed a mix of automations, stream signed webhooks at the real
gateway while something breaks, then check the delivery invariant once the system is quiet.

The invariant (issue 7): every webhook answered ``202`` with an event id is stored exactly
once and reaches exactly one final status; nothing stays ``pending``; the number of chats and
messages is what the statuses say (one chat per ``created`` event, one message per
``created``/``continued`` event, none for anything else); no automation exceeds its
rate limits, and a limit that rejected something was reached exactly.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from shared.cron.dispatch import cron_delivery_id
from shared.infra.clock import Clock, system_clock
from shared.models import (
    AutomationEvent,
    AutomationStatus,
    AutomationTrigger,
    Chat,
    ChatMessage,
    EventStatus,
    TriggerType,
)
from shared.triggers.signatures import sign_github
from tests import factories as f
from tests.harness.processes import Proc, service_env, start_beat, start_gateway, start_worker
from tests.harness.services import ThrowawayPostgres, ThrowawayRedis

SECRET = "fa17" * 16  # 64 hex characters, stored in plaintext (no encryption keys)
FINAL = {s for s in EventStatus if s != EventStatus.PENDING}

# --- the automations ----------------------------------------------------------------------


@dataclass(frozen=True)
class AutomationSpec:
    key: str
    label_paths: dict[str, str]
    max_chat_creates_per_hour: int = 1000
    max_messages_per_hour: int = 1000
    status: AutomationStatus = AutomationStatus.ACTIVE
    filter: dict[str, Any] = field(default_factory=dict)
    #: automations in the "shared" group have one owner, so their chats match each other's
    #: labels (SPEC 5.4 matches chats by owner and organization, not by automation)
    group: str = ""


#: Six webhook automations, about 400 events each in a 2,400-request stream.
WEBHOOK_AUTOMATIONS: tuple[AutomationSpec, ...] = (
    # no labels: every event creates a chat until the creation limit rejects the rest
    AutomationSpec("solo", {}, max_chat_creates_per_hour=60),
    # six repositories: a few chats, continued until the message limit
    AutomationSpec(
        "repo", {"repo": "repository.full_name"}, max_messages_per_hour=250, group="shared"
    ),
    # same owner and labels as "repo": continues its chats, may create only 3 of its own
    AutomationSpec(
        "repo-too",
        {"repo": "repository.full_name"},
        max_chat_creates_per_hour=3,
        max_messages_per_hour=300,
        group="shared",
    ),
    # a filter (about a third filtered out) and two labels: many chats, no limit reached
    AutomationSpec(
        "pr",
        {"repo": "repository.full_name", "pr": "pull_request.number"},
        filter={"action": {"$in": ["opened", "synchronize"]}},
    ),
    # 150 issues, at most 80 chats: creates, continues and creation-limited events mixed
    AutomationSpec("issue", {"issue": "issue.number"}, max_chat_creates_per_hour=80),
    # preview: recorded only (matched_chat_id when a "shared" chat has the labels)
    AutomationSpec(
        "preview",
        {"repo": "repository.full_name"},
        status=AutomationStatus.PREVIEW,
        group="shared",
    ),
)


@dataclass
class Seeded:
    automation_ids: dict[str, uuid.UUID]
    #: (automation key, webhook trigger id), in WEBHOOK_AUTOMATIONS order
    webhook_triggers: list[tuple[str, uuid.UUID]]
    limits: dict[uuid.UUID, tuple[int, int]]  # automation id -> (creates, messages)
    preview: set[uuid.UUID]
    cron_triggers: list[uuid.UUID] = field(default_factory=list)


def seed(
    engine: Engine,
    specs: Sequence[AutomationSpec] = WEBHOOK_AUTOMATIONS,
    *,
    cron_automations: Sequence[tuple[int, int]] = (),
) -> Seeded:
    """Create the webhook automations (one trigger each) and, for each ``(n_triggers,
    max_chat_creates)`` in ``cron_automations``, an automation with that many ``* * * * *``
    cron triggers (not scheduled yet: ``next_fire_at`` NULL)."""
    with Session(engine, expire_on_commit=False) as s:
        owners: dict[str, Any] = {}
        seeded = Seeded({}, [], {}, set())
        for spec in specs:
            kw: dict[str, Any] = {}
            if spec.group:
                if spec.group not in owners:
                    org = f.org(s, system_clock)
                    owners[spec.group] = (f.user(s, system_clock, org), org.id)
                kw = {"owner": owners[spec.group][0], "organization_id": owners[spec.group][1]}
            auto = f.automation(
                s,
                system_clock,
                name=f"faults-{spec.key}",
                instructions=f"Handle {spec.key} events.",
                status=spec.status,
                max_chat_creates_per_hour=spec.max_chat_creates_per_hour,
                max_messages_per_hour=spec.max_messages_per_hour,
                **kw,
            )
            trig = f.webhook_trigger(
                s,
                system_clock,
                auto,
                webhook_secret=SECRET,
                filter=spec.filter,
                label_paths=spec.label_paths,
            )
            seeded.automation_ids[spec.key] = auto.id
            seeded.webhook_triggers.append((spec.key, trig.id))
            seeded.limits[auto.id] = (spec.max_chat_creates_per_hour, spec.max_messages_per_hour)
            if spec.status == AutomationStatus.PREVIEW:
                seeded.preview.add(auto.id)
        for i, (n_triggers, creates) in enumerate(cron_automations):
            auto = f.automation(
                s,
                system_clock,
                name=f"faults-cron-{i}",
                instructions="Summarise the minute.",
                max_chat_creates_per_hour=creates,
                max_messages_per_hour=1000,
            )
            seeded.automation_ids[f"cron-{i}"] = auto.id
            seeded.limits[auto.id] = (creates, 1000)
            for _ in range(n_triggers):
                trig = f.cron_trigger(s, system_clock, auto, cron_schedule="* * * * *")
                seeded.cron_triggers.append(trig.id)
        s.commit()
    return seeded


def make_body(seq: int, key: str, rng: random.Random) -> bytes:
    """A small GitHub-like document; the fields the automations' paths and filter read."""
    doc = {
        "action": rng.choice(["opened", "synchronize", "closed"]),
        "repository": {"full_name": f"acme/repo-{rng.randrange(6)}"},
        "pull_request": {"number": rng.randrange(1, 41), "title": f"change {seq}"},
        "issue": {"number": rng.randrange(1, 151)},
        "sender": {"login": "octocat"},
        "seq": seq,
        "automation": key,
    }
    return json.dumps(doc).encode()


# --- the stream -----------------------------------------------------------------------------


@dataclass
class Job:
    seq: int
    key: str
    trigger_id: uuid.UUID
    delivery_id: str
    body: bytes
    #: every attempt's outcome: an HTTP status ("202", "503") or "conn:<exception>"
    attempts: list[str] = field(default_factory=list)
    #: event ids from every 202 answer (all must be the same)
    event_ids: list[str] = field(default_factory=list)
    #: 202 answers that said ``"duplicate": true`` (an earlier attempt had been stored)
    duplicate_answers: int = 0
    ignored: bool = False

    @property
    def event_id(self) -> str | None:
        return self.event_ids[0] if self.event_ids else None


class Sender:
    """Signed webhooks over keep-alive connections from a few threads, at a steady rate.

    Request ``i`` is due ``i / rate`` seconds after the start; bounded by ``total`` requests and
    ``max_seconds`` (requests not sent by then are counted as unsent). A request answered with
    anything but a 202 (connection failure, 503, ...) is retried with the same body and
    delivery id, as a webhook sender would, after ``retry_pause`` seconds (or the 503's
    ``Retry-After``, capped at one second), until it gets a 202 or ``retry_for`` seconds passed
    since the stream ended. Every attempt's outcome is recorded with its time.
    """

    def __init__(
        self,
        base_url: str,
        triggers: Sequence[tuple[str, uuid.UUID]],
        *,
        total: int = 2400,
        rate: float = 80.0,
        threads: int = 8,
        max_seconds: float = 60.0,
        retry_for: float = 30.0,
        retry_pause: float = 0.25,
        timeout: float = 10.0,
        seed: int = 7,
    ) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.rate = rate
        self.max_seconds = max_seconds
        self.retry_for = retry_for
        self.retry_pause = retry_pause
        self.timeout = timeout
        self.n_threads = threads
        rng = random.Random(seed)
        run = uuid.uuid4().hex[:8]
        self.jobs = []
        for i in range(total):
            key, trigger_id = triggers[i % len(triggers)]
            self.jobs.append(Job(i, key, trigger_id, f"{run}-{i}", make_body(i, key, rng)))
        self.timeline: list[tuple[float, str]] = []  # (seconds since start, outcome)
        self._lock = threading.Lock()
        self._next = 0
        self._threads: list[threading.Thread] = []
        self.started_at = 0.0
        self.finished_at = 0.0
        self._stream_end = 0.0

    # public -------------------------------------------------------------------------------

    def start(self) -> Sender:
        self.started_at = time.monotonic()
        self._stream_end = self.started_at + self.max_seconds
        for n in range(self.n_threads):
            t = threading.Thread(target=self._run, name=f"sender-{n}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def join(self) -> None:
        limit = self.max_seconds + self.retry_for + 3 * self.timeout + 5
        for t in self._threads:
            t.join(max(0.0, self.started_at + limit - time.monotonic()))
        last = max((t for t, _ in self.timeline), default=0.0)
        self.finished_at = self.started_at + last
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise AssertionError(f"sender threads did not finish: {alive}")

    @property
    def sent(self) -> list[Job]:
        return [j for j in self.jobs if j.attempts]

    def attempt_counts(self) -> Counter[str]:
        return Counter(a for j in self.jobs for a in j.attempts)

    def accepted(self) -> list[Job]:
        return [j for j in self.jobs if j.event_ids]

    # internals ------------------------------------------------------------------------------

    def _take(self) -> Job | None:
        with self._lock:
            if self._next >= len(self.jobs):
                return None
            job = self.jobs[self._next]
            self._next += 1
        due = self.started_at + job.seq / self.rate
        if due > self._stream_end:
            return None
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return job

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while (job := self._take()) is not None:
            give_up = max(time.monotonic(), self._stream_end) + self.retry_for
            while True:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                outcome, retry_after, body = self._post(conn, job)
                with self._lock:
                    self.timeline.append((time.monotonic() - self.started_at, outcome))
                job.attempts.append(outcome)
                if outcome.startswith("conn:"):
                    conn.close()
                    conn = None
                if outcome == "202":
                    if body.get("status") == "ignored":
                        job.ignored = True
                    elif "event_id" in body:
                        job.event_ids.append(str(body["event_id"]))
                        job.duplicate_answers += bool(body.get("duplicate"))
                    break
                if time.monotonic() >= give_up:
                    break
                time.sleep(min(retry_after, 1.0) if retry_after else self.retry_pause)
        if conn is not None:
            conn.close()

    def _post(
        self, conn: http.client.HTTPConnection, job: Job
    ) -> tuple[str, float | None, dict[str, Any]]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/faults",
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": job.delivery_id,
            "X-Hub-Signature-256": sign_github(SECRET, job.body),
        }
        path = f"/api/v1/automations/triggers/{job.trigger_id}/webhook"
        try:
            conn.request("POST", path, body=job.body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            return f"conn:{type(exc).__name__}", None, {}
        retry_after: float | None = None
        if resp.getheader("Retry-After"):
            try:
                retry_after = float(resp.getheader("Retry-After") or 0)
            except ValueError:
                retry_after = None
        if resp.getheader("Connection", "").lower() == "close":
            conn.close()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_not_json": raw[:200].decode(errors="replace")}
        if not isinstance(body, dict):
            body = {}
        return str(resp.status), retry_after, body


# --- quiescence and the invariant ---------------------------------------------------------------


def status_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(AutomationEvent.status, func.count()).group_by(AutomationEvent.status)
        ).all()
    return {str(EventStatus(s)): int(n) for s, n in rows}


def wait_quiescent(engine: Engine, timeout: float = 90.0, *, settle: float = 2.0) -> float:
    """Wait until no event is ``pending`` (twice, ``settle`` seconds apart); return how long
    it took. Fails with the status counts after ``timeout`` seconds."""
    started = time.monotonic()
    deadline = started + timeout
    quiet_since: float | None = None
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        try:
            counts = status_counts(engine)
        except Exception as exc:  # the database may still be coming back
            counts = {"<query failed>": 0}
            print(f"  quiescence poll failed: {type(exc).__name__}")
        if counts.get("pending", 0) == 0 and "<query failed>" not in counts:
            if quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= settle:
                return time.monotonic() - started
        else:
            quiet_since = None
        time.sleep(0.5)
    raise AssertionError(f"not quiescent after {timeout}s: {counts}")


@dataclass
class CronExpectation:
    """Slots every cron trigger must have fired exactly once."""

    slots: list[datetime]


@dataclass
class Report:
    name: str
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)

    def problem(self, line: str) -> None:
        self.problems.append(line)

    def text(self) -> str:
        out = [f"== fault scenario: {self.name}", *(f"   {line}" for line in self.lines)]
        if self.problems:
            out.append(f"   PROBLEMS ({len(self.problems)}):")
            out += [f"   - {p}" for p in self.problems[:40]]
            if len(self.problems) > 40:
                out.append(f"   ... and {len(self.problems) - 40} more")
        else:
            out.append("   invariant: OK (0 lost, 0 applied twice)")
        return "\n".join(out)


def check_invariants(
    name: str,
    engine: Engine,
    seeded: Seeded,
    sender: Sender,
    *,
    cron: CronExpectation | None = None,
    extra: Sequence[str] = (),
) -> Report:
    """Check the invariant over everything in the database; return the report (with
    ``problems``; the caller asserts there are none)."""
    rep = Report(name)
    with engine.connect() as conn:
        events = conn.execute(
            select(
                AutomationEvent.id,
                AutomationEvent.automation_id,
                AutomationEvent.trigger_id,
                AutomationEvent.delivery_id,
                AutomationEvent.status,
                AutomationEvent.created_chat_id,
                AutomationEvent.matched_chat_id,
                AutomationEvent.error,
                AutomationEvent.publish_attempts,
                AutomationTrigger.type,
            ).outerjoin(AutomationTrigger, AutomationTrigger.id == AutomationEvent.trigger_id)
        ).all()
        chats = {row.id: row for row in conn.execute(select(Chat.id, Chat.automation_id)).all()}
        per_event_messages: dict[uuid.UUID | None, int] = {
            eid: int(n)
            for eid, n in conn.execute(
                select(ChatMessage.event_id, func.count()).group_by(ChatMessage.event_id)
            ).all()
        }
        n_messages = int(conn.execute(select(func.count()).select_from(ChatMessage)).scalar_one())

    by_id = {e.id: e for e in events}
    statuses = Counter(str(EventStatus(e.status)) for e in events)
    webhook = [e for e in events if e.type == TriggerType.WEBHOOK]
    cron_events = [e for e in events if e.type == TriggerType.CRON]

    # 1. the stream: every 202 is one stored event, the same one for every retry
    sent = sender.sent
    accepted = sender.accepted()
    attempts = sender.attempt_counts()
    unsent = len(sender.jobs) - len(sent)
    never_acked = [j for j in sent if not j.event_ids and not j.ignored]
    retried = [j for j in sent if len(j.attempts) > 1]
    by_delivery: dict[tuple[uuid.UUID | None, str | None], list[Any]] = defaultdict(list)
    for e in webhook:
        by_delivery[(e.trigger_id, e.delivery_id)].append(e)
    duplicates = sum(len(v) - 1 for v in by_delivery.values() if len(v) > 1)
    sent_keys = {(j.trigger_id, j.delivery_id) for j in sent}
    for job in accepted:
        ids = set(job.event_ids)
        if len(ids) > 1:
            rep.problem(f"delivery {job.delivery_id} got different event ids: {sorted(ids)}")
        for eid in ids:
            row = by_id.get(uuid.UUID(eid))
            if row is None:
                rep.problem(f"202'd event {eid} (delivery {job.delivery_id}) is not stored")
            elif row.delivery_id != job.delivery_id:
                rep.problem(f"event {eid} has delivery id {row.delivery_id}, not {job.delivery_id}")
    for key, rows in by_delivery.items():
        if key not in sent_keys:
            rep.problem(f"stored webhook event for a delivery never sent: {key}")
        if len(rows) > 1:
            rep.problem(f"delivery {key[1]} stored {len(rows)} times")
    dup_answers = sum(j.duplicate_answers for j in sent)
    recorded_unacked = sum(1 for j in never_acked if (j.trigger_id, j.delivery_id) in by_delivery)
    if attempts.get("500"):
        rep.problem(f"{attempts['500']} answers were 500")
    unexpected = {k: n for k, n in attempts.items() if k not in ("202", "503") and k[:5] != "conn:"}
    if unexpected:
        rep.problem(f"unexpected answers: {unexpected}")

    # 2. every event is final; none is an error
    for e in events:
        status = EventStatus(e.status)
        if status == EventStatus.PENDING:
            rep.problem(f"event {e.id} is still pending")
        elif status == EventStatus.ERROR:
            rep.problem(f"event {e.id} ended in error: {e.error}")

    # 3. chats and messages are what the statuses say
    created = [e for e in events if EventStatus(e.status) == EventStatus.CREATED]
    continued = [e for e in events if EventStatus(e.status) == EventStatus.CONTINUED]
    created_chats = Counter(e.created_chat_id for e in created)
    if len(chats) != len(created):
        rep.problem(f"{len(chats)} chats but {len(created)} created events")
    for chat_id, n in created_chats.items():
        if n > 1:
            rep.problem(f"chat {chat_id} created by {n} events")
        if chat_id not in chats:
            rep.problem(f"created chat {chat_id} does not exist")
    for e in continued:
        if e.matched_chat_id not in chats:
            rep.problem(f"event {e.id} continued chat {e.matched_chat_id}, which does not exist")
    if n_messages != len(created) + len(continued):
        rep.problem(
            f"{n_messages} chat messages but {len(created)} created + {len(continued)} continued"
        )
    messages_twice = 0
    for e in events:
        want = 1 if EventStatus(e.status) in (EventStatus.CREATED, EventStatus.CONTINUED) else 0
        got = per_event_messages.get(e.id, 0)
        if got > 1:
            messages_twice += 1
        if got != want:
            rep.problem(f"event {e.id} ({EventStatus(e.status)}) has {got} messages")
    if per_event_messages.get(None):
        rep.problem(f"{per_event_messages[None]} messages without an event")

    # 4. rate limits: never exceeded, and exactly reached when they rejected something
    per_auto: dict[uuid.UUID, Counter[str]] = defaultdict(Counter)
    limited_by: dict[uuid.UUID, Counter[str]] = defaultdict(Counter)
    for e in events:
        per_auto[e.automation_id][str(EventStatus(e.status))] += 1
        if EventStatus(e.status) == EventStatus.RATE_LIMITED:
            kind = "messages" if (e.error or "").startswith("message") else "creates"
            limited_by[e.automation_id][kind] += 1
    for auto_id, (max_creates, max_messages) in seeded.limits.items():
        c = per_auto.get(auto_id, Counter())
        n_created, n_msgs = c["created"], c["created"] + c["continued"]
        if n_created > max_creates:
            rep.problem(f"automation {auto_id}: {n_created} chats created > limit {max_creates}")
        if n_msgs > max_messages:
            rep.problem(f"automation {auto_id}: {n_msgs} messages > limit {max_messages}")
        if limited_by[auto_id]["messages"] and n_msgs != max_messages:
            rep.problem(f"automation {auto_id}: message-limited at {n_msgs}/{max_messages}")
        if limited_by[auto_id]["creates"] and n_created != max_creates:
            rep.problem(f"automation {auto_id}: creation-limited at {n_created}/{max_creates}")
        if auto_id in seeded.preview and set(c) - {"preview", "filtered"}:
            rep.problem(f"preview automation {auto_id} has outcomes {dict(c)}")

    # 5. cron: every expected slot fired exactly once per trigger
    if cron is not None:
        fired: dict[uuid.UUID | None, Counter[str | None]] = defaultdict(Counter)
        for e in cron_events:
            fired[e.trigger_id][e.delivery_id] += 1
        twice = sum(n - 1 for c in fired.values() for n in c.values() if n > 1)
        duplicates += twice
        want_slots = {cron_delivery_id(slot) for slot in cron.slots}
        missing = 0
        for trig in seeded.cron_triggers:
            missing += len(want_slots - set(fired.get(trig, Counter())))
        if twice:
            rep.problem(f"{twice} cron slots fired more than once")
        if missing:
            rep.problem(f"{missing} expected cron fires missing (slots {sorted(want_slots)})")
        rep.add(
            f"cron: {len(seeded.cron_triggers)} triggers, {len(cron_events)} fires over "
            f"{len({d for c in fired.values() for d in c})} slot(s); expected slots "
            f"{sorted(want_slots)}; fired twice: {twice}; missing: {missing}"
        )

    # the counts
    rep.add(
        f"sent: {len(sent)} requests ({sum(len(j.attempts) for j in sent)} attempts, "
        f"{len(retried)} retried), unsent: {unsent}, "
        f"in {sender.finished_at - sender.started_at:.1f}s"
    )
    rep.add(f"answers: {dict(sorted(attempts.items()))}")
    rep.add(
        f"accepted (202 with event id): {len(accepted)}; never got a 202: {len(never_acked)} "
        f"(of which stored anyway: {recorded_unacked}); retries answered as duplicates of a "
        f"stored attempt: {dup_answers}"
    )
    rep.add(
        f"events stored: {len(events)} ({len(webhook)} webhook, {len(cron_events)} cron); "
        f"final statuses: {dict(sorted(statuses.items()))}"
    )
    rep.add(
        f"chats: {len(chats)}; messages: {n_messages} (= {len(created)} created + "
        f"{len(continued)} continued)"
    )
    limited = {
        k: dict(limited_by[seeded.automation_ids[k]])
        for k in seeded.automation_ids
        if limited_by[seeded.automation_ids[k]]
    }
    rep.add(f"rate-limited by automation: {limited}")
    rep.add(
        f"duplicates found: {duplicates} (stored deliveries), {messages_twice} (messages), "
        f"{sum(n - 1 for n in created_chats.values() if n > 1)} (chats)"
    )
    swept = [e for e in events if e.publish_attempts]
    rep.add(
        f"re-published by the sweeper: {len(swept)} events "
        f"({sum(e.publish_attempts for e in swept)} publishes)"
    )
    for line in extra:
        rep.add(line)
    return rep


# --- cron helpers -------------------------------------------------------------------------------


def minute_floor(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def make_cron_due(
    engine: Engine, trigger_ids: Sequence[uuid.UUID], clock: Clock = system_clock
) -> datetime:
    """Set every trigger's next fire to the current minute's slot (due now); return it."""
    slot = minute_floor(clock.now())
    with engine.begin() as conn:
        conn.execute(
            update(AutomationTrigger)
            .where(AutomationTrigger.id.in_(list(trigger_ids)))
            .values(next_fire_at=slot)
        )
    return slot


def unschedule_cron(
    engine: Engine, trigger_ids: Sequence[uuid.UUID], clock: Clock = system_clock
) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(AutomationTrigger)
            .where(AutomationTrigger.id.in_(list(trigger_ids)))
            .values(next_fire_at=clock.now() + timedelta(days=1))
        )


# --- the system under test ------------------------------------------------------------------------

#: Short intervals so recovery happens within a scenario: the sweeper looks every second and
#: re-publishes events pending for 4 s (then 4, 8, 16 s ... later); parking only after 12
#: attempts (minutes), so a parked event means a real loss, not an impatient sweeper.
FAULT_SETTINGS = {
    "AUTOMATIONS_SWEEPER_INTERVAL_SECONDS": "1",
    "AUTOMATIONS_SWEEPER_MIN_AGE_SECONDS": "4",
    "AUTOMATIONS_SWEEPER_MAX_ATTEMPTS": "12",
    "AUTOMATIONS_CRON_DISPATCH_INTERVAL_SECONDS": "1",
    "AUTOMATIONS_GATEWAY_WORKERS": "2",
    "AUTOMATIONS_GATEWAY_THREADS": "8",
    "AUTOMATIONS_TRIGGER_CACHE_SECONDS": "2",
}


class System:
    """Real processes on a private PostgreSQL database and a private Redis: one gateway, any
    number of workers and beats. :meth:`close` stops whatever is still running."""

    def __init__(
        self,
        pg: ThrowawayPostgres,
        redis_server: ThrowawayRedis,
        db_url: str,
        engine: Engine,
        workdir: Path,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.pg = pg
        self.redis = redis_server
        self.db_url = db_url
        self.engine = engine
        self.workdir = workdir
        metrics = workdir / "metrics"
        metrics.mkdir(exist_ok=True)
        self.env = service_env(
            database_url=db_url,
            broker_url=f"{redis_server.url}/0",
            data_dir=workdir / "var",
            extra={**FAULT_SETTINGS, "PROMETHEUS_MULTIPROC_DIR": str(metrics), **(extra or {})},
        )
        self.procs: list[Proc] = []
        self.gateway: Proc | None = None
        #: the scenario's printed reports (the fixture attaches them to the test report)
        self.reports: list[str] = []
        self.base_url = f"http://{self.env['AUTOMATIONS_BIND']}"

    def start_gateway(self) -> Proc:
        proc, self.base_url = start_gateway(self.env, self.workdir, timeout=60)
        self.gateway = proc
        self.procs.append(proc)
        return proc

    def kill_gateway(self) -> None:
        assert self.gateway is not None
        self.gateway.kill_group()

    def start_worker(self, name: str, concurrency: int = 2) -> Proc:
        proc = start_worker(self.env, self.workdir, "--concurrency", str(concurrency), name=name)
        self.procs.append(proc)
        return proc

    def start_beat(self, name: str) -> Proc:
        env = dict(self.env, AUTOMATIONS_DATA_DIR=str(self.workdir / f"var-{name}"))
        proc = start_beat(env, self.workdir, name=name)
        self.procs.append(proc)
        return proc

    def alive(self) -> list[Proc]:
        return [p for p in self.procs if p.alive()]

    def logs_tail(self, chars: int = 3000) -> str:
        parts = []
        for p in self.procs:
            try:
                parts.append(f"--- {p.name} ({p.log_path.name})\n{p.log()[-chars:]}")
            except OSError:
                pass
        return "\n".join(parts)

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.alive():
                p.stop(timeout=10)
        for p in self.procs:
            if p.alive():
                p.kill_group()
