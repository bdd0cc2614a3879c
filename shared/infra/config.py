"""The one settings object. Every process reads its configuration here and only here.

Tests construct ``Settings(...)`` directly with keyword arguments; production reads
``AUTOMATIONS_*`` environment variables through :func:`load_settings`.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "AUTOMATIONS_"


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        frozen=True,
        validate_default=True,
        # a ValidationError's text would otherwise quote the value: secrets such as the SMTP
        # password or the metrics token must never reach a log or a terminal
        hide_input_in_errors=True,
    )

    data_dir: Path = Path("./var")
    database_url: str = ""
    broker_url: str = ""
    encryption_keys: str = ""
    bind: str = "127.0.0.1:8080"
    public_url: str = ""
    max_body_bytes: int = Field(1_048_576, ge=1, le=64 * 1_048_576)
    event_retention_days: int = Field(7, ge=1, le=3650)

    # Beyond the contract: tuning knobs with sane defaults.
    log_level: str = "INFO"
    stored_payload_max_bytes: int = Field(65_536, ge=256)
    message_payload_max_bytes: int = Field(16_384, ge=256)
    db_pool_size: int = Field(5, ge=1, le=200)
    db_max_overflow: int = Field(5, ge=0, le=200)
    #: server-side prepared statements for the pipeline's hot statements (PostgreSQL); turn
    #: off behind a pooler in transaction mode (PgBouncer), see shared/events/store_postgres.py
    db_prepared_statements: bool = True
    gateway_workers: int = Field(0, ge=0, le=64)  # 0 = two per CPU (2 on SQLite)
    gateway_threads: int = Field(4, ge=1, le=256)
    worker_concurrency: int = Field(0, ge=0, le=256)  # 0 = one per CPU
    #: how much nicer than the worker's main process its pool processes run (0 = the same)
    worker_pool_nice: int = Field(10, ge=0, le=19)
    trigger_cache_seconds: float = Field(2.0, ge=0, le=60)
    sweeper_interval_seconds: float = Field(10.0, gt=0)
    sweeper_min_age_seconds: int = Field(30, ge=1)
    sweeper_batch_size: int = Field(500, ge=1)
    sweeper_max_attempts: int = Field(5, ge=1)
    cron_dispatch_interval_seconds: float = Field(5.0, gt=0)
    cron_dispatch_batch_size: int = Field(500, ge=1)
    purge_interval_seconds: float = Field(3600.0, gt=0)
    purge_batch_size: int = Field(5000, ge=1)
    purge_pause_seconds: float = Field(0.05, ge=0)
    task_time_limit_seconds: int = Field(300, ge=10)
    broker_visibility_timeout_seconds: int = Field(3600, ge=30)
    #: shifts the clock of every process by this many seconds (tests; keep 0 in production)
    clock_offset_seconds: float = Field(0.0, ge=-366 * 86400, le=366 * 86400)

    #: CPU milliseconds the filter and labels of one event (or one dry run) may take
    filter_budget_ms: float = Field(50.0, gt=0, le=10_000)

    # Hardening (issue 16; docs/operations.md, "Metrics and alerts" and "Client addresses").
    #: ``/metrics`` on the gateway's port needs ``Authorization: Bearer <this>``; with neither
    #: this nor ``metrics_bind`` set, ``/metrics`` answers 404
    metrics_token: str = Field("", repr=False)
    #: HOST:PORT of a separate metrics listener (gunicorn's master); then ``/metrics`` is not
    #: served on the gateway's port at all
    metrics_bind: str = ""
    #: failed API authentications per client address and window before 429 (0 = no limit)
    auth_failure_limit: int = Field(20, ge=0, le=1_000_000)
    auth_failure_window_seconds: int = Field(60, ge=1, le=86_400)
    #: reverse proxies in front of the gateway whose ``X-Forwarded-For`` is believed; 0 = the
    #: peer address is the client's (never set it higher than the proxies really there)
    trusted_proxies: int = Field(0, ge=0, le=10)

    # The chat runner (issue 17, SPEC 9; docs/chats.md).
    #: may model configs (and MCP servers) point at loopback or private addresses; unset: true
    #: in embedded mode (SQLite), false otherwise (see :attr:`effective_outbound_allow_private`)
    outbound_allow_private: bool | None = None
    #: no first chunk within this many seconds: the turn fails with kind ``startup_timeout``
    startup_timeout_seconds: float = Field(60.0, gt=0, le=3600)
    #: no chunk for this many seconds mid-stream: kind ``timeout``
    stream_idle_timeout_seconds: float = Field(300.0, gt=0, le=3600)
    #: a provider asking to wait longer than this ends the turn as a non-retryable error
    max_retry_after_seconds: int = Field(600, ge=1, le=86_400)
    #: attempts one turn may take before it fails for good
    max_attempts: int = Field(10, ge=1, le=100)
    #: a running chat heartbeats this often
    runner_heartbeat_seconds: float = Field(10.0, gt=0, le=600)
    #: a running chat whose heartbeat is older than this is returned to ``pending``
    runner_stale_seconds: float = Field(60.0, gt=0, le=86_400)
    #: a pending chat nobody claimed for this long is published again (a lost publish)
    runner_republish_seconds: float = Field(30.0, gt=0, le=86_400)
    #: turns one worker process runs at once (further run_chat messages wait in the queue)
    runner_max_in_flight: int = Field(200, ge=1, le=10_000)
    #: how often beat runs the chat recovery job
    recover_chats_interval_seconds: float = Field(15.0, gt=0)

    # The chat lifecycle (issue 18, SPEC 11; docs/chats.md).
    #: ``smtp://`` or ``smtps://[user:password@]host[:port]``: notifications are also e-mailed
    smtp_url: str = Field("", repr=False)
    #: the From address of notification e-mails (needed with ``smtp_url``)
    smtp_from: str = ""
    #: how often beat runs auto-archive and chat retention (the site config says how old)
    auto_archive_interval_seconds: float = Field(3600.0, gt=0)
    chat_retention_interval_seconds: float = Field(3600.0, gt=0)

    @field_validator(
        "database_url",
        "broker_url",
        "public_url",
        "encryption_keys",
        "metrics_token",
        "metrics_bind",
        "smtp_url",
        "smtp_from",
        mode="before",
    )
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value:
            return value
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a SQLAlchemy URL ({exc})") from None
        if url.get_backend_name() not in ("postgresql", "sqlite"):
            raise ValueError(
                f"unsupported database {url.get_backend_name()!r}; use postgresql+psycopg2:// "
                "or sqlite:///"
            )
        return value

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str) -> str:
        if value and "://" not in value:
            raise ValueError("expected a URL such as redis://127.0.0.1:6379/0")
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _check_keys(cls, value: str) -> str:
        from shared.infra.crypto import parse_keys

        parse_keys(value)  # raises ValueError naming the bad key's position
        return value

    @field_validator("bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8080")
        return value

    @field_validator("metrics_bind")
    @classmethod
    def _check_metrics_bind(cls, value: str) -> str:
        if not value:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected HOST:PORT, e.g. 0.0.0.0:9100")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: str) -> str:
        if not value:
            return value
        if len(value) < 16 or not value.isascii() or not value.isprintable() or " " in value:
            raise ValueError(
                "expected at least 16 printable ASCII characters without spaces, e.g. "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str) -> str:
        if value:
            from shared.notifications.mail import parse_smtp_url

            parse_smtp_url(value)  # ValueError never quotes the URL (it holds the password)
        return value

    @field_validator("smtp_from")
    @classmethod
    def _check_smtp_from(cls, value: str) -> str:
        if value:
            from shared.notifications.mail import check_sender

            check_sender(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        value = value.upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value

    @model_validator(mode="after")
    def _check_time_limits(self) -> Settings:
        if self.task_time_limit_seconds >= self.broker_visibility_timeout_seconds:
            raise ValueError(
                "AUTOMATIONS_TASK_TIME_LIMIT_SECONDS must be below "
                "AUTOMATIONS_BROKER_VISIBILITY_TIMEOUT_SECONDS, or a slow task is redelivered "
                "while it still runs"
            )
        if self.metrics_bind and self.metrics_bind == self.bind:
            raise ValueError(
                "AUTOMATIONS_METRICS_BIND must differ from AUTOMATIONS_BIND (the metrics "
                "listener is a separate one)"
            )
        if self.smtp_url and not self.smtp_from:
            raise ValueError(
                "AUTOMATIONS_SMTP_FROM must be set with AUTOMATIONS_SMTP_URL (the From address "
                "of notification e-mails)"
            )
        return self

    # Derived values ---------------------------------------------------------

    @cached_property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'automations.db'}"

    @cached_property
    def effective_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.data_dir.resolve() / 'broker.db'}"

    @cached_property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.bind}").rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def effective_outbound_allow_private(self) -> bool:
        """Whether outbound URLs may reach loopback and private addresses: as configured,
        else only in embedded mode, so that a fleet cannot be turned against its own
        network (SPEC 9 "Outbound URLs")."""
        if self.outbound_allow_private is not None:
            return self.outbound_allow_private
        return self.is_sqlite

    @property
    def effective_worker_concurrency(self) -> int:
        """Pool processes of ``automations worker``: as configured, else 2 on the embedded
        SQLite database (one writer anyway), else one per CPU plus one. The extra process
        keeps the CPUs busy while the others wait on PostgreSQL round trips
        (docs/performance.md: 349 instead of 293 events/s on 2 vCPUs)."""
        if self.worker_concurrency:
            return self.worker_concurrency
        return 2 if self.is_sqlite else (os.cpu_count() or 1) + 1

    @property
    def effective_gateway_workers(self) -> int:
        """gunicorn processes of ``automations gateway``: as configured, else 2 on the embedded
        SQLite database, else two per CPU. More processes with fewer threads each (the default
        is 4 threads) spend less on GIL hand-offs around the two round trips of every webhook
        (docs/performance.md: on 2 vCPUs 4 x 4 took 1,000-1,100 webhooks/s with p99 ~40 ms,
        2 x 8 about 830/s with p99 ~60 ms)."""
        if self.gateway_workers:
            return self.gateway_workers
        return 2 if self.is_sqlite else 2 * (os.cpu_count() or 1)

    @property
    def smtp_enabled(self) -> bool:
        """Whether notifications are also e-mailed (``AUTOMATIONS_SMTP_URL`` is set; validation
        made sure ``AUTOMATIONS_SMTP_FROM`` is too)."""
        return bool(self.smtp_url)

    @property
    def is_embedded_broker(self) -> bool:
        return self.effective_broker_url.startswith("sqla+")

    @cached_property
    def keys(self) -> list[bytes]:
        from shared.infra.crypto import parse_keys

        return parse_keys(self.encryption_keys)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, turning validation errors into one clear message."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            name = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {msg}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
    # No warning about missing AUTOMATIONS_ENCRYPTION_KEYS here: loading settings stores no
    # secret. shared.infra.crypto.warn_unencrypted_secrets says it once per process where a
    # secret is stored (and when the gateway starts).
    return settings
