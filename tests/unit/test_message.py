"""Tests of the chat message of an event (shared.events.message): layout, templates, and the
reduction of large payloads, with real GitHub webhook payloads (tests/data/github/README.md)."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.events.message import chat_title, event_message, reduce_payload
from shared.events.options import PipelineOptions
from shared.events.templates import TemplateRenderError

DATA = Path(__file__).resolve().parents[1] / "data" / "github"
EXAMPLES = sorted(path.stem for path in DATA.glob("*.json"))
DEFAULT_LIMIT = PipelineOptions().message_payload_max_bytes
RECEIVED = datetime(2026, 1, 15, 11, 59, 30, tzinfo=UTC)
NOTE = re.compile(r"\[payload reduced from ([\d,]+) to ([\d,]+) bytes: ([^\]]+)\]")


def example(name: str) -> Any:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def message(payload: Any, max_bytes: int = DEFAULT_LIMIT, **kwargs: Any) -> str:
    return event_message(
        instructions=kwargs.pop("instructions", "Triage this event."),
        trigger_type="webhook",
        received_at=RECEIVED,
        labels=kwargs.pop("labels", {"repo": "acme/api"}),
        payload=payload,
        max_payload_bytes=max_bytes,
        **kwargs,
    )


def block_and_note(text: str) -> tuple[str, str | None]:
    """The text between ```json and ```, and the note line after it (if any)."""
    block = text.split("```json\n", 1)[1].split("\n```", 1)[0]
    after = text.split("```json\n", 1)[1].split("\n```", 1)[1]
    return block, after.strip() or None


def without_urls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_urls(v) for k, v in value.items() if not k.endswith("_url")}
    if isinstance(value, list):
        return [without_urls(v) for v in value]
    return value


def pretty_size(payload: Any) -> int:
    return len(json.dumps(payload, indent=2, ensure_ascii=False).encode())


# --- layout ---------------------------------------------------------------------------


def test_the_message_lists_the_event_then_the_payload() -> None:
    payload = {"action": "opened", "number": 2}
    text = message(payload, event_type="pull_request")
    assert text == (
        "Triage this event.\n\n---\nAutomation event\nTrigger: webhook\n"
        "Event type: pull_request\nReceived: 2026-01-15T11:59:30Z\nLabels:\n  repo: acme/api\n"
        'Payload:\n```json\n{\n  "action": "opened",\n  "number": 2\n}\n```'
    )


def test_without_event_type_labels_or_instructions() -> None:
    text = message([1], instructions="  ", labels={})
    assert text.startswith("---\nAutomation event\nTrigger: webhook\nReceived: ")
    assert "Event type:" not in text and "Labels: (none)" in text


def test_chat_title() -> None:
    assert chat_title("Triage", RECEIVED) == "[Triage] 2026-01-15 11:59"


# --- templates ------------------------------------------------------------------------


def test_a_template_replaces_the_payload_block() -> None:
    template = (
        "PR #{{ payload.number }}: {{ payload.pull_request.title }} "
        'by {{ gjson("pull_request.user.login") }} ({{ event_type }})'
    )
    text = message(example("pull_request.opened"), event_type="pull_request", template=template)
    assert text.endswith(
        "Labels:\n  repo: acme/api\n\n"
        "PR #2: Update the README with new information. by Codertocat (pull_request)"
    )
    assert "Event type: pull_request" in text
    assert "Payload:" not in text and "```" not in text


def test_a_template_sees_headers_and_labels() -> None:
    template = '{{ headers["X-GitHub-Delivery"] }} {{ labels.repo }}\n\n'
    text = message({}, template=template, headers={"x-github-delivery": "d-1"})
    assert text.endswith("\n\nd-1 acme/api")


def test_an_empty_template_means_no_template() -> None:
    assert "```json" in message({"a": 1}, template="")


def test_a_template_that_fails_raises_template_render_error() -> None:
    with pytest.raises(TemplateRenderError, match=r"^line 1: not allowed: .*'__class__'"):
        message({"a": 1}, template="{{ payload.__class__ }}")


# --- payload reduction with real GitHub payloads --------------------------------------


@pytest.mark.parametrize("limit", [DEFAULT_LIMIT, 4096, 1024, 300])
@pytest.mark.parametrize("name", EXAMPLES)
def test_a_reduced_payload_is_valid_json_within_the_limit_with_a_note(
    name: str, limit: int
) -> None:
    payload = example(name)
    block, note = block_and_note(message(payload, limit))
    assert json.loads(block) is not None  # valid JSON, whatever was left out
    assert len(block.encode()) <= limit
    original = pretty_size(payload)
    if original <= limit:
        assert note is None and json.loads(block) == payload
        return
    assert note is not None
    match = NOTE.fullmatch(note)
    assert match, note
    assert match.group(1) == f"{original:,}"
    assert match.group(2) == f"{len(block.encode()):,}"


def test_the_pull_request_keeps_everything_but_url_fields_at_the_default_limit() -> None:
    payload = example("pull_request.opened")
    assert pretty_size(payload) > DEFAULT_LIMIT
    block, note = block_and_note(message(payload))
    assert json.loads(block) == without_urls(payload)
    assert note is not None and note.endswith(" bytes: 234 *_url fields dropped]")


@pytest.mark.parametrize("limit", [DEFAULT_LIMIT, 4096])
@pytest.mark.parametrize(
    ("name", "paths"),
    [
        ("pull_request.opened", ["action", "number", "pull_request.title", "sender.login"]),
        ("issues.opened", ["action", "issue.number", "issue.title", "issue.user.login"]),
        ("check_run.completed", ["action", "check_run.name", "check_run.conclusion"]),
        ("workflow_run.completed", ["action", "workflow_run.name", "workflow_run.conclusion"]),
        ("push", ["ref", "after", "pusher.name", "sender.login"]),
    ],
)
def test_key_fields_are_kept(name: str, paths: list[str], limit: int) -> None:
    payload = example(name)
    reduced = json.loads(block_and_note(message(payload, limit))[0])
    for path in [*paths, "repository.full_name"]:
        original, kept = payload, reduced
        for key in path.split("."):
            original, kept = original[key], kept[key]
        assert kept == original, path


def test_nested_objects_are_summarized_with_a_count_when_needed() -> None:
    payload = example("pull_request.opened")
    block, note = block_and_note(message(payload, 4096))
    reduced = json.loads(block)
    assert reduced["pull_request"]["head"]["repo"] == "{… 78 fields}"  # as sent
    assert reduced["pull_request"]["head"]["ref"] == payload["pull_request"]["head"]["ref"]
    assert note is not None and "nested objects or arrays summarized" in note


def test_long_strings_are_shortened_with_a_marker() -> None:
    payload = {"number": 1, "body": "é" * 50_000}  # two bytes each: never cut mid-character
    block, note = block_and_note(message(payload, 4096))
    reduced = json.loads(block)
    assert reduced == {"number": 1, "body": "é" * 1024 + "…[+48976 chars]"}
    sizes = f"{pretty_size(payload):,} to {len(block.encode()):,}"
    assert note == f"[payload reduced from {sizes} bytes: 1 string shortened]"


def test_long_arrays_keep_their_first_items_and_a_count() -> None:
    payload = {"commits": [{"id": i, "message": "m" * 200} for i in range(500)]}
    block, note = block_and_note(message(payload))
    commits = json.loads(block)["commits"]
    assert commits[:20] == payload["commits"][:20]
    assert commits[20:] == ["… 480 more items"]
    assert note is not None and note.endswith(" bytes: 1 array cut]")


def test_url_fields_go_first_at_any_depth() -> None:
    payload = {"a_url": "u" * 9000, "url": "kept", "deep": [{"html_url": "h" * 9000, "x": 1}]}
    block, note = block_and_note(message(payload))
    assert json.loads(block) == {"url": "kept", "deep": [{"x": 1}]}
    assert note is not None and note.endswith(" bytes: 2 *_url fields dropped]")


def test_a_very_wide_object_keeps_its_top_level_scalars() -> None:
    payload = {"action": "sync", "count": 3000, **{f"k{i}": {"a": i} for i in range(3000)}}
    block, note = block_and_note(message(payload))
    assert json.loads(block) == {"action": "sync", "count": 3000}
    assert note is not None and note.endswith(
        " bytes: only top-level scalar fields kept, 3,000 left out]"
    )


def test_the_block_is_valid_json_even_with_a_tiny_limit() -> None:
    for payload in (example("push"), ["x" * 100] * 100, "y" * 1000):
        block = reduce_payload(payload, 10).text
        assert json.loads(block) is not None


def test_payloads_orjson_cannot_encode_are_reduced_too() -> None:
    huge_int = {"n": 2**70, "s": "x" * 20_000}
    assert json.loads(reduce_payload(huge_int, 4096).text) == {
        "n": 2**70,
        "s": "x" * 1024 + "…[+18976 chars]",
    }
    deep: Any = "z" * 20_000
    for _ in range(300):  # beyond orjson's nesting limit
        deep = [deep]
    reduced = reduce_payload(deep, 4096)
    assert json.loads(reduced.text) is not None and len(reduced.text.encode()) <= 4096


def test_reducing_the_pull_request_takes_a_few_milliseconds() -> None:
    payload = example("pull_request.opened")
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        reduce_payload(payload, 1024)  # the deepest rounds: every level is tried
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.02
