"""Trigger lookup for the ingress, with a per-process TTL cache (SPEC 4.2.2).

The snapshot is immutable and carries the decrypted secrets, so a cached lookup costs no
database round trip and no AES. Every gateway process has its own cache and nothing tells it
that an operator regenerated a secret, so a stale snapshot is handled by two rules instead:

* A regenerated secret is valid at once: a signature that fails against a cached snapshot
  (``invalid``, the only verdict that depends on the secrets) is checked again against a
  fresh load before the 401, and the fresh snapshot replaces the cached one. A flood of bad
  signatures must not turn into a flood of queries, so such forced reloads happen at most
  once per :data:`FORCED_RELOAD_INTERVAL_SECONDS` per trigger and process
  (:meth:`TriggerCache.claim_forced_reload`).
* A replaced secret stops working within 5 s even when ``settings.trigger_cache_seconds`` is
  longer: a signature accepted against a snapshot older than
  :data:`ACCEPT_MAX_AGE_SECONDS` is checked against a fresh load too
  (:meth:`TriggerCache.may_accept`), a disabled automation's trigger included (its
  signature is checked before its status is revealed). Misses and cron triggers stay cached
  for the whole TTL.

A trigger deleted while cached is noticed at the event's insert (its foreign key fails):
the ingress then reloads it, which caches the miss, and answers 404.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shared.infra.clock import Clock
from shared.infra.crypto import CryptoError, Keyring
from shared.models import Automation, AutomationStatus, AutomationTrigger, TriggerType
from shared.triggers.secrets import read_secret, valid_secrets

__all__ = [
    "ACCEPT_MAX_AGE_SECONDS",
    "FORCED_RELOAD_INTERVAL_SECONDS",
    "CachedTrigger",
    "TriggerCache",
    "TriggerSnapshot",
    "load_trigger",
    "parse_trigger_id",
]

log = logging.getLogger(__name__)

#: at most one forced reload (after a failed signature) per trigger per process this often
FORCED_RELOAD_INTERVAL_SECONDS = 1.0
#: a cached snapshot accepts signatures only this long after it was loaded (SPEC 4.2.2: a
#: replaced secret is rejected within 5 s; the margin covers the load's own latency)
ACCEPT_MAX_AGE_SECONDS = 4.0


@dataclass(frozen=True)
class TriggerSnapshot:
    trigger_id: uuid.UUID
    automation_id: uuid.UUID
    type: TriggerType
    automation_status: AutomationStatus
    current_secret: str | None = field(repr=False, default=None)
    previous_secret: str | None = field(repr=False, default=None)
    previous_expires_at: datetime | None = None
    #: why the current secret could not be read (names a key digest, never key material)
    secret_error: str | None = None
    #: GitHub-style deliveries: a byte-identical body within this many seconds is a
    #: duplicate (0: off)
    replay_window_seconds: int = 0

    @property
    def is_webhook(self) -> bool:
        return self.type is TriggerType.WEBHOOK

    @property
    def disabled(self) -> bool:
        return self.automation_status is AutomationStatus.DISABLED

    def secrets_at(self, now: datetime) -> tuple[str, ...]:
        return valid_secrets(
            self.current_secret, self.previous_secret, self.previous_expires_at, now
        )


#: the one spelling of a trigger id in a webhook path: what ``str(uuid)`` gives
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def parse_trigger_id(raw: str) -> uuid.UUID | None:
    """The trigger id from the URL, or None unless it is the canonical lower-case hyphenated
    form (answered like an unknown id): ``uuid.UUID`` would also take upper case, braces,
    ``urn:uuid:`` and no dashes, and one trigger must have one URL."""
    if _CANONICAL_UUID.fullmatch(raw) is None:
        return None
    return uuid.UUID(raw)


_COLUMNS = (
    AutomationTrigger.id,
    AutomationTrigger.automation_id,
    AutomationTrigger.type,
    AutomationTrigger.webhook_secret,
    AutomationTrigger.webhook_secret_key_id,
    AutomationTrigger.previous_webhook_secret,
    AutomationTrigger.previous_webhook_secret_key_id,
    AutomationTrigger.previous_secret_expires_at,
    AutomationTrigger.replay_window_seconds,
    Automation.status,
)


def load_trigger(
    session: Session | Connection, keyring: Keyring, trigger_id: uuid.UUID
) -> TriggerSnapshot | None:
    """Read one trigger and its automation's status in a single query; None when unknown."""
    row = session.execute(
        select(*_COLUMNS)
        .join(Automation, Automation.id == AutomationTrigger.automation_id)
        .where(AutomationTrigger.id == trigger_id)
    ).one_or_none()
    if row is None:
        return None
    (tid, aid, ttype, cur, cur_key, prev, prev_key, prev_exp, window, status) = row
    current: str | None = None
    previous: str | None = None
    error: str | None = None
    if cur is not None:
        try:
            current = read_secret(keyring, cur, cur_key)
        except CryptoError as exc:
            error = str(exc)
            log.error("cannot read webhook secret of trigger %s: %s", tid, exc)
    if prev is not None and prev_exp is not None:
        try:
            previous = read_secret(keyring, prev, prev_key)
        except CryptoError as exc:
            log.warning("ignoring unreadable previous secret of trigger %s: %s", tid, exc)
    return TriggerSnapshot(
        trigger_id=tid,
        automation_id=aid,
        type=TriggerType(ttype),
        automation_status=AutomationStatus(status),
        current_secret=current,
        previous_secret=previous,
        previous_expires_at=prev_exp,
        secret_error=error,
        replay_window_seconds=window,
    )


@dataclass(frozen=True)
class CachedTrigger:
    """A cache entry: the snapshot (None: a cached "unknown trigger") and when it was loaded
    (the injected clock's timestamp)."""

    snapshot: TriggerSnapshot | None
    loaded_at: float
    #: when a forced reload of this trigger was last claimed (0: never)
    forced_reload_at: float = 0.0


class TriggerCache:
    """Bounded, thread-safe TTL cache of snapshots (and of misses) keyed by trigger id.

    Time comes from the injected clock, so tests expire entries by advancing a FrozenClock;
    an entry whose timestamp lies in the future (clock stepped back) counts as expired.
    """

    def __init__(
        self,
        clock: Clock,
        ttl_seconds: float,
        max_entries: int = 10_000,
        *,
        forced_reload_interval: float = FORCED_RELOAD_INTERVAL_SECONDS,
        accept_max_age: float = ACCEPT_MAX_AGE_SECONDS,
    ) -> None:
        self._clock = clock
        self._ttl = ttl_seconds
        self._max = max_entries
        self._reload_interval = forced_reload_interval
        self._accept_max_age = accept_max_age
        self._lock = threading.Lock()
        self._entries: OrderedDict[uuid.UUID, CachedTrigger] = OrderedDict()

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def entry(self, trigger_id: uuid.UUID) -> CachedTrigger | None:
        """The live entry for ``trigger_id``, or None (never cached, expired, or caching off)."""
        if self._ttl <= 0:
            return None
        now = self._now()
        with self._lock:
            entry = self._entries.get(trigger_id)
            if entry is None:
                return None
            if not entry.loaded_at <= now < entry.loaded_at + self._ttl:
                del self._entries[trigger_id]
                return None
            return entry

    def get(self, trigger_id: uuid.UUID) -> tuple[bool, TriggerSnapshot | None]:
        """``(hit, snapshot)``; a hit with ``None`` is a cached "unknown trigger"."""
        entry = self.entry(trigger_id)
        if entry is None:
            return False, None
        return True, entry.snapshot

    def put(self, trigger_id: uuid.UUID, snapshot: TriggerSnapshot | None) -> None:
        """Cache a freshly loaded snapshot (replacing any entry; its forced-reload claim is
        kept, so that replacing the entry does not reopen the throttle)."""
        if self._ttl <= 0:
            return
        now = self._now()
        with self._lock:
            previous = self._entries.get(trigger_id)
            claimed = previous.forced_reload_at if previous is not None else 0.0
            self._entries[trigger_id] = CachedTrigger(snapshot, now, claimed)
            self._entries.move_to_end(trigger_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def claim_forced_reload(self, trigger_id: uuid.UUID) -> bool:
        """True when the caller may reload ``trigger_id`` from the database because a
        signature failed against its cached snapshot; records the claim. False when another
        forced reload of it was claimed less than ``forced_reload_interval`` ago, so that a
        flood of bad signatures costs at most one query per trigger per interval."""
        now = self._now()
        with self._lock:
            entry = self._entries.get(trigger_id)
            if entry is None:
                return True  # evicted or expired meanwhile: the caller's snapshot is old
            last = entry.forced_reload_at
            if last and last <= now < last + self._reload_interval:
                return False
            self._entries[trigger_id] = CachedTrigger(entry.snapshot, entry.loaded_at, now)
            return True

    def may_accept(self, entry: CachedTrigger) -> bool:
        """Whether a signature verified against ``entry`` may be accepted without a fresh
        load: only while the entry is younger than ``accept_max_age`` (SPEC 4.2.2)."""
        now = self._now()
        return entry.loaded_at <= now < entry.loaded_at + self._accept_max_age

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def lookup(
        self, session: Session | Connection, keyring: Keyring, trigger_id: uuid.UUID
    ) -> TriggerSnapshot | None:
        hit, snapshot = self.get(trigger_id)
        if hit:
            return snapshot
        snapshot = load_trigger(session, keyring, trigger_id)
        self.put(trigger_id, snapshot)
        return snapshot
