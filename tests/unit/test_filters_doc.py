"""docs/filters.md says what filters, labels and templates do: its examples, checked against
GitHub's example payloads in tests/data/github with the real filter and label code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.events.templates import render_template, validate_template
from shared.lib import gjson
from shared.triggers.filters import (
    FilterError,
    filter_cost_ms,
    filter_matches,
    regex_input_limit,
    resolve_labels,
    validate_filter,
)

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "filters.md").read_text()
DATA = REPO / "tests" / "data" / "github"


def payload(name: str) -> Any:
    return json.loads((DATA / f"{name}.json").read_text())


def json_examples() -> list[dict[str, Any]]:
    """Every JSON filter in the doc's ```json blocks (one object per line or per block)."""
    found: list[dict[str, Any]] = []
    for block in re.findall(r"```json\n(.*?)```", DOC, re.S):
        try:
            found.append(json.loads(block))
        except ValueError:
            found.extend(json.loads(line) for line in block.splitlines() if line.strip())
    return found


def test_every_filter_in_the_doc_is_valid() -> None:
    examples = json_examples()
    assert len(examples) >= 8
    for example in examples:
        validate_filter(example)


#: every JSON example of the doc: the payload it is tried on, and whether it matches
DOC_EXAMPLES: list[tuple[str, dict[str, Any], bool]] = [
    ("pull_request.opened", {"action": "opened", "pull_request.draft": False}, True),
    ("push", {"ref": "refs/heads/main"}, False),  # the example payload is a tag push
    (
        "workflow_run.completed",  # a successful run
        {"action": "completed", "workflow_run.conclusion": {"$in": ["failure", "timed_out"]}},
        False,
    ),
    ("pull_request.opened", {'pull_request.labels.#(name=="bug")': {"$exists": True}}, True),
    (
        "pull_request.opened",
        {
            "pull_request.base.ref": {"$in": ["main", "master"]},
            "pull_request.user.login": {"$ne": "dependabot[bot]"},
        },
        True,
    ),
    ("push", {"ref": {"$regex": "^refs/tags/v\\d+\\.\\d+"}}, False),  # simple-tag
    ("pull_request.opened", {"pull_request.title": {"$regex": "(?i)readme"}}, True),
    ("pull_request.opened", {"pull_request.labels.#": {"$gte": 1}}, True),
]
#: what the text says about typed equality
TYPED_EQUALITY: list[tuple[str, dict[str, Any], bool]] = [
    ("pull_request.opened", {"pull_request.number": 2.0}, True),
    ("pull_request.opened", {"pull_request.number": "2"}, False),
    ("pull_request.opened", {"pull_request.merged_at": None}, True),
    ("pull_request.opened", {"pull_request.no_such_field": None}, False),
    ("pull_request.opened", {"pull_request.no_such_field": {"$exists": False}}, True),
    ("pull_request.opened", {"pull_request.labels.#.name": ["bug"]}, True),
    ("pull_request.opened", {"pull_request.user": {"login": "Codertocat"}}, False),
    ("pull_request.opened", {"pull_request.user.login": "Codertocat"}, True),
]


def test_every_doc_example_is_checked_here() -> None:
    def keys(filters: list[dict[str, Any]]) -> set[str]:
        return {json.dumps(f, sort_keys=True) for f in filters}

    assert keys(json_examples()) == keys([filter_ for _, filter_, _ in DOC_EXAMPLES])


@pytest.mark.parametrize(("name", "filter_", "matches"), DOC_EXAMPLES + TYPED_EQUALITY)
def test_examples_on_github_payloads(name: str, filter_: dict[str, Any], matches: bool) -> None:
    assert filter_matches(filter_, payload(name)) is matches


def test_a_failed_run_passes_the_workflow_run_filter() -> None:
    run = payload("workflow_run.completed")
    run["workflow_run"]["conclusion"] = "timed_out"
    wanted = {"action": "completed", "workflow_run.conclusion": {"$in": ["failure", "timed_out"]}}
    assert filter_matches(wanted, run)


def test_paths_table() -> None:
    pr = payload("pull_request.opened")
    assert gjson.get(pr, "pull_request.labels.#").value == 1
    assert gjson.get(pr, "pull_request.labels.#.name").value == ["bug"]
    assert gjson.get(pr, 'pull_request.labels.#(name=="bug")').value["name"] == "bug"
    for path in ("repository.full_nam?", "repo*.full_name"):
        assert gjson.get(pr, path).value == "Codertocat/Hello-World"
    assert gjson.get({"app.kubernetes.io/name": "x"}, r"app\.kubernetes\.io/name").value == "x"


def test_labels_become_strings_as_documented() -> None:
    pr = payload("pull_request.opened")
    paths = {
        "repo": "repository.full_name",
        "pr": "pull_request.number",
        "draft": "pull_request.draft",
        "merged": "pull_request.merged_at",
        "labels": "pull_request.labels.#.name",
        "missing": "pull_request.no_such_field",
    }
    assert resolve_labels(paths, pr) == {
        "repo": "Codertocat/Hello-World",
        "pr": "2",
        "draft": "false",
        "merged": "",
        "labels": '["bug"]',
    }
    assert resolve_labels({"n": "a", "m": "b"}, {"a": 1.50, "b": 1e3}) == {"n": "1.5", "m": "1000"}
    # a run outside any pull request has no pr label, so it cannot continue a PR's chat
    run = payload("workflow_run.completed")
    labels = {"repo": "repository.full_name", "pr": "workflow_run.pull_requests.0.number"}
    assert resolve_labels(labels, run) == {"repo": "octo-org/octo-repo"}


def test_regex_rules_as_documented() -> None:
    assert "16 KiB" in DOC and "50 ms" in DOC and "25 ns" in DOC
    assert regex_input_limit("^refs/heads/main$") == 16 * 1024
    assert not filter_matches({"s": {"$regex": "^x"}}, {"s": "x" * (16 * 1024 + 1)})
    # RE2's refusals say so
    for refused, what in [
        (r"(\w+)\1", "backreference"),
        ("(?P<x>a)(?P=x)", "backreference"),
        ("a(?=b)", "lookaround"),
        ("a(?!b)", "lookaround"),
        ("(?<=a)b", "lookaround"),
        ("(?<!a)b", "lookaround"),
        ("(?>a)", "atomic group"),
        ("a++", "possessive"),
        ("(?(1)a|b)", "conditional"),
        ("(?x) a", "RE2"),
    ]:
        with pytest.raises(FilterError, match=f"{what}.*") as info:
            regex_input_limit(refused)
        assert "RE2" in str(info.value)
    # what backtracking made catastrophic is harmless now
    for accepted in ("(a+)+", "(a|ab)*", "a.*b.*c.*d.*e"):
        regex_input_limit(accepted)
    # the documented differences from Python
    assert not filter_matches({"s": {"$regex": r"^\d$"}}, {"s": "\u0663"})  # Arabic-Indic 3
    assert filter_matches({"s": {"$regex": "(?i)é"}}, {"s": "É"})
    assert filter_matches({"s": {"$regex": r"\pL"}}, {"s": "é"})
    assert not filter_matches({"s": {"$regex": "a$"}}, {"s": "a\n"})
    assert filter_matches({"s": {"$regex": r"a\Z"}}, {"s": "ba"})
    assert filter_matches({"s": {"$regex": "^a{,2}$"}}, {"s": "aa"})
    with pytest.raises(FilterError, match="operator"):
        validate_filter({"action": {"$in": ["a"], "other": 1}})


def test_cpu_budget_as_documented() -> None:
    assert filter_cost_ms({"ref": {"$regex": r"^refs/tags/v\d+\.\d+"}}) <= 50 / 10
    assert filter_cost_ms({"t": {"$regex": "(?i)readme"}}) <= 50 / 10
    ten = {f"k{i}": {"$regex": "(?i)readme"} for i in range(10)}
    validate_filter(ten)
    pathological = {f"k{i}": {"$regex": "[a-z]*[a-z]*[a-z]*\\d|z$"} for i in range(64)}
    with pytest.raises(FilterError, match="use fewer or simpler \\$regex patterns"):
        validate_filter(pathological)


def test_the_template_example_is_valid_and_renders_as_described() -> None:
    [template] = re.findall(r"```jinja\n(.*?)```", DOC, re.S)
    validate_template(template)
    pr = payload("pull_request.opened")
    text = render_template(
        template,
        payload=pr,
        headers={"x-github-event": "pull_request", "x-github-delivery": "72d3162e"},
        event_type="pull_request",
        labels={"repo": "Codertocat/Hello-World", "pr": "2"},
    )
    assert "Codertocat opened pull request #2 in Codertocat/Hello-World" in text
    assert "changes → master" in text
    assert "GitHub delivery 72d3162e, event pull_request" in text
