"""``automations webhook send``: sign a payload like GitHub or a Standard Webhooks sender and
post it, so users can test a trigger without the real sender."""

from __future__ import annotations

import base64
import binascii
import re
import sys
import time
import uuid
from typing import BinaryIO

import click
import requests

from shared.triggers.signatures import sign_github, sign_standard

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def secret_hex(secret: str) -> str:
    """The 64-hex form of a secret given as 64 hex characters or as ``whsec_<base64>``."""
    secret = secret.strip()
    if _HEX64.fullmatch(secret):
        return secret.lower()
    if secret.startswith("whsec_"):
        try:
            raw = base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            raise click.BadParameter("the whsec_ secret is not valid base64") from None
        if len(raw) != 32:
            raise click.BadParameter(f"the whsec_ secret decodes to {len(raw)} bytes, not 32")
        return raw.hex()
    raise click.BadParameter(
        "expected the trigger's webhook_secret (64 hex characters) or webhook_secret_standard "
        "(whsec_...)"
    )


def build_request(
    body: bytes,
    secret: str,
    scheme: str,
    delivery_id: str | None,
    now: float,
    event_type: str | None = None,
) -> dict[str, str]:
    """The headers of a signed delivery; ``event_type`` goes into ``X-GitHub-Event``
    (GitHub scheme; Standard Webhooks carry the type in the body's ``type`` field)."""
    hex_secret = secret_hex(secret)
    delivery_id = delivery_id or str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "automations-webhook-send",
    }
    if scheme == "github":
        headers["X-Hub-Signature-256"] = sign_github(hex_secret, body)
        headers["X-GitHub-Delivery"] = delivery_id
        if event_type:
            headers["X-GitHub-Event"] = event_type
    else:
        timestamp = int(now)
        headers["webhook-id"] = delivery_id
        headers["webhook-timestamp"] = str(timestamp)
        headers["webhook-signature"] = sign_standard(hex_secret, delivery_id, timestamp, body)
    return headers


@click.group()
def webhook() -> None:
    """Test webhook triggers."""


@webhook.command("send")
@click.argument("url")
@click.argument("payload", type=click.File("rb"), metavar="FILE|-")
@click.option(
    "--secret",
    required=True,
    envvar="AUTOMATIONS_WEBHOOK_SECRET",
    help="The trigger's secret: webhook_secret (hex) or webhook_secret_standard (whsec_...). "
    "Also read from AUTOMATIONS_WEBHOOK_SECRET.",
)
@click.option(
    "--scheme",
    type=click.Choice(["github", "standard"]),
    default="github",
    show_default=True,
    help="github: X-Hub-Signature-256; standard: Standard Webhooks headers.",
)
@click.option("--delivery-id", help="Delivery id (default: a random UUID); resending deduplicates.")
@click.option(
    "--event",
    "event_type",
    help="The event type, sent as X-GitHub-Event (github scheme), e.g. pull_request; "
    "triggers with event_types accept only those.",
)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds.")
def send(
    url: str,
    payload: BinaryIO,
    secret: str,
    scheme: str,
    delivery_id: str | None,
    event_type: str | None,
    timeout: float,
) -> None:
    """Sign FILE (or stdin with -) and POST it to URL, the trigger's webhook_url.

    Prints the HTTP status line and the response body; exits non-zero unless the gateway
    answered 2xx.
    """
    body = payload.read()
    if event_type and scheme != "github":
        raise click.UsageError(
            "--event sets X-GitHub-Event (github scheme); Standard Webhooks senders put the "
            "type in the body's top-level 'type' field"
        )
    headers = build_request(body, secret, scheme, delivery_id, time.time(), event_type)
    try:
        resp = requests.post(url, data=body, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        click.echo(f"error: could not reach {url}: {type(exc).__name__}: {exc}", err=True)
        sys.exit(3)
    click.echo(f"HTTP {resp.status_code} {resp.reason}")
    if resp.text:
        click.echo(resp.text.rstrip("\n"))
    if not 200 <= resp.status_code < 300:
        sys.exit(1)
