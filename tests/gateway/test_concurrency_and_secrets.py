"""Concurrent duplicates, encrypted secrets, and the trigger cache's TTL."""

from __future__ import annotations

import base64
import logging
import threading
from datetime import timedelta

import pytest

from shared.infra.crypto import Keyring, key_digest
from tests.gateway.conftest import SECRET, GatewayFactory, GatewayHarness

THREADS = 16


def test_concurrent_duplicates_produce_one_event(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(db_pool_size=THREADS, db_max_overflow=4)
    tid = gw.seed()
    gw.post(tid, b"{}")  # warm the trigger cache: all threads race on the insert itself
    barrier = threading.Barrier(THREADS)
    results: list[tuple[int, dict[str, object]]] = []
    lock = threading.Lock()

    def send() -> None:
        client = gw.app.test_client()
        barrier.wait()
        resp = gw.post(tid, b'{"race": true}', delivery_id="the-one", client=client)
        with lock:
            results.append((resp.status_code, resp.get_json()))

    threads = [threading.Thread(target=send) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == THREADS
    assert {status for status, _ in results} == {202}
    ids = {body["event_id"] for _, body in results}
    assert len(ids) == 1
    assert sum(1 for _, body in results if not body.get("duplicate")) == 1
    assert [e.delivery_id for e in gw.events()].count("the-one") == 1


def _key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


def test_encrypted_and_plaintext_secrets_both_work(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(encryption_keys=f"{_key(2)},{_key(1)}")
    old_key = Keyring([bytes([1]) * 32])  # a rotated-out key still decrypts
    encrypted = gw.seed(encrypt_with=old_key)
    plaintext = gw.seed()
    assert gw.post(encrypted).status_code == 202
    assert gw.post(plaintext).status_code == 202
    assert gw.post(encrypted, secret="0" * 64).status_code == 401


def test_secret_encrypted_with_an_unknown_key_is_503_and_logged_by_digest(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    gw = make_gateway(encryption_keys=_key(2))
    lost = bytes([9]) * 32
    tid = gw.seed(encrypt_with=Keyring([lost]))
    with caplog.at_level(logging.ERROR):
        resp = gw.post(tid)
    assert resp.status_code == 503
    assert resp.get_json()["code"] == "unavailable"
    assert key_digest(lost) in caplog.text
    assert SECRET not in caplog.text
    assert gw.events() == []


def test_regenerated_or_deleted_secret_stops_working_within_the_cache_ttl(
    make_gateway: GatewayFactory,
) -> None:
    gw = make_gateway(trigger_cache_seconds=2)
    tid = gw.seed()
    assert gw.post(tid).status_code == 202
    gw.update_trigger(tid, webhook_secret="1f" * 32)
    assert gw.post(tid).status_code == 202  # cached for up to the TTL
    gw.clock.advance(seconds=2)
    assert gw.post(tid).status_code == 401
    assert gw.post(tid, secret="1f" * 32).status_code == 202
    # deleting the automation: its trigger goes 404 after the TTL
    from sqlalchemy import delete

    from shared.models import AutomationTrigger

    with gw.engine.begin() as conn:
        conn.execute(delete(AutomationTrigger).where(AutomationTrigger.id == tid))
    gw.clock.advance(seconds=2.5)
    assert gw.post(tid, secret="1f" * 32).status_code == 404


def test_previous_secret_expiry_applies_even_while_cached(gw: GatewayHarness) -> None:
    expires = gw.clock.now() + timedelta(milliseconds=500)
    tid = gw.seed(secret="1f" * 32, previous=SECRET, previous_expires_at=expires)
    assert gw.post(tid).status_code == 202
    gw.clock.advance(seconds=0.5)  # still inside the cache TTL, but past the expiry
    assert gw.post(tid).status_code == 401
