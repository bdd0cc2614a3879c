"""Secrets at rest: writing secrets encrypted, and the key-management operations.

The secrets are webhook secrets (current and previous) and model configs' API keys (SPEC 9);
every operation below covers both.

* :func:`seal` encrypts a new secret with the active key and records the key's digest in
  ``encryption_keys`` (never the key itself).
* :func:`rotate` re-encrypts every current and previous webhook secret and every API key with
  the active key.
* :func:`decrypt_all` stores every secret as plaintext again (before removing all keys).
* :func:`delete_secrets` erases secrets encrypted with a key that is lost (not configured),
  or with one named key. A webhook trigger must always hold a secret (database CHECK), so an
  erased *current* secret is replaced by a fresh random one that is never shown to anybody:
  the trigger rejects every delivery (401) until its owner runs ``trigger rotate-secret``
  (``POST .../regenerate-secret``). An erased *previous* secret is simply dropped. Each
  affected trigger gets a ``trigger.secret_erased`` audit entry. An erased API key is removed
  (the model config answers ``api_key_set: false``; its turns fail with kind ``auth`` until an
  org-admin sets the key again), with a ``model_config.api_key_erased`` audit entry.
* :func:`check_keys` (run at startup) fails with a message naming the digest when a row is
  encrypted with a key that is not configured.

The three operations run in batches (short transactions, rows locked on PostgreSQL), only
touch rows that still need the change (so an interrupted run is resumed by running it again,
and a second run does nothing), report progress through a callback and return a summary.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, or_, select, union, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shared import audit
from shared.infra.clock import Clock
from shared.infra.crypto import CryptoError, Keyring
from shared.infra.db.uow import Units
from shared.keys.api_keys import api_key_digests_in_use, api_key_eraser, api_key_resealer
from shared.models import (
    AuditLog,
    Automation,
    AutomationTrigger,
    EncryptionKey,
    KeyStatus,
    ModelConfig,
)
from shared.triggers.signatures import generate_secret

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "KeyCheckError",
    "KeyOpSummary",
    "Progress",
    "api_key_digests_in_use",
    "check_keys",
    "decrypt_all",
    "delete_secrets",
    "digests_in_use",
    "record_key",
    "rotate",
    "seal",
]

log = logging.getLogger(__name__)
DEFAULT_BATCH_SIZE = 500

#: ``progress(done, total)``: called once with ``done=0`` and after every batch
Progress = Callable[[int, int], None]

_T = AutomationTrigger
_M = ModelConfig


class KeyCheckError(Exception):
    """Rows are encrypted with keys that are not configured; the message names the digests.

    ``missing``: digest → triggers; ``missing_api_keys``: digest → model configs."""

    def __init__(
        self, missing: dict[str, int], missing_api_keys: dict[str, int] | None = None
    ) -> None:
        self.missing = missing
        self.missing_api_keys = dict(missing_api_keys or {})
        parts = []
        for digest in sorted(set(missing) | set(self.missing_api_keys)):
            counts = []
            if missing.get(digest):
                counts.append(f"{missing[digest]} trigger(s)")
            if self.missing_api_keys.get(digest):
                counts.append(f"{self.missing_api_keys[digest]} model config API key(s)")
            parts.append(f"{digest} ({', '.join(counts)})")
        super().__init__(
            "secrets are encrypted with key(s) not in AUTOMATIONS_ENCRYPTION_KEYS: "
            + ", ".join(parts)
            + ". Add the key(s) back, or run `automations keys delete` to erase those secrets "
            "(the triggers then need `automations trigger rotate-secret`, the model configs a "
            "new API key)."
        )


@dataclass
class KeyOpSummary:
    operation: str
    #: triggers that needed the operation when it started
    total: int = 0
    #: triggers changed
    changed: int = 0
    #: current + previous secrets (re-)written or erased
    secrets: int = 0
    #: expired previous secrets dropped instead of being re-written
    expired_dropped: int = 0
    batches: int = 0
    #: trigger id → reason, for rows that could not be processed (e.g. corrupt ciphertext)
    failed: dict[str, str] = field(default_factory=dict)
    active_digest: str | None = None
    digests: list[str] = field(default_factory=list)
    #: model configs whose API key needed the operation when it started, and those changed
    model_configs_total: int = 0
    model_configs_changed: int = 0
    #: model config id → reason, for API keys that could not be processed
    failed_model_configs: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "total": self.total,
            "changed": self.changed,
            "secrets": self.secrets,
            "expired_dropped": self.expired_dropped,
            "batches": self.batches,
            "failed": self.failed,
            "active_digest": self.active_digest,
            "digests": self.digests,
            "model_configs_total": self.model_configs_total,
            "model_configs_changed": self.model_configs_changed,
            "failed_model_configs": self.failed_model_configs,
        }


# Writing secrets --------------------------------------------------------------------------


def record_key(session: Session, clock: Clock, digest: str) -> None:
    """Make sure ``digest`` is in ``encryption_keys`` with status ``active`` (idempotent)."""
    now = clock.now()
    dialect = session.get_bind().dialect.name
    values = {
        "id": uuid.uuid4(),
        "digest": digest,
        "status": KeyStatus.ACTIVE,
        "created_at": now,
        "revoked_at": None,
    }
    upsert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(upsert(EncryptionKey).values(**values).on_conflict_do_nothing())
    session.execute(
        update(EncryptionKey)
        .where(EncryptionKey.digest == digest, EncryptionKey.status != KeyStatus.ACTIVE)
        .values(status=KeyStatus.ACTIVE, revoked_at=None)
    )


def seal(
    session: Session, clock: Clock, keyring: Keyring, plaintext: str
) -> tuple[str, str | None]:
    """``(stored value, key digest)`` for a new secret; plaintext when no keys are set."""
    stored, digest = keyring.encrypt(plaintext)
    if digest is not None:
        record_key(session, clock, digest)
    return stored, digest


# Inspection -------------------------------------------------------------------------------


def digests_in_use(session: Session) -> dict[str, int]:
    """digest → number of triggers with a current or previous secret encrypted with it."""
    cur = select(_T.id.label("tid"), _T.webhook_secret_key_id.label("digest")).where(
        _T.webhook_secret_key_id.is_not(None)
    )
    prev = select(_T.id.label("tid"), _T.previous_webhook_secret_key_id.label("digest")).where(
        _T.previous_webhook_secret_key_id.is_not(None)
    )
    u = union(cur, prev).subquery()
    rows = session.execute(select(u.c.digest, func.count()).group_by(u.c.digest)).all()
    return {str(digest): int(count) for digest, count in rows}


def check_keys(session: Session, keyring: Keyring) -> None:
    """Raise :class:`KeyCheckError` when a secret is encrypted with an unconfigured key."""
    missing = {d: n for d, n in digests_in_use(session).items() if d not in keyring.digests}
    api_keys = api_key_digests_in_use(session)
    missing_api_keys = {d: n for d, n in api_keys.items() if d not in keyring.digests}
    if missing or missing_api_keys:
        raise KeyCheckError(missing, missing_api_keys)


def _mark_unused_revoked(session: Session, clock: Clock, keep: set[str]) -> list[str]:
    in_use = set(digests_in_use(session)) | set(api_key_digests_in_use(session)) | keep
    stmt = select(EncryptionKey).where(EncryptionKey.status == KeyStatus.ACTIVE)
    revoked = []
    for key in session.scalars(stmt):
        if key.digest not in in_use:
            key.status = KeyStatus.REVOKED
            key.revoked_at = clock.now()
            revoked.append(key.digest)
    return revoked


# Batched operations -------------------------------------------------------------------------


def _count(units: Units, where: ColumnElement[bool], model: Any = _T) -> int:
    with units() as uow:
        session = uow.session
        return int(session.scalar(select(func.count()).select_from(model).where(where)) or 0)


def _batches(
    units: Units,
    where: ColumnElement[bool],
    batch_size: int,
    handle: Callable[[Session, list[Any]], None],
    summary: KeyOpSummary,
    progress: Progress | None,
    model: Any = _T,
) -> None:
    """Walk the rows of ``model`` (triggers, or model configs) matching ``where`` in id
    order, one short transaction per batch. Progress is reported for triggers only (model
    configs are few)."""
    total = _count(units, where, model)
    if model is _T:
        summary.total = total
    else:
        summary.model_configs_total, progress = total, None
    if progress:
        progress(0, summary.total)
    done = 0
    last_id: uuid.UUID | None = None
    while True:
        with units() as uow:
            session = uow.session
            stmt = select(model).where(where).order_by(model.id).limit(batch_size)
            if last_id is not None:
                stmt = stmt.where(model.id > last_id)
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(of=model)
            rows = list(session.scalars(stmt))
            if not rows:
                break
            last_id = rows[-1].id
            handle(session, rows)
        summary.batches += 1
        done += len(rows)
        if progress:
            progress(min(done, max(done, summary.total)), max(done, summary.total))


def _needs_key(column: Any, digest: str) -> ColumnElement[bool]:
    return column.is_distinct_from(digest)


def _resealer(
    clock: Clock, keyring: Keyring, summary: KeyOpSummary, *, encrypt: bool
) -> Callable[[Session, list[AutomationTrigger]], None]:
    """The batch step of rotate (``encrypt``) and decrypt: re-store each row's secrets."""

    def handle(session: Session, rows: list[AutomationTrigger]) -> None:
        now = clock.now()
        updates: list[dict[str, Any]] = []
        for row in rows:
            try:
                values = _reseal(row, keyring, now, encrypt=encrypt, summary=summary)
            except CryptoError as exc:
                summary.failed[str(row.id)] = str(exc)
                continue
            updates.append({"id": row.id, **values})
        if updates:
            session.execute(update(_T), updates)
            summary.changed += len(updates)

    return handle


def rotate(
    units: Units,
    clock: Clock,
    keyring: Keyring,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> KeyOpSummary:
    """Re-encrypt every current and previous webhook secret, and every model config's API
    key, with the active key.

    Plaintext secrets get encrypted too; expired previous secrets are dropped. Rows already
    on the active key are not touched. Needs every key in use to be configured.
    """
    active = keyring.active_digest
    if active is None:
        raise ValueError("AUTOMATIONS_ENCRYPTION_KEYS is not set: there is no key to rotate to")
    with units() as uow:
        session = uow.session
        check_keys(session, keyring)
        record_key(session, clock, active)
    summary = KeyOpSummary("rotate", active_digest=active)
    where = or_(
        and_(_T.webhook_secret.is_not(None), _needs_key(_T.webhook_secret_key_id, active)),
        and_(
            _T.previous_webhook_secret.is_not(None),
            _needs_key(_T.previous_webhook_secret_key_id, active),
        ),
    )

    handle = _resealer(clock, keyring, summary, encrypt=True)
    _batches(units, where, batch_size, handle, summary, progress)
    api_keys = and_(_M.api_key.is_not(None), _needs_key(_M.api_key_key_id, active))
    resealer = api_key_resealer(keyring, summary, encrypt=True)
    _batches(units, api_keys, batch_size, resealer, summary, None, _M)
    with units() as uow:
        session = uow.session
        summary.digests = _mark_unused_revoked(session, clock, {active})
        _audit_operation(session, clock, summary)
    return summary


def decrypt_all(
    units: Units,
    clock: Clock,
    keyring: Keyring,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> KeyOpSummary:
    """Store every encrypted secret as plaintext (key id NULL); expired previous secrets
    are dropped instead. Afterwards remove AUTOMATIONS_ENCRYPTION_KEYS, or new secrets are
    encrypted again."""
    with units() as uow:
        session = uow.session
        check_keys(session, keyring)
    summary = KeyOpSummary("decrypt")
    where = or_(
        _T.webhook_secret_key_id.is_not(None), _T.previous_webhook_secret_key_id.is_not(None)
    )

    handle = _resealer(clock, keyring, summary, encrypt=False)
    _batches(units, where, batch_size, handle, summary, progress)
    resealer = api_key_resealer(keyring, summary, encrypt=False)
    _batches(units, _M.api_key_key_id.is_not(None), batch_size, resealer, summary, None, _M)
    with units() as uow:
        session = uow.session
        summary.digests = _mark_unused_revoked(session, clock, set())
        _audit_operation(session, clock, summary)
    return summary


def _audit_operation(session: Session, clock: Clock, summary: KeyOpSummary) -> None:
    """One audit entry per key operation (SPEC 11: key rotation is audited): what it did,
    by digest only (never a key). The operator's CLI has no user: the actor is null."""
    audit.record(
        session,
        clock,
        actor_id=None,
        organization_id=None,
        action=f"keys.{summary.operation}",
        resource_type="encryption_key",
        resource_id=None,
        details={
            "active_digest": summary.active_digest,
            "triggers_changed": summary.changed,
            "model_configs_changed": summary.model_configs_changed,
            "failed": len(summary.failed) + len(summary.failed_model_configs),
            "revoked_digests": list(summary.digests),
        },
    )


def _reseal(
    row: AutomationTrigger,
    keyring: Keyring,
    now: datetime,
    *,
    encrypt: bool,
    summary: KeyOpSummary,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    target = keyring.active_digest if encrypt else None

    def convert(stored: str, digest: str | None) -> tuple[str, str | None]:
        plain = keyring.decrypt(stored, digest)
        return keyring.encrypt(plain) if encrypt else (plain, None)

    if row.webhook_secret is not None and row.webhook_secret_key_id != target:
        stored, digest = convert(row.webhook_secret, row.webhook_secret_key_id)
        values["webhook_secret"], values["webhook_secret_key_id"] = stored, digest
        summary.secrets += 1
    if row.previous_webhook_secret is not None and row.previous_webhook_secret_key_id != target:
        expired = row.previous_secret_expires_at is None or row.previous_secret_expires_at <= now
        if expired:
            values.update(
                previous_webhook_secret=None,
                previous_webhook_secret_key_id=None,
                previous_secret_expires_at=None,
            )
            summary.expired_dropped += 1
        else:
            stored, digest = convert(
                row.previous_webhook_secret, row.previous_webhook_secret_key_id
            )
            values["previous_webhook_secret"] = stored
            values["previous_webhook_secret_key_id"] = digest
            summary.secrets += 1
    return values


def delete_secrets(
    units: Units,
    clock: Clock,
    keyring: Keyring,
    *,
    digest: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> KeyOpSummary:
    """Erase secrets encrypted with a lost key: by default every key in use that is not
    configured, or only ``digest``. See the module docstring for what happens to the
    triggers. The active key's secrets cannot be erased this way (their replacements would
    use it again); rotate to a new key first."""
    with units() as uow:
        session = uow.session
        in_use = digests_in_use(session) | api_key_digests_in_use(session)
    if digest is not None:
        if digest == keyring.active_digest:
            raise ValueError(
                f"key {digest} is the active key; put a new key first in "
                "AUTOMATIONS_ENCRYPTION_KEYS and run `automations keys rotate` instead"
            )
        targets = [digest]
    else:
        targets = sorted(d for d in in_use if d not in keyring.digests)
    summary = KeyOpSummary("delete", active_digest=keyring.active_digest, digests=targets)
    if not targets:
        if progress:
            progress(0, 0)
        return summary
    where = or_(
        _T.webhook_secret_key_id.in_(targets), _T.previous_webhook_secret_key_id.in_(targets)
    )

    def handle(session: Session, rows: list[AutomationTrigger]) -> None:
        now = clock.now()
        updates: list[dict[str, Any]] = []
        orgs = {
            aid: org_id
            for aid, org_id in session.execute(
                select(Automation.id, Automation.organization_id).where(
                    Automation.id.in_({r.automation_id for r in rows})
                )
            )
        }
        audits: list[dict[str, Any]] = []
        for row in rows:
            values: dict[str, Any] = {"id": row.id}
            erased: list[str] = []
            if row.webhook_secret_key_id in targets:
                stored, key_id = keyring.encrypt(generate_secret().hex)
                values.update(webhook_secret=stored, webhook_secret_key_id=key_id, updated_at=now)
                erased.append("current")
            if row.previous_webhook_secret_key_id in targets:
                values.update(
                    previous_webhook_secret=None,
                    previous_webhook_secret_key_id=None,
                    previous_secret_expires_at=None,
                )
                erased.append("previous")
            summary.secrets += len(erased)
            updates.append(values)
            audits.append(
                {
                    "id": uuid.uuid4(),
                    "created_at": now,
                    "actor_id": None,
                    "organization_id": orgs.get(row.automation_id),
                    "action": "trigger.secret_erased",
                    "resource_type": "automation_trigger",
                    "resource_id": row.id,
                    "details": {
                        "automation_id": str(row.automation_id),
                        "erased": erased,
                        "reason": "automations keys delete",
                    },
                }
            )
        session.execute(update(_T), updates)
        session.execute(insert(AuditLog), audits)
        summary.changed += len(updates)

    if keyring.active_digest is not None:
        with units() as uow:
            session = uow.session
            record_key(session, clock, keyring.active_digest)
    _batches(units, where, batch_size, handle, summary, progress)
    erase = api_key_eraser(clock, summary)
    _batches(units, _M.api_key_key_id.in_(targets), batch_size, erase, summary, None, _M)
    with units() as uow:
        session = uow.session
        now = clock.now()
        session.execute(
            update(EncryptionKey)
            .where(EncryptionKey.digest.in_(targets))
            .values(status=KeyStatus.REVOKED, revoked_at=now)
        )
    return summary
