from __future__ import annotations

import base64
from pathlib import Path

import pytest

from shared.infra.config import ConfigError, Settings, load_settings


def test_defaults_are_embedded(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.effective_database_url == f"sqlite:///{tmp_path.resolve()}/automations.db"
    assert s.effective_broker_url.startswith("sqla+sqlite:///")
    assert s.is_sqlite and s.is_embedded_broker
    assert s.effective_public_url == "http://127.0.0.1:8080"
    assert s.max_body_bytes == 1_048_576 and s.event_retention_days == 7
    assert s.keys == []


def test_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key = base64.b64encode(b"k" * 32).decode()
    monkeypatch.setenv("AUTOMATIONS_DATABASE_URL", "postgresql+psycopg2://db/automations")
    monkeypatch.setenv("AUTOMATIONS_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("AUTOMATIONS_ENCRYPTION_KEYS", f"{key}, {key}")
    monkeypatch.setenv("AUTOMATIONS_PUBLIC_URL", "https://hooks.example.com/")
    monkeypatch.setenv("AUTOMATIONS_MAX_BODY_BYTES", "2048")
    s = load_settings()
    assert not s.is_sqlite and not s.is_embedded_broker
    assert s.keys == [b"k" * 32, b"k" * 32]
    assert s.effective_public_url == "https://hooks.example.com"
    assert s.max_body_bytes == 2048


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("AUTOMATIONS_DATABASE_URL", "not a url", "AUTOMATIONS_DATABASE_URL: not a SQLAlchemy URL"),
        ("AUTOMATIONS_DATABASE_URL", "mysql://x/y", "unsupported database 'mysql'"),
        ("AUTOMATIONS_ENCRYPTION_KEYS", "%%%notbase64", "AUTOMATIONS_ENCRYPTION_KEYS: key #1"),
        ("AUTOMATIONS_ENCRYPTION_KEYS", base64.b64encode(b"short").decode(), "32"),
        ("AUTOMATIONS_MAX_BODY_BYTES", "lots", "AUTOMATIONS_MAX_BODY_BYTES"),
        ("AUTOMATIONS_EVENT_RETENTION_DAYS", "0", "AUTOMATIONS_EVENT_RETENTION_DAYS"),
        ("AUTOMATIONS_BIND", "8080", "AUTOMATIONS_BIND: expected HOST:PORT"),
        ("AUTOMATIONS_BROKER_URL", "localhost", "AUTOMATIONS_BROKER_URL: expected a URL"),
        ("AUTOMATIONS_LOG_LEVEL", "LOUD", "AUTOMATIONS_LOG_LEVEL"),
        ("AUTOMATIONS_METRICS_BIND", "9100", "AUTOMATIONS_METRICS_BIND: expected HOST:PORT"),
        ("AUTOMATIONS_METRICS_TOKEN", "short-token", "AUTOMATIONS_METRICS_TOKEN: expected"),
        ("AUTOMATIONS_METRICS_TOKEN", "with space 0123456789", "AUTOMATIONS_METRICS_TOKEN"),
        ("AUTOMATIONS_AUTH_FAILURE_LIMIT", "-1", "AUTOMATIONS_AUTH_FAILURE_LIMIT"),
        ("AUTOMATIONS_AUTH_FAILURE_WINDOW_SECONDS", "0", "AUTOMATIONS_AUTH_FAILURE_WINDOW"),
        ("AUTOMATIONS_TRUSTED_PROXIES", "11", "AUTOMATIONS_TRUSTED_PROXIES"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert expected in str(info.value)
    if "KEYS" in var or "TOKEN" in var:
        assert value not in str(info.value)  # never echo key material


def test_task_time_limit_must_stay_below_visibility_timeout() -> None:
    with pytest.raises(ConfigError, match="below"):
        load_settings(task_time_limit_seconds=4000, broker_visibility_timeout_seconds=3600)


def test_worker_concurrency_defaults_to_one_per_cpu_plus_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    pg = "postgresql+psycopg2://db/automations"
    assert Settings(database_url=pg, data_dir=tmp_path).effective_worker_concurrency == 5
    assert Settings(data_dir=tmp_path).effective_worker_concurrency == 2  # embedded SQLite
    configured = Settings(database_url=pg, data_dir=tmp_path, worker_concurrency=3)
    assert configured.effective_worker_concurrency == 3
    from shared.cli.processes import worker_argv

    argv = worker_argv(Settings(database_url=pg, data_dir=tmp_path))
    assert argv[argv.index("--concurrency") + 1] == "5"
    assert "5" not in worker_argv(Settings(database_url=pg, data_dir=tmp_path), ("-c", "7"))


def test_gateway_workers_default_to_two_per_cpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    pg = "postgresql+psycopg2://db/automations"
    settings = Settings(database_url=pg, data_dir=tmp_path)
    assert (settings.effective_gateway_workers, settings.gateway_threads) == (6, 4)
    assert Settings(data_dir=tmp_path).effective_gateway_workers == 2  # embedded SQLite
    configured = Settings(database_url=pg, data_dir=tmp_path, gateway_workers=5)
    assert configured.effective_gateway_workers == 5


def test_hardening_defaults_and_the_metrics_token_stays_out_of_repr(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert (s.metrics_token, s.metrics_bind, s.trusted_proxies) == ("", "", 0)
    assert (s.auth_failure_limit, s.auth_failure_window_seconds) == (20, 60)
    token = "t" * 32
    assert token not in repr(Settings(data_dir=tmp_path, metrics_token=token))


def test_metrics_bind_must_differ_from_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOMATIONS_BIND", "0.0.0.0:8080")
    monkeypatch.setenv("AUTOMATIONS_METRICS_BIND", "0.0.0.0:8080")
    with pytest.raises(ConfigError, match="AUTOMATIONS_METRICS_BIND must differ"):
        load_settings()
    monkeypatch.setenv("AUTOMATIONS_METRICS_BIND", "0.0.0.0:9100")
    assert load_settings().metrics_bind == "0.0.0.0:9100"
