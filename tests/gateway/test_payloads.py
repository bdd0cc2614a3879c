"""Bodies: non-JSON wrapping, invalid UTF-8, scalars, truncation (SPEC 4.3, 4.4)."""

from __future__ import annotations

import json

import orjson

from shared.events.payload import prepare_payload
from tests.gateway.conftest import GatewayFactory, GatewayHarness


def test_non_json_body_is_wrapped(gw: GatewayHarness) -> None:
    tid = gw.seed()
    assert gw.post(tid, b"action=opened&number=1").status_code == 202
    [event] = gw.events()
    assert event.payload == {
        "_raw_body": "action=opened&number=1",
        "_content_note": "not valid JSON",
    }


def test_invalid_utf8_is_wrapped_with_replacement_characters(gw: GatewayHarness) -> None:
    tid = gw.seed()
    body = b'{"name": "caf\xe9 \xff"}'
    assert gw.post(tid, body).status_code == 202
    [event] = gw.events()
    assert event.payload["_content_note"] == "not valid JSON"
    assert event.payload["_raw_body"] == '{"name": "caf\ufffd \ufffd"}'


def test_json_scalars_arrays_nul_and_big_numbers_are_stored_as_json(gw: GatewayHarness) -> None:
    tid = gw.seed()
    bodies = [
        b"42",
        b'"text"',
        b'[1, 2, {"a": null}]',
        b"null",
        b'{"s": "a\\u0000b"}',
        b'{"big": 123456789012345678901234567890}',
        b"\x00\x01binary",
    ]
    for body in bodies:
        assert gw.post(tid, body).status_code == 202, body
    payloads = [e.payload for e in gw.events()]
    assert payloads[:4] == [42, "text", [1, 2, {"a": None}], None]
    assert payloads[4] == {"s": "a\ufffdb"}  # jsonb cannot hold NUL
    # a number beyond 64 bits is JSON and kept exact (orjson would round it to a float)
    assert payloads[5] == {"big": 123456789012345678901234567890}
    assert isinstance(payloads[5]["big"], int)
    assert payloads[6]["_content_note"] == "not valid JSON"
    assert "\x00" not in payloads[6]["_raw_body"]


def test_stored_copy_is_capped_and_the_whole_body_kept_while_pending(
    make_gateway: GatewayFactory,
) -> None:
    gw = make_gateway(stored_payload_max_bytes=1024)
    tid = gw.seed()
    doc = {"items": ["x" * 100] * 20, "action": "opened"}
    body = json.dumps(doc).encode()
    assert len(body) > 1024
    assert gw.post(tid, body).status_code == 202
    small = b'{"ok": true}'
    assert gw.post(tid, small).status_code == 202
    big, little = gw.events()
    assert big.payload == {"_truncated": True, "_original_size": len(body)}
    assert big.pending_payload == doc
    assert little.payload == {"ok": True} and little.pending_payload is None


def test_prepare_payload_boundaries() -> None:
    at = b'"' + b"a" * 254 + b'"'
    assert len(at) == 256
    assert prepare_payload(at, 256).truncated is False
    over = prepare_payload(at + b" ", 256)
    assert over.truncated and over.stored == {"_truncated": True, "_original_size": 257}
    assert over.pending == "a" * 254
    raw = prepare_payload(b"\xff" * 300, 256)
    assert raw.stored == {"_truncated": True, "_original_size": 300}
    assert raw.pending["_content_note"] == "not valid JSON"
    assert prepare_payload(b"NaN", 256).is_json is False
    assert orjson.dumps(prepare_payload(b"", 256).stored) == (
        b'{"_raw_body":"","_content_note":"not valid JSON"}'
    )
