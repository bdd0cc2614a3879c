"""Trigger lookup for the ingress, with a short per-process TTL cache.

The snapshot is immutable and carries the decrypted secrets, so a cached lookup costs no
database round trip and no AES. A regenerated or deleted secret stops working once the
entry expires (``settings.trigger_cache_seconds``, a couple of seconds by default).
"""

from __future__ import annotations

import logging
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

__all__ = ["TriggerCache", "TriggerSnapshot", "load_trigger", "parse_trigger_id"]

log = logging.getLogger(__name__)


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


def parse_trigger_id(raw: str) -> uuid.UUID | None:
    """The trigger id from the URL, or None when it is not a UUID (answered like unknown)."""
    if len(raw) > 64:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


_COLUMNS = (
    AutomationTrigger.id,
    AutomationTrigger.automation_id,
    AutomationTrigger.type,
    AutomationTrigger.webhook_secret,
    AutomationTrigger.webhook_secret_key_id,
    AutomationTrigger.previous_webhook_secret,
    AutomationTrigger.previous_webhook_secret_key_id,
    AutomationTrigger.previous_secret_expires_at,
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
    (tid, aid, ttype, cur, cur_key, prev, prev_key, prev_exp, status) = row
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
    )


class TriggerCache:
    """Bounded, thread-safe TTL cache of snapshots (and of misses) keyed by trigger id.

    Time comes from the injected clock, so tests expire entries by advancing a FrozenClock;
    an entry whose timestamp lies in the future (clock stepped back) counts as expired.
    """

    def __init__(self, clock: Clock, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._ttl = ttl_seconds
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[uuid.UUID, tuple[float, TriggerSnapshot | None]] = OrderedDict()

    def get(self, trigger_id: uuid.UUID) -> tuple[bool, TriggerSnapshot | None]:
        """``(hit, snapshot)``; a hit with ``None`` is a cached "unknown trigger"."""
        if self._ttl <= 0:
            return False, None
        now = self._clock.now().timestamp()
        with self._lock:
            entry = self._entries.get(trigger_id)
            if entry is None:
                return False, None
            stored_at, snapshot = entry
            if not stored_at <= now < stored_at + self._ttl:
                del self._entries[trigger_id]
                return False, None
            return True, snapshot

    def put(self, trigger_id: uuid.UUID, snapshot: TriggerSnapshot | None) -> None:
        if self._ttl <= 0:
            return
        now = self._clock.now().timestamp()
        with self._lock:
            self._entries[trigger_id] = (now, snapshot)
            self._entries.move_to_end(trigger_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

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
