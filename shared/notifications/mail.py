"""E-mail for notifications: the SMTP URL, the message, and one send.

``AUTOMATIONS_SMTP_URL`` is ``smtp://`` or ``smtps://[user:password@]host[:port]`` (user and
password percent-encoded, e.g. ``%40`` for ``@``):

* ``smtps://`` is implicit TLS (port 465 by default): TLS from the first byte;
* ``smtp://`` (port 25 by default; 587 for a submission port) upgrades with STARTTLS whenever
  the server offers it. A server that does not offer it gets the message in clear, which
  suits a local relay, but never the password: with a user and password and no STARTTLS
  the send fails, unless the host is a loopback address.

Certificates are verified against the system's trust store (``ssl.create_default_context``).
The password is kept out of ``repr``, of every error message and of every log line: error
messages here quote the server's reply or the exception's type, never the URL.
"""

from __future__ import annotations

import ipaddress
import smtplib
import socket
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from urllib.parse import unquote, urlsplit

__all__ = [
    "SMTP_TIMEOUT_SECONDS",
    "MailError",
    "SmtpTarget",
    "build_message",
    "check_sender",
    "message_id",
    "parse_smtp_url",
    "send_message",
]

#: seconds any one SMTP operation (connect, each command) may take
SMTP_TIMEOUT_SECONDS = 10.0

_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}

#: headers are not folded below RFC 5322's hard limit: a folded Message-ID (it is long) comes
#: back with leading whitespace from some parsers and would defeat deduplication
_POLICY = policy.default.clone(max_line_length=998)


@dataclass(frozen=True)
class SmtpTarget:
    """A parsed ``AUTOMATIONS_SMTP_URL``; ``password`` is left out of ``repr``."""

    host: str
    port: int
    implicit_tls: bool
    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class MailError(Exception):
    """One send failed. ``transient`` (a connection problem, a 4xx reply): try again later;
    otherwise (a 5xx reply, a refused configuration) another attempt would fail the same way.
    The message never contains the password."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def parse_smtp_url(url: str) -> SmtpTarget:
    """The target an SMTP URL names; ``ValueError`` (without the password) when malformed."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError(
            "not an SMTP URL: expected smtp:// or smtps://[user:password@]host[:port] with a "
            "port between 1 and 65535"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(
            "unsupported scheme: expected smtp:// (STARTTLS when offered) or smtps:// "
            "(implicit TLS)"
        )
    host = parts.hostname or ""
    if not host:
        raise ValueError("the host is missing: expected smtp(s)://[user:password@]host[:port]")
    if port == 0:
        raise ValueError("the port must be between 1 and 65535")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("unexpected path, query or fragment: expected smtp(s)://host[:port]")
    username = unquote(parts.username or "")
    password = unquote(parts.password or "")
    if password and not username:
        raise ValueError("a password without a user name")
    return SmtpTarget(
        host=host,
        port=port or _DEFAULT_PORTS[scheme],
        implicit_tls=scheme == "smtps",
        username=username,
        password=password,
    )


def check_sender(value: str) -> str:
    """``AUTOMATIONS_SMTP_FROM``: ``addr@domain`` or ``Name <addr@domain>``; ``ValueError``."""
    _name, addr = parseaddr(value)
    local, at, domain = addr.rpartition("@")
    if not at or not local or ("." not in domain and domain != "localhost"):
        raise ValueError("expected an e-mail address, e.g. Automations <noreply@example.com>")
    return value


def message_id(notification_id: uuid.UUID, sender: str) -> str:
    """A Message-ID that depends only on the notification and the sender's domain: a
    notification e-mailed twice (see docs/operations.md, "E-mail notifications") carries the
    same one both times, so mail systems and clients can drop the second copy."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return f"<notification.{notification_id}@{domain}>"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def build_message(
    *,
    notification_id: uuid.UUID,
    sender: str,
    recipient: str,
    subject: str,
    body: str,
    created_at: datetime,
) -> EmailMessage:
    """The e-mail of one notification: plain text, From the configured sender, To the user."""
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = sender
    name, addr = parseaddr(recipient)
    msg["To"] = Address(display_name=name, addr_spec=addr) if addr else recipient
    msg["Subject"] = _one_line(subject) or "Notification"
    msg["Date"] = format_datetime(created_at)
    msg["Message-ID"] = message_id(notification_id, sender)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    msg.set_content(body if body.endswith("\n") else body + "\n")
    return msg


def send_message(
    target: SmtpTarget, message: EmailMessage, *, timeout: float = SMTP_TIMEOUT_SECONDS
) -> None:
    """Hand ``message`` to the server (returns once it accepted it); :class:`MailError`."""
    context = ssl.create_default_context()
    try:
        client: smtplib.SMTP
        if target.implicit_tls:
            client = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(target.host, target.port, timeout=timeout)
        with client:
            client.ehlo()
            if not target.implicit_tls and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
            elif not target.implicit_tls and target.username and not target.is_loopback:
                raise MailError(
                    f"{target.host}:{target.port} does not offer STARTTLS; refusing to send "
                    "the SMTP password in clear (use smtps:// or a server with STARTTLS)",
                    transient=False,
                )
            if target.username:
                client.login(target.username, target.password)
            client.send_message(message)
    except MailError:
        raise
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _msg in exc.recipients.values()]
        raise MailError(
            f"the server refused the recipient ({', '.join(map(str, codes))})",
            transient=all(400 <= code < 500 for code in codes),
        ) from None
    except smtplib.SMTPResponseException as exc:  # sender refused, auth failed, data refused
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        raise MailError(
            f"the server answered {exc.smtp_code} {_one_line(reply)[:200]}".rstrip(),
            transient=400 <= exc.smtp_code < 500,
        ) from None
    except smtplib.SMTPNotSupportedError:
        raise MailError(
            "the server does not support AUTH for this login", transient=False
        ) from None
    except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timeout, TLS, DNS
        raise MailError(
            f"{target.host}:{target.port} unreachable ({_describe(exc)})", transient=True
        ) from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    text = _one_line(str(exc))[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
