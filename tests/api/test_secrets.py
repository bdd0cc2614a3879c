"""Secrets at rest: encrypted in the database, never in responses or logs; key rotation,
decryption and deletion (batched, idempotent, 10,000 triggers); the startup check."""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from shared import keys
from shared.infra.clock import FrozenClock
from shared.infra.config import Settings
from shared.infra.crypto import Keyring, parse_keys
from shared.infra.db.engine import make_engine
from shared.infra.db.uow import Database, Units
from shared.models import (
    AuditLog,
    AutomationTrigger,
    EncryptionKey,
    KeyStatus,
    ModelConfig,
    TriggerType,
)
from shared.triggers.signatures import generate_secret
from tests import factories as f
from tests.api.conftest import KEY1, KEY2, Api, Fixture

RING1 = Keyring(parse_keys(KEY1))
RING21 = Keyring(parse_keys(f"{KEY2},{KEY1}"))
RING2 = Keyring(parse_keys(KEY2))
LOST = Keyring([bytes(range(200, 232))])


def factory_for(session: Session) -> Units:
    """Units of work as savepoints in the test's transaction."""
    return Database(session.connection()).unit


def test_secrets_are_encrypted_and_never_listed_or_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auto = api.create_automation()
    t = api.create_trigger(auto["id"])
    path = f"/automations/{auto['id']}/triggers/{t['id']}/regenerate-secret"
    new = api.post(path, {"previous_valid_for_seconds": 60}).get_json()
    secrets = [
        t["webhook_secret"],
        t["webhook_secret_standard"],
        new["webhook_secret"],
        new["webhook_secret_standard"],
    ]
    row = api.session.execute(
        text(
            "SELECT webhook_secret, webhook_secret_key_id, previous_webhook_secret "
            "FROM automation_triggers WHERE id = :id"
        ),
        {"id": uuid.UUID(t["id"])},
    ).one()
    assert row[0].startswith("enc:v1:") and row[2].startswith("enc:v1:")
    assert row[1] == RING1.active_digest
    dump = " ".join(str(v) for v in row)
    for s in secrets:
        assert s not in dump
        assert s[:16] not in dump
    digests = api.session.scalars(select(EncryptionKey.digest)).all()
    assert digests == [RING1.active_digest]
    listing = api.get(f"/automations/{auto['id']}/triggers").get_data(as_text=True)
    listing += api.get(f"/automations/{auto['id']}").get_data(as_text=True)
    listing += api.get(f"/automations/{auto['id']}/triggers/{t['id']}").get_data(as_text=True)
    audit = " ".join(str(a.details) for a in api.session.scalars(select(AuditLog)))
    for s in secrets:
        assert s not in listing
        assert s not in caplog.text
        assert s not in audit


def test_plaintext_when_no_keys(api: Api, pg_session: Session, clock: FrozenClock) -> None:
    from shared.accounts.authz import load_principal
    from shared.triggers.service import NewTrigger, create_trigger

    principal = load_principal(pg_session, api.world.owner.user)
    auto = api.create_automation()
    created = create_trigger(
        pg_session,
        clock,
        Keyring([]),
        principal,
        uuid.UUID(auto["id"]),
        NewTrigger(type=TriggerType.WEBHOOK),
    )
    assert created.secret is not None
    assert created.trigger.webhook_secret == created.secret.hex
    assert created.trigger.webhook_secret_key_id is None


def _bulk_triggers(
    session: Session, clock: FrozenClock, n: int, ring: Keyring, *, previous: bool = False
) -> dict[uuid.UUID, str]:
    """``n`` webhook triggers with secrets encrypted by ``ring`` (Core executemany: fast)."""
    auto = f.automation(session, clock)
    now = clock.now()
    plain: dict[uuid.UUID, str] = {}
    rows: list[dict[str, Any]] = []
    for _ in range(n):
        tid = uuid.uuid4()
        secret = generate_secret().hex
        plain[tid] = secret
        stored, digest = ring.encrypt(secret)
        row = {
            "id": tid,
            "automation_id": auto.id,
            "type": TriggerType.WEBHOOK,
            "webhook_secret": stored,
            "webhook_secret_key_id": digest,
            "filter": {},
            "label_paths": {},
            "created_at": now,
            "updated_at": now,
        }
        if previous:
            prev, prev_digest = ring.encrypt(secret[::-1])
            row.update(
                previous_webhook_secret=prev,
                previous_webhook_secret_key_id=prev_digest,
                previous_secret_expires_at=now.replace(year=now.year + 1),
            )
        rows.append(row)
    session.execute(insert(AutomationTrigger), rows)
    if ring.active_digest:
        keys.record_key(session, clock, ring.active_digest)
    session.flush()
    return plain


def _stored(session: Session) -> list[AutomationTrigger]:
    session.expire_all()
    return list(session.scalars(select(AutomationTrigger)))


@pytest.mark.slow
def test_rotate_10000_triggers(pg_session: Session, clock: FrozenClock) -> None:
    plain = _bulk_triggers(pg_session, clock, 10_000, RING1)
    calls: list[tuple[int, int]] = []
    summary = keys.rotate(
        factory_for(pg_session),
        clock,
        RING21,
        batch_size=1000,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert summary.total == summary.changed == summary.secrets == 10_000
    assert summary.batches == 10 and not summary.failed
    assert calls[0] == (0, 10_000) and calls[-1] == (10_000, 10_000) and len(calls) == 11
    rows = _stored(pg_session)
    assert {r.webhook_secret_key_id for r in rows} == {RING2.active_digest}
    for row in rows[::97]:
        assert RING2.decrypt(row.webhook_secret or "", row.webhook_secret_key_id) == plain[row.id]
    key_rows = pg_session.execute(select(EncryptionKey.digest, EncryptionKey.status)).all()
    statuses = {digest: status for digest, status in key_rows}
    assert statuses == {
        RING2.active_digest: KeyStatus.ACTIVE,
        RING1.active_digest: KeyStatus.REVOKED,
    }
    # idempotent: nothing left to do
    again = keys.rotate(factory_for(pg_session), clock, RING21, batch_size=1000)
    assert again.total == again.changed == 0


def test_rotate_previous_and_plaintext_and_expired(pg_session: Session, clock: FrozenClock) -> None:
    plain = _bulk_triggers(pg_session, clock, 5, RING1, previous=True)
    plain.update(_bulk_triggers(pg_session, clock, 3, Keyring([])))
    expired = _bulk_triggers(pg_session, clock, 1, RING1, previous=True)
    tid = next(iter(expired))
    row = pg_session.get(AutomationTrigger, tid)
    assert row is not None
    row.previous_secret_expires_at = clock.now()
    pg_session.flush()
    summary = keys.rotate(factory_for(pg_session), clock, RING21, batch_size=2)
    assert summary.changed == 9 and summary.expired_dropped == 1
    assert summary.secrets == 5 * 2 + 3 + 1
    for r in _stored(pg_session):
        assert r.webhook_secret_key_id == RING2.active_digest
        secret = RING21.decrypt(r.webhook_secret or "", r.webhook_secret_key_id)
        assert secret == (plain.get(r.id) or expired[r.id])
        if r.id == tid:
            assert r.previous_webhook_secret is None and r.previous_secret_expires_at is None
        elif r.previous_webhook_secret is not None:
            assert r.previous_webhook_secret_key_id == RING2.active_digest
            prev = RING2.decrypt(r.previous_webhook_secret, r.previous_webhook_secret_key_id)
            assert prev == plain[r.id][::-1]


def test_rotate_and_decrypt_are_audited_by_digest_only(
    pg_session: Session, clock: FrozenClock
) -> None:
    """SPEC 11: key rotation is in the audit log (no actor: an operator's CLI), naming the
    digests and counts, never a key or a secret."""
    _bulk_triggers(pg_session, clock, 3, RING1)
    keys.rotate(factory_for(pg_session), clock, RING21, batch_size=2)
    keys.decrypt_all(factory_for(pg_session), clock, RING21)
    entries = pg_session.scalars(
        select(AuditLog).where(AuditLog.action.like("keys.%")).order_by(AuditLog.created_at)
    ).all()
    assert [e.action for e in entries] == ["keys.rotate", "keys.decrypt"]
    rotated = entries[0]
    assert rotated.actor_id is None and rotated.resource_type == "encryption_key"
    assert rotated.details["active_digest"] == RING2.active_digest
    assert rotated.details["triggers_changed"] == 3
    text_of_entries = repr([e.details for e in entries])
    assert KEY1 not in text_of_entries and KEY2 not in text_of_entries


def test_rotate_refuses_unknown_keys_and_missing_keys(
    pg_session: Session, clock: FrozenClock
) -> None:
    _bulk_triggers(pg_session, clock, 2, LOST)
    with pytest.raises(keys.KeyCheckError, match=str(LOST.active_digest)):
        keys.rotate(factory_for(pg_session), clock, RING1)
    with pytest.raises(ValueError, match="not set"):
        keys.rotate(factory_for(pg_session), clock, Keyring([]))


def test_decrypt_all(pg_session: Session, clock: FrozenClock) -> None:
    plain = _bulk_triggers(pg_session, clock, 7, RING1, previous=True)
    summary = keys.decrypt_all(factory_for(pg_session), clock, RING1, batch_size=3)
    assert summary.changed == 7 and summary.batches == 3
    for r in _stored(pg_session):
        assert r.webhook_secret == plain[r.id] and r.webhook_secret_key_id is None
        assert r.previous_webhook_secret == plain[r.id][::-1]
        assert r.previous_webhook_secret_key_id is None
    assert pg_session.scalar(select(EncryptionKey.status)) == KeyStatus.REVOKED
    assert keys.decrypt_all(factory_for(pg_session), clock, RING1).changed == 0


def test_delete_lost_key(pg_session: Session, clock: FrozenClock) -> None:
    lost = _bulk_triggers(pg_session, clock, 4, LOST, previous=True)
    kept = _bulk_triggers(pg_session, clock, 2, RING1)
    with pytest.raises(keys.KeyCheckError) as info:
        keys.check_keys(pg_session, RING1)
    assert str(LOST.active_digest) in str(info.value)
    assert "4 trigger(s)" in str(info.value)
    with pytest.raises(ValueError, match="active key"):
        keys.delete_secrets(factory_for(pg_session), clock, RING1, digest=RING1.active_digest)
    summary = keys.delete_secrets(factory_for(pg_session), clock, RING1, batch_size=3)
    assert summary.changed == 4 and summary.secrets == 8
    assert summary.digests == [LOST.active_digest]
    for r in _stored(pg_session):
        assert r.type is TriggerType.WEBHOOK and r.webhook_secret is not None
        assert r.webhook_secret_key_id == RING1.active_digest
        secret = RING1.decrypt(r.webhook_secret, r.webhook_secret_key_id)
        if r.id in lost:
            assert secret != lost[r.id]  # a fresh secret nobody knows
            assert r.previous_webhook_secret is None
        else:
            assert secret == kept[r.id]
    keys.check_keys(pg_session, RING1)  # passes now
    audits = pg_session.scalars(
        select(AuditLog).where(AuditLog.action == "trigger.secret_erased")
    ).all()
    assert {a.resource_id for a in audits} == set(lost)
    status = pg_session.scalar(
        select(EncryptionKey.status).where(EncryptionKey.digest == LOST.active_digest)
    )
    assert status == KeyStatus.REVOKED
    again = keys.delete_secrets(factory_for(pg_session), clock, RING1)
    assert again.changed == 0 and again.digests == []


def test_delete_without_any_key_stores_plaintext(pg_session: Session, clock: FrozenClock) -> None:
    _bulk_triggers(pg_session, clock, 2, LOST)
    summary = keys.delete_secrets(factory_for(pg_session), clock, Keyring([]))
    assert summary.changed == 2
    for r in _stored(pg_session):
        assert r.webhook_secret_key_id is None and len(r.webhook_secret or "") == 64


def test_regenerate_after_delete_works(api: Api, seeded: Fixture) -> None:
    trig = api.session.get(AutomationTrigger, uuid.UUID(seeded.webhook["id"]))
    assert trig is not None
    trig.webhook_secret, trig.webhook_secret_key_id = LOST.encrypt("x" * 64)
    api.session.flush()
    keys.delete_secrets(factory_for(api.session), api.clock, RING1)
    path = f"/automations/{seeded.automation.id}/triggers/{trig.id}/regenerate-secret"
    assert api.post(path, {}).status_code == 200


def test_startup_fails_naming_the_digest(
    pg_committed: str, tmp_path: Any, clock: FrozenClock
) -> None:
    from webhook_gateway.app import create_app

    engine = make_engine(pg_committed)
    with Database(engine).unit() as uow:
        session = uow.session
        _bulk_triggers(session, clock, 1, LOST)
    engine.dispose()
    settings = Settings(
        database_url=pg_committed, broker_url="memory://", data_dir=tmp_path, encryption_keys=KEY1
    )
    with pytest.raises(keys.KeyCheckError, match=str(LOST.active_digest)):
        create_app(settings, clock=clock)


def test_keys_cli(pg_committed: str, tmp_path: Any, clock: FrozenClock) -> None:
    from shared.cli import main

    engine = make_engine(pg_committed)
    with Database(engine).unit() as uow:
        session = uow.session
        plain = _bulk_triggers(session, clock, 30, RING1)
    env = {
        "AUTOMATIONS_DATABASE_URL": pg_committed,
        "AUTOMATIONS_DATA_DIR": str(tmp_path),
        "AUTOMATIONS_ENCRYPTION_KEYS": f"{KEY2},{KEY1}",
    }
    runner = CliRunner()
    result = runner.invoke(main, ["keys", "rotate", "--batch-size", "7"], env=env)
    assert result.exit_code == 0, result.output
    assert "rotate: 30 of 30 trigger(s) changed in 5 batch(es)" in result.output
    result = runner.invoke(main, ["keys", "rotate", "--json", "-q"], env=env)
    assert result.exit_code == 0 and '"changed": 0' in result.output
    # remove KEY1 from the config: fine, nothing uses it any more
    env["AUTOMATIONS_ENCRYPTION_KEYS"] = KEY2
    result = runner.invoke(main, ["keys", "decrypt"], env=env)
    assert result.exit_code == 0, result.output
    assert "remove AUTOMATIONS_ENCRYPTION_KEYS" in result.output
    with Database(engine).unit() as uow:
        session = uow.session
        rows = list(session.scalars(select(AutomationTrigger)))
        assert all(r.webhook_secret == plain[r.id] for r in rows)
        # simulate a lost key
        for r in rows[:10]:
            r.webhook_secret, r.webhook_secret_key_id = LOST.encrypt(plain[r.id])
    result = runner.invoke(main, ["keys", "rotate"], env=env)
    assert result.exit_code == 1 and str(LOST.active_digest) in result.output
    result = runner.invoke(main, ["keys", "delete"], env=env, input="n\n")
    assert result.exit_code == 1  # aborted
    result = runner.invoke(main, ["keys", "delete", "--yes"], env=env)
    assert result.exit_code == 0, result.output
    assert "10 of 10" in result.output and "rotate-secret" in result.output
    engine.dispose()


def test_key_material_is_never_in_messages() -> None:
    raw = base64.b64decode(KEY1)
    err = keys.KeyCheckError({RING1.active_digest or "": 3})
    assert KEY1 not in str(err) and raw.hex() not in str(err)


# Model configs' API keys (SPEC 9): the same key commands cover them -------------------------


def _bulk_model_configs(
    session: Session, clock: FrozenClock, n: int, ring: Keyring
) -> dict[uuid.UUID, str]:
    """``n`` model configs whose API keys are encrypted by ``ring`` (plaintext without keys)."""
    org = f.org(session, clock)
    now = clock.now()
    plain: dict[uuid.UUID, str] = {}
    rows: list[dict[str, Any]] = []
    for i in range(n):
        config_id = uuid.uuid4()
        plain[config_id] = f"sk-{generate_secret().hex}"
        stored, digest = ring.encrypt(plain[config_id])
        rows.append(
            {
                "id": config_id,
                "organization_id": org.id,
                "name": f"model-{i}-{config_id.hex[:6]}",
                "provider": "openai",
                "base_url": "https://api.openai.com/v1",
                "model": "gpt-4o-mini",
                "api_key": stored,
                "api_key_key_id": digest,
                "created_at": now,
                "updated_at": now,
            }
        )
    session.execute(insert(ModelConfig), rows)
    if ring.active_digest:
        keys.record_key(session, clock, ring.active_digest)
    session.flush()
    return plain


def _configs(session: Session) -> list[ModelConfig]:
    session.expire_all()
    return list(session.scalars(select(ModelConfig)))


def test_api_keys_rotate_with_the_webhook_secrets(pg_session: Session, clock: FrozenClock) -> None:
    plain = _bulk_model_configs(pg_session, clock, 7, RING1)
    plain.update(_bulk_model_configs(pg_session, clock, 2, Keyring([])))  # stored before keys
    triggers = _bulk_triggers(pg_session, clock, 3, RING1)
    summary = keys.rotate(factory_for(pg_session), clock, RING21, batch_size=4)
    assert summary.changed == 3 and summary.model_configs_changed == 9
    assert summary.model_configs_total == 9 and not summary.failed_model_configs
    assert summary.secrets == 3 + 9
    for row in _configs(pg_session):
        assert row.api_key_key_id == RING2.active_digest and row.api_key is not None
        assert row.api_key.startswith("enc:v1:") and plain[row.id] not in row.api_key
        assert RING2.decrypt(row.api_key, row.api_key_key_id) == plain[row.id]
    assert len(triggers) == 3
    # KEY1 is no longer used by anything: revoked
    key_rows = pg_session.execute(select(EncryptionKey.digest, EncryptionKey.status)).all()
    statuses = {digest: status for digest, status in key_rows}
    assert statuses[RING1.active_digest] == KeyStatus.REVOKED
    again = keys.rotate(factory_for(pg_session), clock, RING21)
    assert again.model_configs_total == again.model_configs_changed == 0


def test_an_api_key_alone_keeps_its_key_in_use(pg_session: Session, clock: FrozenClock) -> None:
    """A key that only API keys use is neither revoked nor forgotten by the startup check."""
    _bulk_model_configs(pg_session, clock, 1, LOST)
    with pytest.raises(keys.KeyCheckError) as info:
        keys.check_keys(pg_session, RING1)
    assert str(LOST.active_digest) in str(info.value)
    assert "1 model config API key(s)" in str(info.value)
    with pytest.raises(keys.KeyCheckError):
        keys.rotate(factory_for(pg_session), clock, RING1)


def test_api_keys_decrypt_all(pg_session: Session, clock: FrozenClock) -> None:
    plain = _bulk_model_configs(pg_session, clock, 5, RING1)
    summary = keys.decrypt_all(factory_for(pg_session), clock, RING1, batch_size=2)
    assert summary.model_configs_changed == 5
    for row in _configs(pg_session):
        assert row.api_key == plain[row.id] and row.api_key_key_id is None
    assert pg_session.scalar(select(EncryptionKey.status)) == KeyStatus.REVOKED


def test_api_keys_of_a_lost_key_are_erased(pg_session: Session, clock: FrozenClock) -> None:
    lost = _bulk_model_configs(pg_session, clock, 3, LOST)
    kept = _bulk_model_configs(pg_session, clock, 2, RING1)
    summary = keys.delete_secrets(factory_for(pg_session), clock, RING1, batch_size=2)
    assert summary.digests == [LOST.active_digest]
    assert summary.model_configs_changed == 3 and summary.changed == 0
    for row in _configs(pg_session):
        if row.id in lost:
            assert row.api_key is None and row.api_key_key_id is None
        else:
            assert RING1.decrypt(row.api_key or "", row.api_key_key_id) == kept[row.id]
    keys.check_keys(pg_session, RING1)  # passes now
    audits = pg_session.scalars(
        select(AuditLog).where(AuditLog.action == "model_config.api_key_erased")
    ).all()
    assert {a.resource_id for a in audits} == set(lost)
    assert all(a.organization_id is not None for a in audits)


def test_api_keys_saved_through_the_api_survive_rotation(api: Api) -> None:
    from shared.model_configs import provider_config

    resp = api.post(
        "/model-configs",
        {
            "organization_id": str(api.world.org_a.id),
            "name": "gpt",
            "provider": "openai",
            "base_url": "https://api.openai.com/v1",
            "model": "gpt-4o-mini",
            "api_key": "sk-live-abcdefghijklmnopqrstuvwxyz",
        },
        who=api.world.admin_a,
    )
    assert resp.status_code == 201
    summary = keys.rotate(factory_for(api.session), api.clock, RING21)
    assert summary.model_configs_changed == 1
    row = api.session.get(ModelConfig, uuid.UUID(resp.get_json()["id"]))
    assert row is not None and row.api_key_key_id == RING2.active_digest
    settings = api.app.extensions["automations"].settings
    config = provider_config(row, RING21, settings)
    assert config.api_key == "sk-live-abcdefghijklmnopqrstuvwxyz"
    assert "sk-live" not in repr(config)
    assert api.get(f"/model-configs/{row.id}").get_json()["api_key_set"] is True


def test_keys_cli_covers_api_keys(pg_committed: str, tmp_path: Any, clock: FrozenClock) -> None:
    from shared.cli import main

    engine = make_engine(pg_committed)
    with Database(engine).unit() as uow:
        plain = _bulk_model_configs(uow.session, clock, 4, RING1)
    env = {
        "AUTOMATIONS_DATABASE_URL": pg_committed,
        "AUTOMATIONS_DATA_DIR": str(tmp_path),
        "AUTOMATIONS_ENCRYPTION_KEYS": f"{KEY2},{KEY1}",
    }
    runner = CliRunner()
    result = runner.invoke(main, ["keys", "rotate", "-q"], env=env)
    assert result.exit_code == 0, result.output
    assert "model config API keys: 4 of 4 changed" in result.output
    with Database(engine).unit() as uow:
        rows = list(uow.session.scalars(select(ModelConfig)))
        assert {r.api_key_key_id for r in rows} == {RING2.active_digest}
        for r in rows[:2]:  # simulate a lost key
            r.api_key, r.api_key_key_id = LOST.encrypt(plain[r.id])
    env["AUTOMATIONS_ENCRYPTION_KEYS"] = KEY2
    result = runner.invoke(main, ["keys", "delete", "--yes", "--json", "-q"], env=env)
    assert result.exit_code == 0, result.output
    assert '"model_configs_changed": 2' in result.output
    result = runner.invoke(main, ["keys", "decrypt", "-q"], env=env)
    assert result.exit_code == 0, result.output
    with Database(engine).unit() as uow:
        rows = list(uow.session.scalars(select(ModelConfig)))
        assert sorted(r.api_key is None for r in rows) == [False, False, True, True]
        assert all(r.api_key == plain[r.id] for r in rows if r.api_key is not None)
    engine.dispose()
