"""API tokens: only the SHA-256 of a token is stored; the token itself is shown once.

Listing and revoking (SPEC 8a): a caller sees and revokes only their own tokens; ``principal``
``None`` is the operator with database access (the CLI), who sees and revokes every token.
Revocation takes effect on the next request of every process: :func:`~shared.accounts.authz.
authenticate` reads the key from the database on each request (no cache).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import audit
from shared.accounts.users import AccountError
from shared.errors import Forbidden, NotFound
from shared.infra.clock import Clock
from shared.infra.db.pagination import Page, paginate
from shared.models import ApiKey, User

if TYPE_CHECKING:
    from shared.accounts.authz import Principal

__all__ = [
    "FULL_SCOPE",
    "SCOPES",
    "TOKEN_PREFIX",
    "create_token",
    "hash_token",
    "list_tokens",
    "revoke_token",
]

TOKEN_PREFIX = "ca_"
#: Scopes a token may carry; a token never exceeds its user's role.
SCOPES = ("automation:read", "automation:write", "automation:*", "chat:read", "chat:write", "*")
#: the scope that may manage the user's other tokens and, for site-admins, users
FULL_SCOPE = "*"


def hash_token(token: str) -> str:
    # Tokens are 256-bit random values, so a fast unsalted hash is not brute-forceable.
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session,
    clock: Clock,
    email: str,
    scopes: list[str] | None = None,
    name: str = "",
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Returns the stored key and the plaintext token, which is never stored."""
    scopes = list(scopes or ["*"])
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise AccountError(f"unknown scope {bad[0]!r}; choose from {', '.join(SCOPES)}")
    now = clock.now()
    if expires_at is not None and expires_at <= now:
        raise AccountError(f"expiry {expires_at.isoformat()} is not in the future")
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise AccountError(
            f"no user with email {email!r}; create it with `automations users create`"
        )
    if not user.active:
        raise AccountError(
            f"user {user.email} is deactivated; activate it with `automations users activate`"
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        user_id=user.id,
        name=name,
        token_prefix=token[:10],
        token_hash=hash_token(token),
        scopes=scopes,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(key)
    session.flush()
    return key, token


def list_tokens(
    session: Session,
    *,
    user_id: uuid.UUID | None,
    include_revoked: bool = False,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[ApiKey]:
    """Tokens of ``user_id`` (``None``: every user's), newest first; revoked ones only when
    ``include_revoked``. Expired tokens are listed (their ``expires_at`` says so)."""
    stmt = select(ApiKey)
    if user_id is not None:
        stmt = stmt.where(ApiKey.user_id == user_id)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return paginate(
        session,
        stmt,
        kind="tokens",
        sort_col=ApiKey.created_at,
        id_col=ApiKey.id,
        limit=limit,
        cursor=cursor,
    )


def revoke_token(
    session: Session, clock: Clock, principal: Principal | None, token_id: uuid.UUID
) -> ApiKey:
    """Revoke a token (idempotent: an already revoked token is left as it is).

    A caller may revoke the token they authenticated with (any scope) and, with a ``*``
    token, their other tokens; anyone else's token is "not found". ``principal`` ``None``:
    the operator, who may revoke any token."""
    key = session.get(ApiKey, token_id)
    if key is None or (principal is not None and key.user_id != principal.user_id):
        raise NotFound(f"token {token_id} not found", field="token_id")
    if (
        principal is not None
        and key.id != principal.api_key_id
        and FULL_SCOPE not in principal.scopes
    ):
        raise Forbidden(
            "revoking another token needs a token with the '*' scope "
            f"(this one has: {', '.join(sorted(principal.scopes))}); "
            "a token may always revoke itself"
        )
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        audit.record(
            session,
            clock,
            actor_id=principal.user_id if principal is not None else None,
            organization_id=None,
            action="token.revoke",
            resource_type="api_key",
            resource_id=key.id,
            details={"user_id": str(key.user_id), "name": key.name, "prefix": key.token_prefix},
        )
        session.flush()
    return key
