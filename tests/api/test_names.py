"""Canonical names (issue 16): automation names are saved NFKC-normalized and stripped, names
that hide or reorder text are refused with 400, and uniqueness applies to the canonical
name, so look-alikes cannot coexist. The API, the list's name filter and direct domain
callers (the CLI, seeding) all follow the one rule."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest

from shared.accounts import authz
from shared.automations import service as automations
from shared.errors import Invalid
from tests import factories as f
from tests.api.conftest import Api
from webhook_gateway.api.schemas.base import HIDDEN_RANGES, NAME_PATTERN


def _create(api: Api, name: str) -> tuple[int, dict[str, object]]:
    resp = api.post("/automations", {"name": name, "organization_id": str(api.world.org_a.id)})
    return resp.status_code, resp.get_json()


def test_look_alikes_cannot_coexist(api: Api) -> None:
    """The issue's five names: one is created, the rest are 409 or 400."""
    status, body = _create(api, "deploys")
    assert status == 201 and body["name"] == "deploys"

    status, body = _create(api, "\uff44eploys")  # full-width d: NFKC makes it "deploys"
    assert (status, body["code"], body["field"]) == (409, "name_taken", "name"), body

    status, body = _create(api, "deploys\u200b")
    assert (status, body["field"]) == (400, "name"), body
    assert body["message"].startswith("name: must not contain zero-width characters")
    assert "U+200B" in body["message"]

    status, body = _create(api, "\u202edeploys")
    assert (status, body["field"]) == (400, "name"), body
    assert "bidirectional control characters" in body["message"] and "U+202E" in body["message"]

    # NFKC composes e + combining acute into é: a different name from "deploys"…
    status, body = _create(api, "de\u0301ploys")
    assert status == 201 and body["name"] == "d\u00e9ploys", body
    # …but the same as the precomposed spelling
    status, body = _create(api, "d\u00e9ploys")
    assert (status, body["code"]) == (409, "name_taken"), body

    names = [a["name"] for a in api.get("/automations").get_json()["items"]]
    assert sorted(names) == ["deploys", "d\u00e9ploys"]


@pytest.mark.parametrize(
    ("char", "reason"),
    [
        ("\t", "control characters"),
        ("\n", "control characters"),
        ("\x7f", "control characters"),
        ("\x85", "control characters"),  # NEL: whitespace to str.strip, but inside a name
        ("\u200c", "zero-width characters"),
        ("\u200d", "zero-width characters"),
        ("\u2060", "zero-width characters"),
        ("\ufeff", "zero-width characters"),
        ("\u180e", "zero-width characters"),
        ("\u202a", "bidirectional control characters"),
        ("\u2066", "bidirectional control characters"),
        ("\u2069", "bidirectional control characters"),
        ("\u200e", "bidirectional control characters"),
        ("\u200f", "bidirectional control characters"),
        ("\u061c", "bidirectional control characters"),
        ("\u00ad", "invisible format characters"),  # soft hyphen (Cf)
        ("\U000e0041", "invisible format characters"),  # a tag character (Cf)
    ],
)
def test_hidden_characters_are_refused_naming_field_and_reason(
    api: Api, char: str, reason: str
) -> None:
    status, body = _create(api, f"dep{char}loys")
    assert (status, body["code"], body["field"]) == (400, "validation_error", "name"), body
    assert body["message"].startswith(f"name: must not contain {reason}"), body
    assert f"U+{ord(char):04X} at position 4" in body["message"], body
    # a rename is held to the same rule
    auto = api.create_automation("plain")
    resp = api.patch(f"/automations/{auto['id']}", {"name": f"x{char}y"})
    assert resp.status_code == 400 and resp.get_json()["field"] == "name", resp.get_json()


def test_surrounding_whitespace_is_still_stripped(api: Api) -> None:
    status, body = _create(api, "  \u3000spaced out\u00a0\n")
    assert status == 201 and body["name"] == "spaced out", body


def test_rename_is_normalized_and_unique_on_the_canonical_name(api: Api) -> None:
    first = api.create_automation("deploys")
    second = api.create_automation("alpha")
    resp = api.patch(f"/automations/{second['id']}", {"name": "\uff42\uff45\uff54\uff41"})
    assert resp.status_code == 200 and resp.get_json()["name"] == "beta"
    resp = api.patch(f"/automations/{second['id']}", {"name": "\uff44eploys"})
    assert resp.status_code == 409 and resp.get_json()["code"] == "name_taken"
    # renaming an automation to its own name in another spelling is not a conflict
    resp = api.patch(f"/automations/{first['id']}", {"name": " \uff44eploys "})
    assert resp.status_code == 200 and resp.get_json()["name"] == "deploys"


def test_name_that_grows_past_the_limit_when_normalized_is_400(api: Api) -> None:
    # U+FDFA is one character that NFKC spells out in 18
    status, body = _create(api, "\ufdfa" * 12)
    assert (status, body["field"]) == (400, "name"), body
    assert "at most 200 characters once normalized" in body["message"]


def test_list_name_filter_is_normalized(api: Api) -> None:
    made = api.create_automation("deploys")
    for spelling in ("\uff44eploys", "  deploys ", "deploys"):
        items = api.get("/automations", query_string={"name": spelling}).get_json()["items"]
        assert [a["id"] for a in items] == [made["id"]], spelling
    # a filter with a character no saved name can hold is no error: it matches nothing new
    resp = api.get("/automations", query_string={"name": "deploys\u200b"})
    assert resp.status_code == 200 and resp.get_json()["items"] == []


def test_rows_saved_before_the_rule_are_kept_and_still_found(api: Api) -> None:
    """Existing rows are not rewritten; the filter still finds one by its exact text."""
    legacy = f.automation(
        api.session,
        api.clock,
        api.world.owner.user,
        organization_id=api.world.org_a.id,
        name="\uff44eploys",
    )
    api.session.flush()
    items = api.get("/automations", query_string={"name": "\uff44eploys"}).get_json()["items"]
    assert [a["name"] for a in items] == ["\uff44eploys"]
    made = api.create_automation("deploys")  # the canonical name is still free
    items = api.get("/automations", query_string={"name": "\uff44eploys"}).get_json()["items"]
    assert {a["id"] for a in items} == {str(legacy.id), made["id"]}


def test_the_domain_applies_the_rule_for_every_caller(api: Api) -> None:
    principal = authz.authenticate(api.session, api.clock, api.world.owner.token)
    assert principal is not None
    org = api.world.org_a.id
    row = automations.create_automation(
        api.session, api.clock, principal, automations.NewAutomation(org, " \uff44eploys ")
    )
    assert row.name == "deploys"
    with pytest.raises(Invalid) as err:
        automations.create_automation(
            api.session, api.clock, principal, automations.NewAutomation(org, "\u202edeploys")
        )
    assert err.value.field == "name" and err.value.status == 400
    with pytest.raises(Invalid):
        automations.update_automation(
            api.session, api.clock, principal, row.id, {"name": "a\u200bb"}
        )
    updated = automations.update_automation(
        api.session,
        api.clock,
        principal,
        row.id,
        {"name": "\uff52\uff45\uff4c\uff45\uff41\uff53\uff45\uff53"},
    )
    assert updated.name == "releases"


def test_hidden_ranges_are_every_control_and_format_character() -> None:
    """The table behind the documented pattern matches what canonical_name refuses."""
    table = {p for a, b in HIDDEN_RANGES for p in range(a, b + 1)}
    expected = {
        p for p in range(sys.maxunicode + 1) if unicodedata.category(chr(p)) in ("Cc", "Cf")
    }
    assert table == expected


def test_documented_pattern_agrees_with_the_rule() -> None:
    pattern = re.compile(NAME_PATTERN)
    for a, b in HIDDEN_RANGES:
        for point in (a, b):
            name = f"a{chr(point)}b"
            assert not pattern.search(name), hex(point)
            with pytest.raises(ValueError):
                automations.canonical_name(name)
    for name in ("deploys", "d\u00e9ploys", "ci / cd", "\u65e5\u672c"):
        assert pattern.search(name) and automations.canonical_name(name) == name
