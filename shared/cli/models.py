"""``automations models``: add, list, test and remove model configs over the HTTP API
(AUTOMATIONS_URL, AUTOMATIONS_TOKEN). Adding and removing needs an org-admin's token.

The API key never goes on the command line (where ``ps`` and the shell history would keep
it): ``models add`` reads it from the environment variable named by ``--api-key-env``, or
asks for it (hidden) when stdin is a terminal, or reads its first line from piped stdin.
``--no-api-key`` is for endpoints without one (a local Ollama or vLLM).
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

import click

from shared.cli.client import ApiClient, ClientError, client
from shared.cli.output import emit_json, handle_errors, json_option, table
from shared.cli.resolve import resolve_org

MODEL_COLUMNS = ("id", "name", "provider", "model", "base_url", "api_key_set")
#: ``models test`` waits at most this long (the server bounds the test by its startup
#: timeout, 60 s by default, plus 15 s)
TEST_TIMEOUT_SECONDS = 400.0


@click.group()
def models() -> None:
    """Model configs: the model endpoints chats run against (MODEL is an id or a name)."""


def _checked(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` once the API's request schema accepts it (the same message as the API's 400,
    before anything is sent)."""
    from shared.errors import DomainError
    from webhook_gateway.api import schemas

    try:
        schemas.ModelConfigCreate.check_json(body)
    except DomainError as exc:
        raise ClientError(f"{exc.message} ({exc.code})", status=400, code=exc.code) from None
    return body


def read_api_key(env_var: str | None, no_api_key: bool) -> str | None:
    """The API key from ``$env_var``, a hidden prompt (terminal) or stdin's first line."""
    if no_api_key:
        return None
    if env_var is not None:
        value = os.environ.get(env_var, "").strip()
        if not value:
            raise ClientError(f"--api-key-env: {env_var} is not set or empty", exit_code=2)
        return value
    if sys.stdin.isatty():
        value = click.prompt(
            "API key (input hidden; empty for none)",
            hide_input=True,
            default="",
            show_default=False,
            err=True,
        )
    else:
        value = sys.stdin.readline()
    return value.strip() or None


def resolve_model(api: ApiClient, ref: str, org: str | None = None) -> dict[str, Any]:
    """A model config by id, or by name among the organizations' configs you can read."""
    try:
        uuid.UUID(ref)
    except ValueError:
        pass
    else:
        return api.get(f"/model-configs/{ref}")  # type: ignore[no-any-return]
    org_id = resolve_org(api, org) if org else None
    matches = [
        item
        for item in api.iterate("/model-configs", organization_id=org_id, limit=200)
        if item["name"] == ref
    ]
    if not matches:
        raise ClientError(f"no model config named {ref!r}")
    if len(matches) > 1:
        raise ClientError(f"several organizations have a model config named {ref!r}; use --org")
    return matches[0]  # type: ignore[no-any-return]


@models.command("add")
@click.argument("name")
@click.option("--org", help="Organization id or name (default: your only organization).")
@click.option(
    "--provider",
    type=click.Choice(["openai", "anthropic"]),
    required=True,
    help="openai: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, ...); anthropic.",
)
@click.option("--base-url", required=True, help="e.g. https://api.openai.com/v1")
@click.option("--model", required=True, help="The model name the endpoint knows.")
@click.option("--api-key-env", metavar="VAR", help="Read the API key from environment VAR.")
@click.option("--no-api-key", is_flag=True, help="The endpoint needs no key.")
@click.option("--max-output-tokens", type=int)
@click.option("--temperature", type=float, help="0 to 2.")
@click.option("--context-window", type=int)
@json_option
@handle_errors
def models_add(
    name: str,
    org: str | None,
    provider: str,
    base_url: str,
    model: str,
    api_key_env: str | None,
    no_api_key: bool,
    max_output_tokens: int | None,
    temperature: float | None,
    context_window: int | None,
    as_json: bool,
) -> None:
    """Add model config NAME to an organization (org-admins).

    The API key comes from --api-key-env VAR, or a hidden prompt, or piped stdin; never put
    it on the command line. It is stored encrypted and never shown again."""
    if api_key_env is not None and no_api_key:
        raise click.UsageError("--api-key-env and --no-api-key exclude each other")
    api = client()
    body: dict[str, Any] = {
        "organization_id": resolve_org(api, org),
        "name": name,
        "provider": provider,
        "base_url": base_url,
        "model": model,
    }
    for key, value in (
        ("max_output_tokens", max_output_tokens),
        ("temperature", temperature),
        ("context_window", context_window),
    ):
        if value is not None:
            body[key] = value
    _checked(body)
    api_key = read_api_key(api_key_env, no_api_key)
    if api_key is not None:
        body["api_key"] = api_key
    data = api.post("/model-configs", body)
    if as_json:
        emit_json(data)
    else:
        key = "with an API key" if data["api_key_set"] else "without an API key"
        click.echo(f"added model config {data['id']} ({data['name']}), {key}")


@models.command("list")
@click.option("--org", help="Organization id or name (default: all of yours).")
@json_option
@handle_errors
def models_list(org: str | None, as_json: bool) -> None:
    """List the model configs of your organizations."""
    api = client()
    org_id = resolve_org(api, org) if org else None
    items = list(api.iterate("/model-configs", organization_id=org_id, limit=200))
    if as_json:
        emit_json(items)
    elif not items:
        click.echo("no model configs", err=True)
    else:
        click.echo(table(items, MODEL_COLUMNS, headers={"api_key_set": "API KEY"}))


@models.command("test")
@click.argument("model_ref", metavar="MODEL")
@click.option("--org", help="Organization id or name, to find MODEL by name.")
@json_option
@handle_errors
def models_test(model_ref: str, org: str | None, as_json: bool) -> None:
    """Send a one-line prompt: prints the latency, or the classified error (exit code 1)."""
    api = client()
    data = resolve_model(api, model_ref, org)
    api.timeout = max(api.timeout, TEST_TIMEOUT_SECONDS)
    result = api.post(f"/model-configs/{data['id']}/test")
    if as_json:
        emit_json(result)
    elif result["ok"]:
        click.echo(f"ok: {data['name']} ({data['model']}) answered in {result['latency_ms']} ms")
    else:
        error = result["error"] or {}
        status = error.get("status_code")
        facts = [f"kind {error.get('kind')}"]
        if status is not None:
            facts.append(f"HTTP {status}")
        facts.append("retryable" if error.get("retryable") else "not retryable")
        click.echo(f"failed ({', '.join(facts)}): {error.get('message')}", err=True)
        if error.get("detail"):
            click.echo(f"  detail: {error['detail']}", err=True)
    if not result["ok"]:
        sys.exit(1)


@models.command("remove")
@click.argument("model_ref", metavar="MODEL")
@click.option("--org", help="Organization id or name, to find MODEL by name.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def models_remove(model_ref: str, org: str | None, yes: bool) -> None:
    """Remove a model config (org-admins). Automations and chats that use it keep running
    without one: their turns fail with kind `config` until another is set."""
    api = client()
    data = resolve_model(api, model_ref, org)
    if not yes:
        click.confirm(f"remove model config {data['name']} ({data['id']})?", abort=True)
    api.delete(f"/model-configs/{data['id']}")
    click.echo(f"removed model config {data['id']}")
