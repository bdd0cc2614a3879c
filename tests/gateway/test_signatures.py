"""Signature edge cases (SPEC 4.1) through the ingress endpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.models import EventStatus
from shared.triggers.signatures import sign_github, sign_standard
from tests.gateway.conftest import SECRET, GatewayHarness, url_for

BODY = b'{"zen": "Keep it logically awesome."}'
OTHER = "1f" * 32


def _post_github(gw: GatewayHarness, tid: object, value: str, body: bytes = BODY) -> int:
    return gw.client.post(
        url_for(tid), data=body, headers={"X-Hub-Signature-256": value}
    ).status_code


@pytest.mark.parametrize(
    ("value", "status"),
    [
        (sign_github(SECRET, BODY), 202),
        ("sha256=" + sign_github(SECRET, BODY)[7:].upper(), 202),  # uppercase hex accepted
        ("sha1=" + sign_github(SECRET, BODY)[7:], 401),  # wrong prefix
        (sign_github(SECRET, BODY)[7:], 401),  # no prefix
        (sign_github(SECRET, BODY)[:-2], 401),  # truncated hex
        ("", 401),  # empty header
        (sign_github(SECRET, BODY + b" "), 401),  # signature over a different body
        (sign_github(OTHER, BODY), 401),  # another secret
    ],
    ids=["valid", "uppercase", "wrong-prefix", "no-prefix", "truncated", "empty", "body", "key"],
)
def test_github_signature_variants(gw: GatewayHarness, value: str, status: int) -> None:
    tid = gw.seed()
    assert _post_github(gw, tid, value) == status
    expected = EventStatus.PENDING if status == 202 else EventStatus.ERROR
    assert [e.status for e in gw.events()] == [expected]


def test_previous_secret_valid_until_it_expires(gw: GatewayHarness) -> None:
    expires = gw.clock.now() + timedelta(hours=1)
    tid = gw.seed(secret=OTHER, previous=SECRET, previous_expires_at=expires)
    assert _post_github(gw, tid, sign_github(SECRET, BODY)) == 202  # previous still valid
    assert _post_github(gw, tid, sign_github(OTHER, BODY)) == 202  # current valid
    gw.clock.set(expires)  # expiry is exclusive: at expires_at the old secret is dead
    assert _post_github(gw, tid, sign_github(SECRET, BODY)) == 401
    assert _post_github(gw, tid, sign_github(OTHER, BODY)) == 202


def test_expired_previous_secret_is_rejected(gw: GatewayHarness) -> None:
    tid = gw.seed(
        secret=OTHER, previous=SECRET, previous_expires_at=gw.clock.now() - timedelta(seconds=1)
    )
    assert _post_github(gw, tid, sign_github(SECRET, BODY)) == 401


def _standard_headers(secret: str, ts: int, wid: str = "msg_1", extra: str = "") -> dict[str, str]:
    sig = sign_standard(secret, wid, ts, BODY)
    return {
        "webhook-id": wid,
        "webhook-timestamp": str(ts),
        "webhook-signature": f"{extra}{sig}".strip(),
    }


def test_standard_webhooks_hex_and_whsec_forms(gw: GatewayHarness) -> None:
    from shared.triggers.signatures import standard_form

    tid = gw.seed()
    now = int(gw.clock.now().timestamp())
    for secret, wid in ((SECRET, "msg_hex"), (standard_form(SECRET), "msg_whsec")):
        resp = gw.client.post(url_for(tid), data=BODY, headers=_standard_headers(secret, now, wid))
        assert resp.status_code == 202
    assert {e.delivery_id for e in gw.events()} == {"msg_hex", "msg_whsec"}


@pytest.mark.parametrize("skew", [-301, 301])
def test_standard_webhooks_timestamp_outside_tolerance(gw: GatewayHarness, skew: int) -> None:
    tid = gw.seed()
    ts = int(gw.clock.now().timestamp()) + skew
    resp = gw.client.post(url_for(tid), data=BODY, headers=_standard_headers(SECRET, ts))
    assert resp.status_code == 401
    assert "tolerance" in resp.get_json()["message"]


@pytest.mark.parametrize("skew", [-300, 300])
def test_standard_webhooks_timestamp_at_the_tolerance_edge(gw: GatewayHarness, skew: int) -> None:
    tid = gw.seed()
    ts = int(gw.clock.now().timestamp()) + skew
    resp = gw.client.post(url_for(tid), data=BODY, headers=_standard_headers(SECRET, ts))
    assert resp.status_code == 202


def test_standard_webhooks_several_signatures_one_valid(gw: GatewayHarness) -> None:
    tid = gw.seed()
    now = int(gw.clock.now().timestamp())
    wrong = sign_standard(OTHER, "msg_1", now, BODY)
    headers = _standard_headers(SECRET, now, extra=f"v1,garbage== {wrong} v2,abc ")
    assert len(headers["webhook-signature"].split()) == 4
    assert gw.client.post(url_for(tid), data=BODY, headers=headers).status_code == 202
    only_wrong = dict(headers, **{"webhook-signature": f"{wrong} v1,AAAA"})
    assert gw.client.post(url_for(tid), data=BODY, headers=only_wrong).status_code == 401


def test_standard_signature_over_another_id_is_rejected(gw: GatewayHarness) -> None:
    tid = gw.seed()
    now = int(gw.clock.now().timestamp())
    headers = _standard_headers(SECRET, now, "msg_a")
    headers["webhook-id"] = "msg_b"
    assert gw.client.post(url_for(tid), data=BODY, headers=headers).status_code == 401
