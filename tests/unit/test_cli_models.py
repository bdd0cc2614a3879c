"""`automations models add | list | test | remove` and `automations usage show | limit`: what
they send and print, and that the API key never travels on the command line or into output.

The HTTP API is replaced by a recording fake of the client (no server)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from click.testing import CliRunner, Result

from shared.cli import main
from shared.cli import models as cli_models
from shared.cli import usage as cli_usage
from shared.cli.client import ApiClient

ORG_ID = str(uuid.uuid4())
CONFIG_ID = str(uuid.uuid4())
USER_ID = str(uuid.uuid4())
SECRET = "sk-cli-0123456789abcdefghij"
CONFIG = {
    "id": CONFIG_ID,
    "organization_id": ORG_ID,
    "name": "gpt",
    "provider": "openai",
    "base_url": "https://api.openai.com/v1",
    "model": "gpt-4o-mini",
    "api_key_set": True,
    "max_output_tokens": None,
    "temperature": None,
    "context_window": None,
}


class FakeApi(ApiClient):
    """Answers from ``routes`` ((method, path) -> body or callable(json)) and records every
    request."""

    def __init__(self, routes: Mapping[tuple[str, str], Any]) -> None:
        super().__init__("http://api.invalid", "token")
        self.routes = dict(routes)
        self.requests: list[tuple[str, str, dict[str, Any], Any]] = []

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        self.requests.append((method, path, clean, json))
        answer = self.routes[(method, path)]
        return answer(json) if callable(answer) else answer

    def sent(self, method: str, path: str) -> list[Any]:
        return [r[3] for r in self.requests if r[0] == method and r[1] == path]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    def created(body: Any) -> dict[str, Any]:
        return {**CONFIG, "name": body["name"], "api_key_set": "api_key" in body}

    fake = FakeApi(
        {
            ("GET", "/users/me"): {"organizations": [{"id": ORG_ID, "name": "acme"}]},
            ("POST", "/model-configs"): created,
            ("GET", "/model-configs"): {"items": [CONFIG], "next_cursor": None},
            ("GET", f"/model-configs/{CONFIG_ID}"): CONFIG,
            ("DELETE", f"/model-configs/{CONFIG_ID}"): None,
            ("POST", f"/model-configs/{CONFIG_ID}/test"): {
                "ok": True,
                "latency_ms": 42,
                "error": None,
            },
        }
    )
    for module in (cli_models, cli_usage):
        monkeypatch.setattr(module, "client", lambda: fake)
    return fake


def run(*args: str, ok: bool = True, **kw: Any) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, **kw)
    if ok:
        assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


ADD = ("models", "add", "gpt", "--provider", "openai", "--base-url", "https://x.example/v1")


def test_add_reads_the_key_from_the_named_environment_variable(api: FakeApi) -> None:
    result = run(*ADD, "--model", "m", "--api-key-env", "MY_KEY", env={"MY_KEY": SECRET})
    [body] = api.sent("POST", "/model-configs")
    assert body == {
        "organization_id": ORG_ID,
        "name": "gpt",
        "provider": "openai",
        "base_url": "https://x.example/v1",
        "model": "m",
        "api_key": SECRET,
    }
    assert "with an API key" in result.stdout
    assert SECRET not in result.output


def test_add_reads_the_key_from_piped_stdin(api: FakeApi) -> None:
    run(*ADD, "--model", "m", "--temperature", "0.5", input=SECRET + "\n")
    [body] = api.sent("POST", "/model-configs")
    assert body["api_key"] == SECRET and body["temperature"] == 0.5


def test_add_without_a_key(api: FakeApi) -> None:
    result = run(*ADD, "--model", "m", "--no-api-key")
    [body] = api.sent("POST", "/model-configs")
    assert "api_key" not in body and "without an API key" in result.stdout


@pytest.mark.parametrize(
    ("extra", "env", "code", "message"),
    [
        (("--temperature", "3"), {}, 1, "temperature"),
        (("--api-key-env", "UNSET_VAR"), {}, 2, "UNSET_VAR is not set"),
        (("--api-key-env", "K", "--no-api-key"), {"K": "x"}, 2, "exclude each other"),
    ],
)
def test_add_refuses_bad_input_before_sending(
    api: FakeApi, extra: tuple[str, ...], env: dict[str, str], code: int, message: str
) -> None:
    result = run(*ADD, "--model", "m", *extra, ok=False, env=env, input="")
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert not api.sent("POST", "/model-configs")


def test_list_shows_whether_a_key_is_set(api: FakeApi) -> None:
    lines = run("models", "list").stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "PROVIDER", "MODEL", "BASE_URL", "API", "KEY"]
    assert lines[1].split()[-1] == "yes"
    assert "https://api.openai.com/v1" in lines[1]


def test_test_prints_the_latency(api: FakeApi) -> None:
    assert "answered in 42 ms" in run("models", "test", "gpt").stdout
    assert api.timeout >= cli_models.TEST_TIMEOUT_SECONDS  # longer than the server's bound


def test_test_prints_the_structured_error_and_fails(api: FakeApi) -> None:
    api.routes[("POST", f"/model-configs/{CONFIG_ID}/test")] = {
        "ok": False,
        "latency_ms": 9,
        "error": {
            "message": "The API key was rejected.",
            "kind": "auth",
            "provider": "openai",
            "retryable": False,
            "status_code": 401,
            "detail": "invalid api key",
        },
    }
    result = run("models", "test", CONFIG_ID, ok=False)
    assert result.exit_code == 1
    assert "kind auth, HTTP 401, not retryable" in result.stderr
    assert "The API key was rejected." in result.stderr
    assert "detail: invalid api key" in result.stderr


def test_remove_by_name(api: FakeApi) -> None:
    assert f"removed model config {CONFIG_ID}" in run("models", "remove", "gpt", "--yes").stdout
    assert [r[:2] for r in api.requests if r[0] == "DELETE"] == [
        ("DELETE", f"/model-configs/{CONFIG_ID}")
    ]


def test_an_unknown_name_is_an_error(api: FakeApi) -> None:
    result = run("models", "remove", "nope", "--yes", ok=False)
    assert result.exit_code == 1 and "no model config named 'nope'" in result.stderr


def test_usage_show_and_limit(api: FakeApi) -> None:
    summary = {
        "organization_id": ORG_ID,
        "since": "2026-12-01T00:00:00Z",
        "until": None,
        "group_by": "model",
        "scope": "organization",
        "total": {
            "key": None,
            "input_tokens": 1000,
            "output_tokens": 234,
            "total_tokens": 1234,
            "turns": 3,
        },
        "groups": [
            {"key": "gpt-4o", "input_tokens": 1000, "output_tokens": 234, "total_tokens": 1234}
            | {"turns": 3}
        ],
        "truncated": False,
        "limits": {"organization": 5000, "member": None},
    }
    api.routes[("GET", "/usage")] = summary
    out = run("usage", "show", "--group-by", "model", "--since", "2026-12-01").stdout
    assert "1,234 tokens" in out and "organization 5,000, yours none" in out
    assert "gpt-4o" in out
    params = next(r[2] for r in api.requests if r[1] == "/usage")
    assert params["organization_id"] == ORG_ID and params["group_by"] == "model"
    assert params["since"].startswith("2026-12-01T00:00:00")

    def setter(body: Any) -> dict[str, Any]:
        return {"name": "acme", **body}

    api.routes[("PATCH", f"/organizations/{ORG_ID}")] = setter
    api.routes[("PATCH", f"/organizations/{ORG_ID}/members/{USER_ID}")] = setter
    assert "acme: 100,000" in run("usage", "limit", "--tokens", "100000").stdout
    run("usage", "limit", "--user", USER_ID, "--none")
    assert api.sent("PATCH", f"/organizations/{ORG_ID}") == [{"monthly_token_limit": 100000}]
    assert api.sent("PATCH", f"/organizations/{ORG_ID}/members/{USER_ID}") == [
        {"monthly_token_limit": None}
    ]
    assert run("usage", "limit", ok=False).exit_code == 2
