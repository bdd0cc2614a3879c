"""AUTOMATIONS_SMTP_URL and AUTOMATIONS_SMTP_FROM: parsing, validation at startup, and the
password kept out of every error and repr."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from shared.infra.config import ConfigError, Settings, load_settings
from shared.notifications.mail import build_message, message_id, parse_smtp_url

SECRET = "s3cr3t-p@ss"


@pytest.mark.parametrize(
    ("url", "host", "port", "implicit_tls", "user", "password"),
    [
        ("smtp://mail.example.com", "mail.example.com", 25, False, "", ""),
        ("smtp://mail.example.com:587", "mail.example.com", 587, False, "", ""),
        ("smtps://mail.example.com", "mail.example.com", 465, True, "", ""),
        ("SMTPS://bot:pw@mail.example.com:2465/", "mail.example.com", 2465, True, "bot", "pw"),
        # percent-encoded user and password: an '@' or ':' in either
        ("smtp://a%40b.c:p%3Aw%40d@127.0.0.1:2525", "127.0.0.1", 2525, False, "a@b.c", "p:w@d"),
        ("smtp://[::1]:25", "::1", 25, False, "", ""),
    ],
)
def test_parses_smtp_urls(
    url: str, host: str, port: int, implicit_tls: bool, user: str, password: str
) -> None:
    target = parse_smtp_url(url)
    assert (target.host, target.port, target.implicit_tls) == (host, port, implicit_tls)
    assert (target.username, target.password) == (user, password)


def test_the_password_is_not_in_the_repr() -> None:
    target = parse_smtp_url(f"smtps://bot:{SECRET.replace('@', '%40')}@mail.example.com")
    assert target.password == SECRET
    assert SECRET not in repr(target) and "s3cr3t" not in repr(target)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://bot:s3cr3t@mail.example.com", "unsupported scheme"),
        ("mail.example.com:25", "unsupported scheme"),
        ("smtp://bot:s3cr3t@", "the host is missing"),
        ("smtp://bot:s3cr3t@mail.example.com:99999", "port"),
        ("smtp://bot:s3cr3t@mail.example.com:abc", "port"),
        ("smtp://bot:s3cr3t@mail.example.com:0", "port"),
        ("smtp://bot:s3cr3t@mail.example.com/x?y=1", "unexpected path"),
        ("smtp://:s3cr3t@mail.example.com", "a password without a user name"),
    ],
)
def test_a_malformed_url_is_a_config_error_naming_the_variable(url: str, expected: str) -> None:
    with pytest.raises(ConfigError) as failure:
        load_settings(smtp_url=url, smtp_from="noreply@example.com")
    text = str(failure.value)
    assert "AUTOMATIONS_SMTP_URL" in text and expected in text
    assert "s3cr3t" not in text
    # constructing Settings directly: pydantic's own error text does not quote the URL either
    with pytest.raises(ValueError) as raw:
        Settings(smtp_url=url, smtp_from="noreply@example.com")
    assert "s3cr3t" not in str(raw.value) and "s3cr3t" not in repr(raw.value)


def test_a_url_without_a_sender_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="AUTOMATIONS_SMTP_FROM must be set") as failure:
        load_settings(smtp_url=f"smtps://bot:{SECRET.replace('@', '%40')}@mail.example.com")
    assert "s3cr3t" not in str(failure.value)


@pytest.mark.parametrize("sender", ["nobody", "a@", "@example.com", "Name <x>"])
def test_a_malformed_sender_is_a_config_error(sender: str) -> None:
    with pytest.raises(ConfigError, match="AUTOMATIONS_SMTP_FROM"):
        load_settings(smtp_url="smtp://127.0.0.1", smtp_from=sender)


def test_smtp_enabled() -> None:
    assert load_settings().smtp_enabled is False
    on = load_settings(smtp_url="smtp://127.0.0.1:2525", smtp_from="Bot <bot@example.com>")
    assert on.smtp_enabled is True
    quiet = load_settings(smtp_url="smtp://bot:pw@127.0.0.1", smtp_from="bot@example.com")
    assert "smtp://bot" not in repr(quiet)  # the field is repr=False


def test_the_message_id_is_stable_per_notification() -> None:
    nid = uuid.uuid4()
    first = message_id(nid, "Bot <bot@mail.example.com>")
    assert first == f"<notification.{nid}@mail.example.com>"
    assert message_id(nid, "bot@mail.example.com") == first
    msg = build_message(
        notification_id=nid,
        sender="Bot <bot@mail.example.com>",
        recipient="ada@example.com",
        subject="Chats auto-archived\r\nBcc: evil@example.com",
        body="Two chats were archived.",
        created_at=datetime(2026, 12, 6, 12, 0, tzinfo=UTC),
    )
    assert msg["Message-ID"] == first
    assert msg["To"] == "ada@example.com"
    assert msg["Subject"] == "Chats auto-archived Bcc: evil@example.com"  # one line
    assert msg["Bcc"] is None
    assert msg.get_content() == "Two chats were archived.\n"
