"""Webhook secrets and request signature verification (SPEC 4.1).

Two schemes are accepted, chosen by the headers the request carries:

* GitHub: ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the raw body keyed by the UTF-8
  bytes of the 64-character hex secret.
* Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<b64> ...``,
  HMAC-SHA256 of ``"{id}.{timestamp}." + body`` keyed by the raw 32 secret bytes.

A failed check says why (:class:`Verdict`, SPEC 4.2.1), because a sender's operator fixes
each cause differently: ``missing`` (no signature headers: the sender has no secret
configured), ``malformed`` (a header that is not of its scheme's form: a proxy rewrote it, or
a home-made signer is wrong), ``timestamp_out_of_tolerance`` (a Standard Webhooks clock more
than 300 s off, or a replay) and ``invalid`` (well-formed, but no valid secret of the trigger
produced it: a wrong or rotated secret, or a changed body). Only ``invalid`` depends on the
secrets, so only an ``invalid`` verdict can change when the secret is regenerated (the
ingress re-checks exactly those against the database, SPEC 4.2.2).

Which scheme verified a request (:func:`scheme_of`) decides what the ingress may trust besides
the body: only Standard Webhooks signs a message id (``webhook-id``); a GitHub-style
signature covers the body alone, so its delivery headers are unauthenticated.

Nothing here logs secrets or puts them in exception messages.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
import secrets as _secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "GITHUB_HEADER",
    "STANDARD_ID_HEADER",
    "STANDARD_SIGNATURE_HEADER",
    "STANDARD_TIMESTAMP_HEADER",
    "Scheme",
    "SecretForms",
    "Verdict",
    "generate_secret",
    "scheme_of",
    "sign_github",
    "sign_standard",
    "standard_form",
    "verify",
]

SECRET_BYTES = 32
STANDARD_PREFIX = "whsec_"
GITHUB_HEADER = "x-hub-signature-256"
STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_GITHUB_VALUE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class SecretForms:
    hex: str
    standard: str

    def __repr__(self) -> str:
        return "SecretForms(hex=<redacted>, standard=<redacted>)"


class Verdict(enum.Enum):
    """The outcome of :func:`verify`; the values of the failures are SPEC 4.2.1's reasons."""

    OK = "ok"
    #: no signature header of either scheme (or a Standard Webhooks id/timestamp absent)
    MISSING = "missing"
    #: a signature header that is not of its scheme's form
    MALFORMED = "malformed"
    #: Standard Webhooks ``webhook-timestamp`` outside the tolerance window
    TIMESTAMP_OUT_OF_TOLERANCE = "timestamp_out_of_tolerance"
    #: well-formed, but made with none of the valid secrets (or over another body)
    INVALID = "invalid"


class Scheme(enum.Enum):
    """The signature scheme a request is checked by (:func:`scheme_of`)."""

    #: ``X-Hub-Signature-256``: signs the body only, so no delivery id is authenticated
    GITHUB = "github"
    #: Standard Webhooks: signs ``webhook-id``, the timestamp and the body
    STANDARD = "standard"


def scheme_of(headers: Mapping[str, str]) -> Scheme | None:
    """The scheme :func:`verify` checks ``headers`` (lower-case names) by: GitHub's header
    wins when both are present; None when the request carries neither."""
    if GITHUB_HEADER in headers:
        return Scheme.GITHUB
    if STANDARD_SIGNATURE_HEADER in headers:
        return Scheme.STANDARD
    return None


def generate_secret() -> SecretForms:
    raw = _secrets.token_bytes(SECRET_BYTES)
    return SecretForms(hex=raw.hex(), standard=_whsec(raw))


def _whsec(raw: bytes) -> str:
    return STANDARD_PREFIX + base64.b64encode(raw).decode("ascii")


def _raw_from_hex(hex_secret: str) -> bytes:
    if not _HEX64.fullmatch(hex_secret.lower()):
        raise ValueError("webhook secret must be 64 hex characters")
    return bytes.fromhex(hex_secret)


def standard_form(hex_secret: str) -> str:
    """The ``whsec_`` form of a stored 64-hex secret (same 32 bytes)."""
    return _whsec(_raw_from_hex(hex_secret))


def _standard_key(secret: str) -> bytes:
    if secret.startswith(STANDARD_PREFIX):
        try:
            return base64.b64decode(secret[len(STANDARD_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("whsec_ secret is not valid base64") from None
    return _raw_from_hex(secret)


def sign_github(secret_hex: str, body: bytes) -> str:
    """Full ``X-Hub-Signature-256`` header value: ``sha256=<lowercase hex>``."""
    digest = hmac.new(secret_hex.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return "sha256=" + digest


def _standard_mac(key: bytes, webhook_id: str, timestamp: int | str, body: bytes) -> bytes:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign_standard(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature`` entry ``v1,<base64>``; ``secret`` is the hex or ``whsec_`` form."""
    mac = _standard_mac(_standard_key(secret), webhook_id, timestamp, body)
    return "v1," + base64.b64encode(mac).decode("ascii")


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    now: float,
    tolerance: int = 300,
) -> Verdict:
    """Check a request signed with any of ``secrets`` (valid hex secrets, current first).

    GitHub's header wins when both schemes are present. GitHub always sends lowercase hex;
    uppercase hex is accepted too (the received hex is lower-cased before the constant-time
    comparison), but the ``sha256=`` prefix and the length of 64 hex digits are strict
    (anything else is :attr:`Verdict.MALFORMED`). Standard Webhooks requests are checked in
    the order: id and timestamp present (else ``MISSING``), timestamp an integer and at least
    one ``v1,<base64>`` entry (else ``MALFORMED``), timestamp within ``tolerance`` (else
    ``TIMESTAMP_OUT_OF_TOLERANCE``), then the MACs.
    """
    lowered = {str(name).lower(): value for name, value in headers.items()}
    scheme = scheme_of(lowered)
    if scheme is Scheme.GITHUB:
        return _verify_github(lowered[GITHUB_HEADER], body, secrets)
    if scheme is Scheme.STANDARD:
        return _verify_standard(lowered, body, secrets, now, tolerance)
    return Verdict.MISSING


def _verify_github(value: str, body: bytes, secrets: Sequence[str]) -> Verdict:
    match = _GITHUB_VALUE.fullmatch(value.strip())
    if match is None:
        return Verdict.MALFORMED
    received = match.group(1).lower().encode("ascii")
    ok = False
    for secret in secrets:
        expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        # No early exit: every secret is checked so timing doesn't reveal which one matched.
        ok |= hmac.compare_digest(expected.encode("ascii"), received)
    return Verdict.OK if ok else Verdict.INVALID


def _standard_signatures(value: str) -> list[bytes]:
    """The decoded ``v1`` entries of a ``webhook-signature`` header; other versions and
    entries that are not non-empty base64 are skipped."""
    received: list[bytes] = []
    for entry in value.split():
        version, sep, encoded = entry.partition(",")
        if not sep or version != "v1":
            continue
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if decoded:
            received.append(decoded)
    return received


def _verify_standard(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    now: float,
    tolerance: int,
) -> Verdict:
    webhook_id = headers.get(STANDARD_ID_HEADER, "").strip()
    raw_timestamp = headers.get(STANDARD_TIMESTAMP_HEADER, "").strip()
    if not webhook_id or not raw_timestamp:
        return Verdict.MISSING
    if not _TIMESTAMP.fullmatch(raw_timestamp):
        return Verdict.MALFORMED
    received = _standard_signatures(headers[STANDARD_SIGNATURE_HEADER])
    if not received:
        return Verdict.MALFORMED
    if abs(now - int(raw_timestamp)) > tolerance:
        return Verdict.TIMESTAMP_OUT_OF_TOLERANCE

    ok = False
    for secret in secrets:
        try:
            key = _raw_from_hex(secret)
        except ValueError:
            continue  # not a 64-hex secret: it can only ever verify GitHub-style requests
        expected = _standard_mac(key, webhook_id, raw_timestamp, body)
        for candidate in received:
            ok |= hmac.compare_digest(expected, candidate)
    return Verdict.OK if ok else Verdict.INVALID
