"""Tests of message templates (shared.events.templates): variables, printing, validation on
save, the sandbox, and the bounds on runaway templates."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import Invalid
from shared.events import template_limits, templates
from shared.events.templates import TemplateRenderError, render_template, validate_template

PAYLOAD: dict[str, Any] = {
    "action": "opened",
    "number": 7,
    "ratio": 1.0,
    "draft": False,
    "merged_at": None,
    "title": "Fix <cache> & eviction",
    "labels": [{"name": "bug"}, {"name": "area/cache"}],
    "items": ["the payload's own items key"],
    "_links": {"self": {"href": "https://example.test/pr/7"}},
}


def render(text: str, payload: Any = PAYLOAD, **kwargs: Any) -> str:
    return render_template(
        text,
        payload=payload,
        headers=kwargs.get("headers", {"x-github-event": "pull_request"}),
        event_type=kwargs.get("event_type", "pull_request"),
        labels=kwargs.get("labels", {"repo": "acme/api"}),
    )


def render_error(text: str, payload: Any = PAYLOAD) -> str:
    with pytest.raises(TemplateRenderError) as info:
        render(text, payload)
    return str(info.value)


# --- variables and printing ----------------------------------------------------------


def test_renders_payload_headers_event_type_labels_and_gjson() -> None:
    text = (
        "{{ event_type }} #{{ payload.number }} {{ labels.repo }} "
        '{{ headers["x-github-event"] }} {{ gjson("labels.#.name") }} {{ gjson("labels.1.name") }}'
    )
    assert render(text) == 'pull_request #7 acme/api pull_request ["bug","area/cache"] area/cache'


def test_header_lookups_ignore_case() -> None:
    text = '{{ headers["X-GitHub-Event"] }}|{{ headers.get("X-GitHub-Event") }}|{{ headers.Nope }}'
    assert render(text, headers={"X-GitHub-Event": "push"}) == "push|push|"


def test_gjson_returns_python_values_and_none_when_missing() -> None:
    assert render('{{ gjson("number") + 1 }} {{ gjson("nope") is none }}') == "8 true"
    assert render('{{ gjson("@this") }}', payload="just text") == "just text"


def test_missing_keys_render_empty_at_any_depth() -> None:
    text = "[{{ payload.nope }}][{{ payload.nope.deeper.still }}][{{ payload.labels[9].name }}]"
    assert render(text) == "[][][]"
    assert render('{{ payload.pull_request.user.login | default("n/a") }}') == "n/a"
    assert render("{% for x in payload.nope %}x{% endfor %}done") == "done"


def test_values_print_like_labels() -> None:
    text = "{{ payload.merged_at }}|{{ payload.draft }}|{{ payload.ratio }}|{{ payload.labels }}"
    assert render(text) == '|false|1|[{"name":"bug"},{"name":"area/cache"}]'
    assert render('{{ "n=" ~ payload.number ~ payload.draft ~ none }}') == "n=7false"
    assert render("{{ payload.labels[0]|string }}") == '{"name":"bug"}'


def test_nothing_is_html_escaped_and_tojson_is_plain_json() -> None:
    assert render("{{ payload.title }}") == "Fix <cache> & eviction"
    assert render('{{ {"b": payload.title, "a": 1}|tojson }}') == (
        '{"b": "Fix <cache> & eviction", "a": 1}'
    )


def test_json_keys_come_before_methods() -> None:
    # the payload's "items" key, not dict.items; and "_links" is data, not a private attribute
    assert render("{{ payload.items[0] }}") == "the payload's own items key"
    assert render("{{ payload._links.self.href }}") == "https://example.test/pr/7"
    assert render('{{ payload["__class__"] }}', payload={"__class__": "data"}) == "data"


def test_block_tags_on_their_own_lines_leave_no_blank_lines() -> None:
    text = "Labels:\n{% for label in payload.labels %}\n  - {{ label.name }}\n{% endfor %}\nend"
    assert render(text) == "Labels:\n  - bug\n  - area/cache\nend"


def test_compiled_templates_are_cached_by_text() -> None:
    text = "{{ payload.number }} cached"
    assert templates._compile(text) is templates._compile(text)


# --- validation on save ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("line one\nline two\n{{ payload.x }", "line 3: unexpected '}'"),
        ("{% if %}", "line 1: Expected an expression, got 'end of statement block'"),
        ("ok\n{{ payload|nofilter }}", "line 2: No filter named 'nofilter'."),
        ("{% for x in y %}{% break %}{% endfor %}", "line 1: Encountered unknown tag 'break'."),
        ('{% include "other" %}', "line 1: 'include' is not supported"),
        ('{% import "m" as m %}', "line 1: 'import' is not supported"),
        ('{% extends "base" %}', "line 1: 'extends' is not supported"),
        ('\n{{ gjson("a..b") }}', "line 2: gjson path 'a..b': "),
    ],
)
def test_invalid_templates_are_refused_with_line_and_reason(text: str, message: str) -> None:
    with pytest.raises(Invalid) as info:
        validate_template(text)
    assert info.value.message.startswith(f"message_template: {message}")
    assert info.value.code == "invalid_template"
    assert info.value.field == "message_template"
    assert info.value.status == 400


def test_a_template_over_20000_characters_is_refused() -> None:
    with pytest.raises(Invalid, match=r"longer than 20,000 characters \(20,001\)"):
        validate_template("x" * 20_001)
    validate_template("x" * 20_000)


def test_valid_templates_pass() -> None:
    validate_template('PR #{{ payload.number }} by {{ gjson("pull_request.user.login") }}')
    validate_template("{% set ns = namespace(n=0) %}{% for l in payload.labels %}{% endfor %}")


def test_a_stored_invalid_template_fails_the_render_with_the_reason() -> None:
    assert render_error("a\n{{ x }") == "invalid template: line 2: unexpected '}'"


def test_render_errors_name_the_template_line() -> None:
    assert render_error('a\n{{ payload.x }}\n{{ 1 + "a" }}').startswith("line 3: TypeError:")


# --- the sandbox ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "attribute", "owner"),
    [
        ("{{ payload.__class__.__mro__ }}", "__class__", "dict"),
        ("{{ ''.__class__.__subclasses__() }}", "__class__", "str"),
        ("{{ gjson.__call__.__globals__ }}", "__call__", "_Gjson"),
        ("{{ gjson._document }}", "_document", "_Gjson"),
        ("{{ cycler.__init__.__globals__ }}", "__init__", "type"),
        (
            "{{ self._TemplateReference__context }}",
            "_TemplateReference__context",
            "TemplateReference",
        ),
        ("{% for x in [1] %}{{ loop._after }}{% endfor %}", "_after", "LoopContext"),
        ('{{ payload|attr("__class__") }}', "__class__", "dict"),
        ('{{ "{0.__class__}".format(payload) }}', "__class__", "dict"),
        ('{{ labels.items()|map(attribute="__class__")|list }}', "__class__", "tuple"),
        ("{{ (1).to_bytes(8, 'big') }}", "to_bytes", "int"),
    ],
)
def test_escaping_the_sandbox_fails_the_render(text: str, attribute: str, owner: str) -> None:
    assert render_error(text) == (
        f"line 1: not allowed: access to attribute {attribute!r} of {owner!r} object is unsafe"
    )


def test_private_names_that_do_not_exist_render_empty() -> None:
    # not an attribute of a dict nor a key of the payload: missing, like any other key
    assert render("[{{ payload._private }}]") == "[]"
    # gjson is an object without __globals__ (its __call__ is refused above)
    assert render("[{{ gjson.__globals__ }}]") == "[]"


def test_long_payload_strings_pass_filters_that_do_not_grow_them() -> None:
    payload = {"log": "&" * 300_000}
    assert render('{{ payload.log|trim|length }} {{ gjson("log")[:3] }}', payload) == "300000 &&&"
    assert render_error("{{ payload.log|e|length }}", payload) == (
        "line 1: a string longer than 262,144"
    )


def test_the_payload_cannot_be_changed() -> None:
    payload = {"a": [1]}
    assert render_error('{{ payload.update({"b": 1}) }}', payload).endswith(
        "access to attribute 'update' of 'dict' object is unsafe"
    )
    assert render_error("{{ payload.a.append(2) }}", payload).endswith(
        "access to attribute 'append' of 'list' object is unsafe"
    )
    assert payload == {"a": [1]}


def test_lipsum_is_not_available() -> None:
    assert render_error("{{ lipsum(10**6) }}") == "line 1: 'lipsum' is undefined"


# --- bounds ---------------------------------------------------------------------------


def test_range_is_limited_to_the_sandboxs_max_range() -> None:
    assert render("{% for i in range(100000) %}{% endfor %}done") == "done"
    assert "MAX_RANGE (100000)" in render_error("{% for i in range(10**9) %}{% endfor %}")


def test_loop_iterations_are_bounded() -> None:
    text = "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"
    assert render_error(text) == "line 1: more than 250,000 loop iterations and calls"


def test_the_output_is_bounded() -> None:
    text = '{% for i in range(100000) %}{{ "x" * 100 }}{% endfor %}'
    assert render_error(text) == "the output exceeds 262,144 bytes"


def test_text_produced_into_blocks_and_macros_is_bounded() -> None:
    text = '{% set x %}{% for i in range(100000) %}{{ "y" * 1000 }}{% endfor %}{% endset %}'
    assert render_error(text) == "line 1: the template produced more than 1,048,576 characters"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{{ "x" * 10**9 }}', "a str longer than 262,144"),
        ("{{ [1] * 10**9 }}", "a list longer than 100,000"),
        ("{{ 2 ** 100000 }}", "a number larger than 65,536 bits"),
        ('{{ "%999999999d" % 1 }}', "a format width above 10,000"),
        ('{{ "%*d" % (10, 1) }}', "'*' widths are not supported in % formatting"),
        ('{{ "%s"|format(1) }}{{ "%0999999d"|format(1) }}', "a format width above 10,000"),
        ('{{ "{:>999999999}".format(1) }}', "a format width above 10,000"),
        ('{{ "{:{w}}".format(1, w=10**9) }}', "nested fields in a format spec are not supported"),
        ('{{ "x"|center(10**9) }}', "center(): width above 262,144"),
        ('{{ "x".ljust(10**9) }}', "str.ljust() would be longer than 262,144 characters"),
        (
            '{{ ("a" * 1000)|replace("a", "b" * 1000) }}',
            "the replaced string would be longer than 262,144 characters",
        ),
        (
            '{{ ("x" * 200000).join(["a", "b", "c"]) }}',
            "the joined string would be longer than 262,144 characters",
        ),
        (
            '{{ (["y" * 1000] * 1000)|join }}',
            "a value would print longer than 262,144 characters",
        ),
        (
            '{% set ns = namespace(s="ab") %}{% for i in range(40) %}'
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "a string joined with '~' would be longer than 262,144 characters",
        ),
        (
            '{% set a = ["x" * 1000] * 1000 %}{{ [a, a, a] }}',
            "a value would print longer than 262,144 characters",
        ),
    ],
)
def test_operations_that_multiply_sizes_are_refused_before_they_allocate(
    text: str, reason: str
) -> None:
    assert render_error(text) == f"line 1: {reason}"


def test_exponential_recursion_is_stopped_by_the_clock_or_the_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(templates, "MAX_RENDER_SECONDS", 0.2)  # the deadline
    monkeypatch.setattr(template_limits, "MAX_RENDER_SECONDS", 0.2)  # the message
    text = (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    )
    assert render_error(text) in (
        "line 1: rendering took longer than 0.2 s",
        "line 1: more than 250,000 loop iterations and calls",
    )


def test_endless_recursion_fails_safely() -> None:
    text = "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"
    assert render_error(text) == "line 1: nested too deeply (recursion)"


def test_a_recursive_loop_counts_its_iterations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(template_limits, "MAX_STEPS", 1000)
    nested = (
        "{% for x in [[1, [2]], [3]] recursive %}{{ x if x is number else loop(x) }}{% endfor %}"
    )
    assert render(nested) == "123"
    text = (
        "{% for x in range(100) recursive %}"
        "{% if loop.depth < 3 %}{{ loop(range(100)) }}{% endif %}{% endfor %}"
    )
    assert render_error(text) == "line 1: more than 1,000 loop iterations and calls"
