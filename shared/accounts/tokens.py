"""API tokens: only the SHA-256 of a token is stored; the token itself is shown once."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.accounts.users import AccountError
from shared.infra.clock import Clock
from shared.models import ApiKey, User

TOKEN_PREFIX = "ca_"
#: Scopes a token may carry; a token never exceeds its user's role.
SCOPES = ("automation:read", "automation:write", "automation:*", "chat:read", "*")


def hash_token(token: str) -> str:
    # Tokens are 256-bit random values, so a fast unsalted hash is not brute-forceable.
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, clock: Clock, email: str, scopes: list[str] | None = None, name: str = ""
) -> tuple[ApiKey, str]:
    """Returns the stored key and the plaintext token, which is never stored."""
    scopes = list(scopes or ["*"])
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise AccountError(f"unknown scope {bad[0]!r}; choose from {', '.join(SCOPES)}")
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise AccountError(
            f"no user with email {email!r}; create it with `automations users create`"
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        user_id=user.id,
        name=name,
        token_prefix=token[:10],
        token_hash=hash_token(token),
        scopes=scopes,
        created_at=clock.now(),
    )
    session.add(key)
    session.flush()
    return key, token
