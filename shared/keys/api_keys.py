"""Model configs' API keys at rest (SPEC 9): the batch steps with which the operations of
:mod:`shared.keys.operations` (rotate, decrypt, delete) cover them, next to webhook secrets."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from shared.infra.clock import Clock
from shared.infra.crypto import CryptoError, Keyring
from shared.models import AuditLog, ModelConfig

if TYPE_CHECKING:
    from shared.keys.operations import KeyOpSummary

__all__ = ["api_key_digests_in_use", "api_key_eraser", "api_key_resealer"]

_M = ModelConfig


def api_key_digests_in_use(session: Session) -> dict[str, int]:
    """digest → number of model configs whose API key is encrypted with it."""
    rows = session.execute(
        select(_M.api_key_key_id, func.count())
        .where(_M.api_key_key_id.is_not(None))
        .group_by(_M.api_key_key_id)
    ).all()
    return {str(digest): int(count) for digest, count in rows}


def api_key_resealer(
    keyring: Keyring, summary: KeyOpSummary, *, encrypt: bool
) -> Callable[[Session, list[ModelConfig]], None]:
    """The batch step of rotate (``encrypt``) and decrypt for model configs' API keys."""

    def handle(session: Session, rows: list[ModelConfig]) -> None:
        updates: list[dict[str, Any]] = []
        for row in rows:
            try:
                plain = keyring.decrypt(row.api_key or "", row.api_key_key_id)
            except CryptoError as exc:
                summary.failed_model_configs[str(row.id)] = str(exc)
                continue
            stored, digest = keyring.encrypt(plain) if encrypt else (plain, None)
            updates.append({"id": row.id, "api_key": stored, "api_key_key_id": digest})
        if updates:
            session.execute(update(_M), updates)
            summary.model_configs_changed += len(updates)
            summary.secrets += len(updates)

    return handle


def api_key_eraser(
    clock: Clock, summary: KeyOpSummary
) -> Callable[[Session, list[ModelConfig]], None]:
    """The batch step of :func:`delete_secrets` for model configs: the key is removed."""

    def handle(session: Session, rows: list[ModelConfig]) -> None:
        now = clock.now()
        session.execute(
            update(_M),
            [
                {"id": row.id, "api_key": None, "api_key_key_id": None, "updated_at": now}
                for row in rows
            ],
        )
        audits = [
            {
                "id": uuid.uuid4(),
                "created_at": now,
                "actor_id": None,
                "organization_id": row.organization_id,
                "action": "model_config.api_key_erased",
                "resource_type": "model_config",
                "resource_id": row.id,
                "details": {"name": row.name, "reason": "automations keys delete"},
            }
            for row in rows
        ]
        session.execute(insert(AuditLog), audits)
        summary.model_configs_changed += len(rows)
        summary.secrets += len(rows)

    return handle
