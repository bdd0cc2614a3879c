from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator, Mapping

import pytest

from shared.triggers.signatures import (
    SecretForms,
    Verdict,
    generate_secret,
    sign_github,
    sign_standard,
    standard_form,
    verify,
)

SECRET = "0f" * 32
OTHER = "a1" * 32
BODY = b'{"action":"opened","n":1}'
NOW = 1_780_000_000


class CaseInsensitiveOnlyMapping(Mapping[str, str]):
    """A Mapping whose keys keep their original case (like a plain dict from a client)."""

    def __init__(self, data: dict[str, str]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def std_headers(secret: str = SECRET, ts: int = NOW, body: bytes = BODY) -> dict[str, str]:
    return {
        "webhook-id": "msg_123",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_standard(secret, "msg_123", ts, body),
    }


# --- secrets -----------------------------------------------------------------------------------


def test_generate_secret_forms() -> None:
    forms = generate_secret()
    assert isinstance(forms, SecretForms)
    assert len(forms.hex) == 64
    assert forms.hex == forms.hex.lower()
    raw = bytes.fromhex(forms.hex)
    assert forms.standard == "whsec_" + base64.b64encode(raw).decode()
    assert standard_form(forms.hex) == forms.standard
    assert generate_secret().hex != forms.hex
    assert forms.hex not in repr(forms)


@pytest.mark.parametrize("bad", ["", "abc", "zz" * 32, "0f" * 31])
def test_standard_form_rejects_bad_hex_without_echo(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        standard_form(bad)
    if bad:
        assert bad not in str(info.value)


# --- GitHub ------------------------------------------------------------------------------------


def test_sign_github_matches_reference() -> None:
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert sign_github(SECRET, BODY) == f"sha256={expected}"


def test_github_ok_with_any_header_case() -> None:
    sig = sign_github(SECRET, BODY)
    for name in ("X-Hub-Signature-256", "x-hub-signature-256", "X-HUB-SIGNATURE-256"):
        headers = CaseInsensitiveOnlyMapping({name: sig})
        assert verify(headers, BODY, [SECRET], NOW) is Verdict.OK


def test_github_previous_secret_accepted() -> None:
    sig = sign_github(OTHER, BODY)
    assert verify({"X-Hub-Signature-256": sig}, BODY, [SECRET, OTHER], NOW) is Verdict.OK
    assert verify({"X-Hub-Signature-256": sig}, BODY, [SECRET], NOW) is Verdict.INVALID
    assert verify({"X-Hub-Signature-256": sig}, BODY, [], NOW) is Verdict.INVALID


def test_github_uppercase_hex_accepted() -> None:
    sig = sign_github(SECRET, BODY)
    upper = "sha256=" + sig.removeprefix("sha256=").upper()
    assert verify({"X-Hub-Signature-256": upper}, BODY, [SECRET], NOW) is Verdict.OK


def test_github_wrong_body() -> None:
    sig = sign_github(SECRET, BODY)
    assert verify({"X-Hub-Signature-256": sig}, BODY + b" ", [SECRET], NOW) is Verdict.INVALID


def test_github_uses_utf8_of_hex_not_raw_bytes() -> None:
    raw_keyed = hmac.new(bytes.fromhex(SECRET), BODY, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": f"sha256={raw_keyed}"}
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.INVALID


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        "SHA256=" + "0" * 64,
        "sha256=" + "0" * 63,
        "sha256=" + "0" * 65,
        "sha256=" + "g" * 64,
        "0" * 64,
        "sha256 = " + "0" * 64,
    ],
)
def test_github_header_not_of_the_form_is_malformed(value: str) -> None:
    assert verify({"X-Hub-Signature-256": value}, BODY, [SECRET], NOW) is Verdict.MALFORMED
    # malformed whatever the secrets: the verdict does not depend on them
    assert verify({"X-Hub-Signature-256": value}, BODY, [], NOW) is Verdict.MALFORMED


def test_github_truncated_real_signature_malformed() -> None:
    sig = sign_github(SECRET, BODY)
    assert verify({"X-Hub-Signature-256": sig[:-1]}, BODY, [SECRET], NOW) is Verdict.MALFORMED


def test_missing_when_no_signature_headers() -> None:
    assert verify({}, BODY, [SECRET], NOW) is Verdict.MISSING
    assert verify({"X-Hub-Signature": "sha1=abc"}, BODY, [SECRET], NOW) is Verdict.MISSING
    only_id = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW)}
    assert verify(only_id, BODY, [SECRET], NOW) is Verdict.MISSING


def test_github_preferred_when_both_present() -> None:
    headers = std_headers()
    headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.INVALID
    headers["X-Hub-Signature-256"] = sign_github(SECRET, BODY)
    headers["webhook-signature"] = "v1,AAAA"
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.OK


# --- Standard Webhooks ----------------------------------------------------------------------


def test_sign_standard_matches_reference_and_both_secret_forms() -> None:
    raw = bytes.fromhex(SECRET)
    mac = hmac.new(raw, f"msg_123.{NOW}.".encode() + BODY, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    assert sign_standard(SECRET, "msg_123", NOW, BODY) == expected
    assert sign_standard(standard_form(SECRET), "msg_123", NOW, BODY) == expected


def test_standard_ok_case_insensitive_headers() -> None:
    headers = {k.title(): v for k, v in std_headers().items()}
    assert "Webhook-Signature" in headers
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.OK


def test_standard_previous_secret_and_multiple_signatures() -> None:
    sig_other = sign_standard(OTHER, "msg_123", NOW, BODY)
    headers = std_headers(secret=OTHER)
    assert verify(headers, BODY, [SECRET, OTHER], NOW) is Verdict.OK
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.INVALID
    headers["webhook-signature"] = f"v1,{base64.b64encode(b'x' * 32).decode()} {sig_other}"
    assert verify(headers, BODY, [OTHER], NOW) is Verdict.OK


def test_standard_ignores_other_versions() -> None:
    headers = std_headers()
    b64 = headers["webhook-signature"].removeprefix("v1,")
    headers["webhook-signature"] = f"v1a,{b64} v2,{b64}"
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.MALFORMED  # no v1 entry at all
    headers["webhook-signature"] = f"v1a,garbage v1,{b64}"
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.OK


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_standard_within_tolerance(offset: int) -> None:
    assert verify(std_headers(ts=NOW + offset), BODY, [SECRET], NOW) is Verdict.OK


@pytest.mark.parametrize("offset", [-301, 301, -86_400])
def test_standard_timestamp_out_of_tolerance(offset: int) -> None:
    verdict = verify(std_headers(ts=NOW + offset), BODY, [SECRET], NOW)
    assert verdict is Verdict.TIMESTAMP_OUT_OF_TOLERANCE
    assert verdict.value == "timestamp_out_of_tolerance"


def test_standard_custom_tolerance() -> None:
    headers = std_headers(ts=NOW - 60)
    assert verify(headers, BODY, [SECRET], NOW, tolerance=30) is Verdict.TIMESTAMP_OUT_OF_TOLERANCE


def test_standard_out_of_tolerance_with_a_wrong_secret_is_still_a_timestamp_failure() -> None:
    headers = std_headers(secret=OTHER, ts=NOW - 3600)
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.TIMESTAMP_OUT_OF_TOLERANCE


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp"])
def test_standard_requires_id_and_timestamp(missing: str) -> None:
    headers = std_headers()
    del headers[missing]
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.MISSING
    headers[missing] = "  "  # present but empty: nothing was sent either
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.MISSING


@pytest.mark.parametrize("ts", ["abc", "1.5", "-5", f"{NOW}.0", "1" * 13])
def test_standard_non_integer_timestamp_malformed(ts: str) -> None:
    headers = std_headers()
    headers["webhook-timestamp"] = ts
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.MALFORMED


def test_standard_timestamp_is_signed() -> None:
    headers = std_headers()
    headers["webhook-timestamp"] = str(NOW + 1)
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.INVALID


def test_standard_id_is_signed() -> None:
    headers = std_headers()
    headers["webhook-id"] = "msg_other"
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.INVALID


@pytest.mark.parametrize("value", ["", "v1,", "v1,!!!", "garbage", "v1", "v2,AAAA"])
def test_standard_signature_without_a_v1_entry_is_malformed(value: str) -> None:
    headers = std_headers()
    headers["webhook-signature"] = value
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.MALFORMED


def test_standard_well_formed_but_wrong_signature_is_invalid() -> None:
    headers = std_headers()
    headers["webhook-signature"] = "v1,AAAA v1,garbage!"  # one well-formed v1 entry
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.INVALID


def test_verdict_values_are_the_spec_reasons() -> None:
    failures = {v.value for v in Verdict if v is not Verdict.OK}
    assert failures == {"invalid", "missing", "timestamp_out_of_tolerance", "malformed"}


def test_standard_key_is_raw_bytes_not_hex_text() -> None:
    mac = hmac.new(SECRET.encode(), f"msg_123.{NOW}.".encode() + BODY, hashlib.sha256).digest()
    headers = std_headers()
    headers["webhook-signature"] = "v1," + base64.b64encode(mac).decode()
    assert verify(headers, BODY, [SECRET], NOW) is Verdict.INVALID


def test_uppercase_hex_secret_works_for_both_schemes() -> None:
    upper = SECRET.upper()
    assert verify(std_headers(), BODY, [upper], NOW) is Verdict.OK
    gh = {"X-Hub-Signature-256": sign_github(upper, BODY)}
    assert verify(gh, BODY, [upper], NOW) is Verdict.OK


def test_sign_standard_bad_secret_does_not_echo() -> None:
    with pytest.raises(ValueError) as info:
        sign_standard("not-a-secret-value", "id", NOW, BODY)
    assert "not-a-secret-value" not in str(info.value)
