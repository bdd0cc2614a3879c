"""Reading webhook secrets at rest (SPEC 2, 4.1): decrypt with the keyring, plaintext still works.

Nothing here logs a secret or puts one in an exception message; errors name the key digest only.
"""

from __future__ import annotations

from datetime import datetime

from shared.infra.crypto import CryptoError, Keyring, UnknownKeyError

__all__ = ["CryptoError", "UnknownKeyError", "read_secret", "valid_secrets"]


def read_secret(keyring: Keyring, stored: str, key_id: str | None) -> str:
    """The plaintext secret. ``key_id`` None means the row is stored unencrypted.

    Raises :class:`shared.infra.crypto.UnknownKeyError` (its message names the key digest) when the
    key that encrypted the row is not configured, :class:`CryptoError` when it is corrupt.
    """
    return keyring.decrypt(stored, key_id)


def valid_secrets(
    current: str | None,
    previous: str | None,
    previous_expires_at: datetime | None,
    now: datetime,
) -> tuple[str, ...]:
    """Secrets a request may be signed with at ``now``: the current one, then the previous
    one while its rotation grace period has not expired (``expires_at > now``)."""
    out: list[str] = []
    if current:
        out.append(current)
    if previous and previous_expires_at is not None and previous_expires_at > now:
        out.append(previous)
    return tuple(out)
