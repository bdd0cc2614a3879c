"""Encryption of secrets at rest (AES-256-GCM) with a rotatable keyring.

Stored values look like ``enc:v1:<base64(nonce12 || ciphertext || tag16)>`` and are stored
next to the digest of the key that encrypted them, so old rows stay readable after a new key
is put in front of ``AUTOMATIONS_ENCRYPTION_KEYS``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "AAD",
    "KEY_SIZE",
    "PREFIX",
    "UNENCRYPTED_WARNING",
    "CryptoError",
    "Keyring",
    "UnknownKeyError",
    "key_digest",
    "parse_keys",
    "warn_unencrypted_secrets",
]

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
PREFIX = "enc:v1:"
AAD = b"automations-webhook-secret"
_DIGEST_DOMAIN = b"chat-automations-key-id:"
UNENCRYPTED_WARNING = (
    "AUTOMATIONS_ENCRYPTION_KEYS is not set: webhook secrets are stored unencrypted"
)

log = logging.getLogger(__name__)
_warned = False
_warned_lock = threading.Lock()


def warn_unencrypted_secrets() -> bool:
    """Log :data:`UNENCRYPTED_WARNING` once per process; True when this call logged it.

    Called where it matters: when the gateway starts (``on_starting``, before its workers are
    forked, so they inherit that it was said) and when a secret is about to be stored in
    plain text (:meth:`Keyring.encrypt` without keys), never merely for loading settings.
    """
    global _warned
    with _warned_lock:
        if _warned:
            return False
        _warned = True
    log.warning(UNENCRYPTED_WARNING)
    return True


class CryptoError(Exception):
    """Decryption failed or a stored value is malformed. Messages never contain key material."""


class UnknownKeyError(CryptoError):
    def __init__(self, digest: str) -> None:
        self.digest = digest
        super().__init__(
            f"webhook secret was encrypted with key {digest} "
            "which is not in AUTOMATIONS_ENCRYPTION_KEYS"
        )


def key_digest(key: bytes) -> str:
    """Stable, non-secret short id of a key (safe to store and log)."""
    return hashlib.sha256(_DIGEST_DOMAIN + key).hexdigest()[:16]


class Keyring:
    """Ordered AES-256 keys; the first one encrypts, all of them decrypt."""

    def __init__(self, keys: list[bytes]) -> None:
        for index, key in enumerate(keys, start=1):
            if not isinstance(key, bytes) or len(key) != KEY_SIZE:
                size = len(key) if isinstance(key, bytes) else type(key).__name__
                raise ValueError(f"key #{index} is {size} bytes; AES-256 needs exactly {KEY_SIZE}")
        self._keys: dict[str, bytes] = {}
        for key in keys:
            self._keys.setdefault(key_digest(key), key)
        self.digests: list[str] = list(self._keys)
        self.active_digest: str | None = self.digests[0] if self.digests else None
        self.enabled: bool = bool(self.digests)

    def __repr__(self) -> str:
        return f"Keyring(digests={self.digests!r})"

    def encrypt(self, plaintext: str) -> tuple[str, str | None]:
        """Return ``(stored_value, key_digest)``; disabled keyring: ``(plaintext, None)``."""
        if self.active_digest is None:
            warn_unencrypted_secrets()
            return plaintext, None
        nonce = os.urandom(NONCE_SIZE)
        sealed = AESGCM(self._keys[self.active_digest]).encrypt(
            nonce, plaintext.encode("utf-8"), AAD
        )
        return PREFIX + base64.b64encode(nonce + sealed).decode("ascii"), self.active_digest

    def decrypt(self, stored: str, digest: str | None) -> str:
        """Inverse of :meth:`encrypt`; ``digest=None`` means ``stored`` is plaintext."""
        if digest is None:
            return stored
        key = self._keys.get(digest)
        if key is None:
            raise UnknownKeyError(digest)
        if not stored.startswith(PREFIX):
            raise CryptoError(f"stored webhook secret is not in {PREFIX} format")
        try:
            raw = base64.b64decode(stored[len(PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError("stored webhook secret is not valid base64") from None
        if len(raw) < NONCE_SIZE + TAG_SIZE:
            raise CryptoError("stored webhook secret is truncated")
        try:
            plain = AESGCM(key).decrypt(raw[:NONCE_SIZE], raw[NONCE_SIZE:], AAD)
        except InvalidTag:
            raise CryptoError(
                f"stored webhook secret failed authentication with key {digest} "
                "(tampered or corrupted)"
            ) from None
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise CryptoError("decrypted webhook secret is not valid UTF-8") from None


def _b64decode_key(item: str) -> bytes:
    """Standard or URL-safe base64, padding optional."""
    padded = item + "=" * (-len(item) % 4)
    if "-" in padded or "_" in padded:
        if "+" in padded or "/" in padded:
            raise ValueError("mixed base64 alphabets")
        padded = padded.replace("-", "+").replace("_", "/")
    return base64.b64decode(padded, validate=True)


def parse_keys(value: str) -> list[bytes]:
    """Parse ``AUTOMATIONS_ENCRYPTION_KEYS``: comma-separated base64 32-byte keys.

    Keys are numbered 1-based among the non-empty items; errors never echo key material.
    """
    keys: list[bytes] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        index = len(keys) + 1
        try:
            key = _b64decode_key(item)
        except (binascii.Error, ValueError):
            raise ValueError(f"key #{index} is not valid base64") from None
        if len(key) != KEY_SIZE:
            raise ValueError(
                f"key #{index} decodes to {len(key)} bytes; AES-256 needs exactly {KEY_SIZE}"
            )
        keys.append(key)
    return keys
