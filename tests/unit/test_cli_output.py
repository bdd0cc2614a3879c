"""What the API commands print and accept: full webhook URLs in `trigger list`, the event
type column of `events list`, and `events list --since` taking the timestamps the CLI prints.

The HTTP API is replaced by a recording fake of the client (no server)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner, Result

from shared.cli import events as cli_events
from shared.cli import main
from shared.cli import trigger as cli_trigger
from shared.cli.client import ApiClient
from shared.cli.output import CELL_WIDTH, table

AUTO_ID = str(uuid.uuid4())
LONG_URL = (
    f"https://automations.internal.example.com/api/v1/automations/triggers/{uuid.uuid4()}/webhook"
)


class FakeApi(ApiClient):
    """Answers GETs from ``pages`` (path -> body) and records every request's parameters."""

    def __init__(self, pages: Mapping[str, Any]) -> None:
        super().__init__("http://api.invalid", "token")
        self.pages = dict(pages)
        self.requests: list[tuple[str, str, dict[str, Any]]] = []

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        self.requests.append((method, path, dict(params or {})))
        if path == f"/automations/{AUTO_ID}":
            return {"id": AUTO_ID, "name": "deploys"}
        return self.pages[path]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi(
        {
            f"/automations/{AUTO_ID}/triggers": {
                "items": [
                    {
                        "id": str(uuid.uuid4()),
                        "type": "webhook",
                        "cron_schedule": None,
                        "next_fire_at": None,
                        "webhook_url": LONG_URL,
                    }
                ],
                "next_cursor": None,
            },
            f"/automations/{AUTO_ID}/events": {"items": [], "next_cursor": None},
        }
    )
    for module in (cli_events, cli_trigger):
        monkeypatch.setattr(module, "client", lambda: fake)
    return fake


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def event(**fields: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "received_at": "2026-12-05T23:04:30.123456Z",
        "status": "created",
        "trigger_id": str(uuid.uuid4()),
        "resolved_labels": {"repo": "acme/api"},
        "created_chat_id": None,
        "matched_chat_id": None,
        "error": None,
        **fields,
    }


# trigger list: the webhook URL in full -------------------------------------------------------


def test_trigger_list_shows_the_whole_webhook_url(api: FakeApi) -> None:
    assert len(LONG_URL) > CELL_WIDTH
    out = run("trigger", "list", AUTO_ID).stdout
    assert LONG_URL in out.split()
    assert "…" not in out


def test_url_columns_are_never_cut_but_other_long_cells_are() -> None:
    long_error = "x" * (CELL_WIDTH + 20)
    text = table([{"webhook_url": LONG_URL, "error": long_error}], ["webhook_url", "error"])
    header, row = text.splitlines()
    assert header.split() == ["WEBHOOK_URL", "ERROR"]
    assert row.split()[0] == LONG_URL
    assert row.split()[1] == "x" * (CELL_WIDTH - 1) + "…"


# events list: the event type column ----------------------------------------------------------


def test_events_list_shows_the_event_type_or_a_dash(api: FakeApi) -> None:
    api.pages[f"/automations/{AUTO_ID}/events"] = {
        "items": [event(event_type="pull_request"), event(event_type=None), event()],
        "next_cursor": None,
    }
    lines = run("events", "list", AUTO_ID).stdout.splitlines()
    start = lines[0].index("EVENT TYPE")
    assert lines[0][:start].split()[-1] == "STATUS"
    # the event without the field (an older server) shows "-" like an explicit null
    assert [line[start:].split()[0] for line in lines[1:]] == ["pull_request", "-", "-"]


def test_events_follow_has_the_same_columns(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    path = f"/automations/{AUTO_ID}/events"
    cli_events.follow_events(api, path, {}, [event(event_type="push")], 0.2, False, max_polls=0)
    header, row = capsys.readouterr().out.splitlines()
    start = header.index("EVENT TYPE")
    assert row[start:].split()[0] == "push"


def test_table_headers_can_be_named() -> None:
    rows = [{"event_type": "push", "id": "1"}]
    text = table(rows, ["id", "event_type"], headers={"event_type": "EVENT TYPE"})
    assert text.splitlines() == ["ID  EVENT TYPE", "1   push"]


# events list --since: what the CLI prints, RFC 3339, dates ---------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # exactly what `events list` prints for received_at
        ("2026-12-05T23:04:30.123456Z", datetime(2026, 12, 5, 23, 4, 30, 123456, tzinfo=UTC)),
        ("2026-12-05T23:04:30Z", datetime(2026, 12, 5, 23, 4, 30, tzinfo=UTC)),
        ("2026-12-05 23:04:30.5+00:00", datetime(2026, 12, 5, 23, 4, 30, 500000, tzinfo=UTC)),
        ("2026-12-05 23:04:30", datetime(2026, 12, 5, 23, 4, 30, tzinfo=UTC)),  # naive = UTC
        ("2026-12-05T23:04:30", datetime(2026, 12, 5, 23, 4, 30, tzinfo=UTC)),
        ("2026-12-06T01:04:30+02:00", datetime(2026, 12, 5, 23, 4, 30, tzinfo=UTC)),
        ("2026-12-05", datetime(2026, 12, 5, tzinfo=UTC)),
    ],
)
def test_since_accepts_printed_and_rfc3339_timestamps(
    api: FakeApi, given: str, expected: datetime
) -> None:
    run("events", "list", AUTO_ID, "--since", given)
    [params] = [r[2] for r in api.requests if r[1].endswith("/events")]
    sent = datetime.fromisoformat(params["since"])
    assert sent.utcoffset() is not None  # the API wants an offset
    assert sent == expected


def test_since_round_trips_a_printed_received_at(api: FakeApi) -> None:
    printed = event(event_type="push")
    api.pages[f"/automations/{AUTO_ID}/events"] = {"items": [printed], "next_cursor": None}
    shown = run("events", "list", AUTO_ID).stdout.splitlines()[1].split()[0]
    assert shown == printed["received_at"]
    run("events", "list", AUTO_ID, "--since", shown)
    since = api.requests[-1][2]["since"]
    assert datetime.fromisoformat(since) == datetime.fromisoformat(printed["received_at"])


def test_since_rejects_garbage_with_the_accepted_forms(api: FakeApi) -> None:
    result = CliRunner().invoke(main, ["events", "list", AUTO_ID, "--since", "yesterday"])
    assert result.exit_code == 2
    assert "2026-12-05T23:04:30Z" in result.stderr
    assert not [r for r in api.requests if r[1].endswith("/events")]
