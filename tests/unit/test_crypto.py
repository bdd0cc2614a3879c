from __future__ import annotations

import base64
import hashlib

import pytest

from shared.infra.crypto import (
    PREFIX,
    CryptoError,
    Keyring,
    UnknownKeyError,
    key_digest,
    parse_keys,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))


def test_key_digest_is_stable_short_hex() -> None:
    expected = hashlib.sha256(b"chat-automations-key-id:" + KEY_A).hexdigest()[:16]
    assert key_digest(KEY_A) == expected
    assert len(key_digest(KEY_A)) == 16
    assert key_digest(KEY_A) != key_digest(KEY_B)


def test_disabled_keyring_passes_plaintext_through() -> None:
    ring = Keyring([])
    assert not ring.enabled
    assert ring.active_digest is None
    assert ring.digests == []
    assert ring.encrypt("s3cret") == ("s3cret", None)
    assert ring.decrypt("s3cret", None) == "s3cret"


def test_round_trip_and_format() -> None:
    ring = Keyring([KEY_A, KEY_B])
    assert ring.enabled
    assert ring.active_digest == key_digest(KEY_A)
    assert ring.digests == [key_digest(KEY_A), key_digest(KEY_B)]
    stored, digest = ring.encrypt("a" * 64)
    assert digest == key_digest(KEY_A)
    assert stored.startswith(PREFIX)
    raw = base64.b64decode(stored[len(PREFIX) :], validate=True)
    assert len(raw) == 12 + 64 + 16
    assert "a" * 64 not in stored
    assert ring.decrypt(stored, digest) == "a" * 64


def test_nonce_is_random() -> None:
    ring = Keyring([KEY_A])
    assert ring.encrypt("x")[0] != ring.encrypt("x")[0]


def test_plaintext_rows_still_readable_with_keys() -> None:
    assert Keyring([KEY_A]).decrypt("legacy-plain", None) == "legacy-plain"


def test_rotation_old_key_still_decrypts() -> None:
    stored, digest = Keyring([KEY_B]).encrypt("hello")
    rotated = Keyring([KEY_A, KEY_B])
    assert rotated.decrypt(stored, digest) == "hello"
    assert rotated.encrypt("hello")[1] == key_digest(KEY_A)


def test_unknown_key_names_digest() -> None:
    stored, digest = Keyring([KEY_B]).encrypt("hello")
    with pytest.raises(UnknownKeyError) as info:
        Keyring([KEY_A]).decrypt(stored, digest)
    assert str(info.value) == (
        f"webhook secret was encrypted with key {digest} "
        "which is not in AUTOMATIONS_ENCRYPTION_KEYS"
    )
    assert info.value.digest == digest
    with pytest.raises(UnknownKeyError):
        Keyring([]).decrypt(stored, digest)


def test_tampered_ciphertext_rejected() -> None:
    ring = Keyring([KEY_A])
    stored, digest = ring.encrypt("hello")
    raw = bytearray(base64.b64decode(stored[len(PREFIX) :]))
    raw[-1] ^= 0x01
    tampered = PREFIX + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(CryptoError) as info:
        ring.decrypt(tampered, digest)
    assert not isinstance(info.value, UnknownKeyError)


def test_wrong_key_with_forged_digest_rejected() -> None:
    stored, _ = Keyring([KEY_B]).encrypt("hello")
    with pytest.raises(CryptoError):
        Keyring([KEY_A]).decrypt(stored, key_digest(KEY_A))


def test_aad_is_bound() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = b"\x00" * 12
    sealed = AESGCM(KEY_A).encrypt(nonce, b"hello", b"other-purpose")
    stored = PREFIX + base64.b64encode(nonce + sealed).decode()
    with pytest.raises(CryptoError):
        Keyring([KEY_A]).decrypt(stored, key_digest(KEY_A))
    good = PREFIX + base64.b64encode(
        nonce + AESGCM(KEY_A).encrypt(nonce, b"hello", b"automations-webhook-secret")
    ).decode("ascii")
    assert Keyring([KEY_A]).decrypt(good, key_digest(KEY_A)) == "hello"


@pytest.mark.parametrize(
    "stored",
    ["not-prefixed", PREFIX + "!!!notbase64", PREFIX + base64.b64encode(b"short").decode()],
)
def test_malformed_stored_values(stored: str) -> None:
    with pytest.raises(CryptoError):
        Keyring([KEY_A]).decrypt(stored, key_digest(KEY_A))


@pytest.mark.parametrize("bad", [b"", b"x" * 16, b"x" * 33])
def test_keyring_rejects_wrong_key_sizes(bad: bytes) -> None:
    with pytest.raises(ValueError, match=r"key #2 is \d+ bytes; AES-256 needs exactly 32"):
        Keyring([KEY_A, bad])


def test_unicode_plaintext() -> None:
    ring = Keyring([KEY_A])
    stored, digest = ring.encrypt("sécret ✓")
    assert ring.decrypt(stored, digest) == "sécret ✓"


def test_repr_does_not_leak_keys() -> None:
    assert KEY_A.hex() not in repr(Keyring([KEY_A]))


# --- parse_keys -----------------------------------------------------------------------------


def test_parse_keys_standard_urlsafe_whitespace_and_empties() -> None:
    std = base64.b64encode(KEY_B).decode()
    urlsafe = base64.urlsafe_b64encode(b"\xff" * 32).decode()
    assert "-" in urlsafe or "_" in urlsafe
    unpadded = std.rstrip("=")
    assert parse_keys(f" {std} ,, {urlsafe},\n{unpadded} ,") == [KEY_B, b"\xff" * 32, KEY_B]


def test_parse_keys_empty() -> None:
    assert parse_keys("") == []
    assert parse_keys(" , ,") == []


def test_parse_keys_bad_base64_names_position_not_value() -> None:
    good = base64.b64encode(KEY_A).decode()
    with pytest.raises(ValueError) as info:
        parse_keys(f"{good},,not*base64!")
    assert str(info.value) == "key #2 is not valid base64"
    assert "not*base64" not in str(info.value)


def test_parse_keys_wrong_length() -> None:
    short = base64.b64encode(b"k" * 16).decode()
    with pytest.raises(ValueError) as info:
        parse_keys(short)
    assert str(info.value) == "key #1 decodes to 16 bytes; AES-256 needs exactly 32"
    assert short not in str(info.value)


def test_parse_keys_rejects_non_ascii() -> None:
    with pytest.raises(ValueError, match="key #1 is not valid base64"):
        parse_keys("ключ")
