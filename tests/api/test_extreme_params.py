"""No 5xx from query parameters (issue 16): every query parameter of every list route, as
the OpenAPI document describes them (so a new list route is covered without touching this
file), gets extreme and malformed values, and the answer is never a 5xx; a 4xx is always
JSON ``{code, message}``. Plus the defects this found, pinned as plain regression tests."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from shared import accounts
from shared.cli.timestamps import parse_timestamp
from shared.models import AutomationEvent
from tests.api.conftest import Api, Fixture
from webhook_gateway.api.openapi import build_openapi

pytestmark = pytest.mark.filterwarnings("ignore")

#: the kinds of cursor the lists write (shared/infra/db/pagination.py), for forged cursors
CURSOR_KINDS = ("automations", "events", "chats", "tokens", "users", "triggers")
EXTREME_TIMES = (
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-14:00",  # after year 9999 in UTC
    "9999-12-31T23:59:59.999999-00:01",
    "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00-23:59",
    "9999-12-31T23:59:59+23:59",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
)
MALFORMED_TIMES = (
    "0000-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00+99:99",
    "2026-01-01T00:00:00",  # no offset
    "2026-01-01",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "9" * 30,
    "-9999999999999999999",
)
#: odd, but accepted (extra fraction digits are truncated; numbers are Unix times)
ODD_TIMES = ("2026-01-01T00:00:00.99999999999Z", "-62135596800", "253402300800", "0", "-1")
NUMBERS = ("0", "-0", "-1", "9" * 5000, "-" + "9" * 5000, "1e3", "1.0", "1.5", "0x10", " 5")
NUMBERS_MORE = ("+5", "\u0663", "\uff11", "2147483648", "-2147483649", "18446744073709551616")
TEXTS = (
    "",
    " ",
    "\x00",
    "\x01\x02\x1f\x7f",
    "a\x00b",
    "\u202edeploys",
    "\ufeff",
    "\u200b",
    "a" * 20_000,
    "\U0001f600" * 500,
    "\ufffd",
    "null",
    "true",
    "[]",
    "{}",
    "%",
    "\\",
    "'\"; --",
)
#: already percent-encoded: lone surrogates (CESU-8), beyond U+10FFFF, overlong NUL, bad
#: escapes, invalid UTF-8
RAW_ENCODED = (
    "%ED%A0%80",
    "%ED%BF%BF",
    "%ED%A0%80%ED%B0%80",
    "%F4%90%80%80",
    "%C0%80",
    "%FF%FE",
    "%00",
    "%",
    "%zz",
    "%E2%80%AE",
    "%C3",
)
BOOLS = ("true", "false", "TRUE", "1", "0", "yes", "on", "2", "tru", "t")


def _uuid_spellings(value: uuid.UUID) -> list[str]:
    text = str(value)
    return [
        text,
        text.upper(),
        "{" + text + "}",
        "urn:uuid:" + text,
        value.hex,
        text + "\x00",
        text[:-1],
        "00000000-0000-0000-0000-000000000000",
        "g" * 36,
        "not-a-uuid",
    ]


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _forged_cursors(kinds: tuple[str, ...]) -> list[str]:
    """Cursors a client could write by hand: each is valid base64url of (mostly) JSON."""
    some_id = str(uuid.uuid4())
    out = []
    for kind in kinds:
        for value in (
            [EXTREME_TIMES[0], some_id],
            [EXTREME_TIMES[1], some_id],
            ["2026-01-01T00:00:00+00:00", 5],
            ["2026-01-01T00:00:00+00:00", None],
            ["2026-01-01T00:00:00+00:00", ["x"]],
            [12, some_id],
            [None, None],
            ["2026-01-01T00:00:00", some_id],
            "ab",
            {"a": 1},
            [],
        ):
            out.append(_cursor(json.dumps({"k": kind, "v": value}).encode()))
    out += [
        _cursor(b"[" * 700),
        _cursor(b'{"k":' * 150),
        _cursor(b"\xff\xfe\x00"),
        _cursor(b"1e999999"),
        _cursor(json.dumps({"k": "events"}).encode()),
        "A",
        "",
        "-" * 1000,
        "_" * 1001,
    ]
    return out


def _offset_time(moment: datetime, minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{moment.isoformat()}{sign}{hours:02d}:{mins:02d}"


def _enc(text: str) -> str:
    """Percent-encode text for a query string; lone surrogates as their (invalid) UTF-8."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _flat(doc: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema and its alternatives / array items, with references resolved."""
    schema = _resolve(doc, schema)
    out = [schema]
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
        out += _flat(doc, branch)
    if "items" in schema:
        out += _flat(doc, schema["items"])
    return out


def values_for(doc: dict[str, Any], path: str, param: dict[str, Any]) -> st.SearchStrategy[str]:
    """Encoded values for one query parameter: generic extremes for every parameter, and
    (more often) ones aimed at its documented type, which get past the type check and reach
    the code behind it."""
    generic = st.one_of(
        st.sampled_from(TEXTS).map(_enc),
        st.text(max_size=40).map(_enc),
        st.sampled_from(RAW_ENCODED),
        st.sampled_from(NUMBERS).map(_enc),
    )
    aimed: list[st.SearchStrategy[str]] = []
    if param["name"] == "cursor":  # opaque, but client input all the same
        # the lists name their cursors after the noun their path ends with
        aimed.append(st.sampled_from(_forged_cursors((path.rsplit("/", 1)[-1],))))
        aimed.append(st.sampled_from(_forged_cursors(CURSOR_KINDS)))
    for part in _flat(doc, param["schema"]):
        if "enum" in part:
            aimed.append(st.sampled_from([str(v) for v in part["enum"]]).map(_enc))
        kind, fmt = part.get("type"), part.get("format")
        if kind == "integer":
            aimed.append(st.integers().map(str))
            aimed.append(st.sampled_from(NUMBERS + NUMBERS_MORE).map(_enc))
        elif kind == "boolean":
            aimed.append(st.sampled_from(BOOLS))
        elif fmt == "uuid":
            aimed.append(st.uuids().flatmap(lambda u: st.sampled_from(_uuid_spellings(u))))
        elif fmt == "date-time":
            aimed.append(st.sampled_from(EXTREME_TIMES).map(_enc))
            aimed.append(st.sampled_from(MALFORMED_TIMES + ODD_TIMES).map(_enc))
            aimed.append(
                st.builds(_offset_time, st.datetimes(), st.integers(-1439, 1439)).map(_enc)
            )
        elif kind == "string" and "pattern" in part:
            aimed.append(st.from_regex(part["pattern"], fullmatch=True).map(_enc))
    return st.one_of(*aimed, generic)


def list_routes(doc: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Every GET operation that takes query parameters (the lists), with its parameters."""
    routes = []
    for path, ops in doc["paths"].items():
        params = ops.get("get", {}).get("parameters", [])
        if any(p["in"] == "query" for p in params):
            routes.append((path, params))
    return routes


DOC = build_openapi()
ROUTES = list_routes(DOC)


def test_every_list_route_is_covered(api: Api) -> None:
    """The served document is the one the cases below come from, and it has the lists."""
    served = api.client.get("/api/v1/openapi.json").get_json()
    assert [path for path, _ in list_routes(served)] == [path for path, _ in ROUTES]
    assert {p for p, _ in ROUTES} >= {
        "/api/v1/automations",
        "/api/v1/automations/{automation_id}/events",
        "/api/v1/automations/{automation_id}/triggers",
        "/api/v1/chats",
        "/api/v1/tokens",
        "/api/v1/users",
    }


def _ids(api: Api, seeded: Fixture) -> dict[str, str]:
    spare, _ = accounts.create_token(api.session, api.clock, api.world.site.user.email, ["*"])
    event_id = api.session.scalar(
        select(AutomationEvent.id).where(AutomationEvent.automation_id == seeded.automation.id)
    )
    return {
        "automation_id": str(seeded.automation.id),
        "trigger_id": seeded.webhook["id"],
        "chat_id": str(seeded.chat.id),
        "event_id": str(event_id),
        "user_id": str(api.world.other.user.id),
        "token_id": str(spare.id),
    }


def check_answer(resp: Any, query: str) -> None:
    assert resp.status_code < 500, (query[:300], resp.get_data(as_text=True)[:500])
    assert resp.mimetype == "application/json", (query[:300], resp.status_code)
    body = json.loads(resp.get_data())
    if resp.status_code >= 400:
        assert isinstance(body, dict), (query[:300], body)
        assert isinstance(body.get("code"), str) and body["code"], (query[:300], body)
        assert isinstance(body.get("message"), str) and body["message"], (query[:300], body)
    else:
        assert resp.status_code == 200 and "items" in body, (query[:300], body)


@pytest.mark.parametrize(("path", "params"), ROUTES, ids=[path for path, _ in ROUTES])
def test_extreme_query_values_never_5xx(
    api: Api, seeded: Fixture, path: str, params: list[dict[str, Any]]
) -> None:
    """50 generated queries per list: 1 to 5 parameters (repeats included), sometimes an
    unknown or malformed name; the caller is a site-admin, so every list answers."""
    ids = _ids(api, seeded)
    url = path
    for param in params:
        if param["in"] == "path":
            url = url.replace("{" + param["name"] + "}", ids.get(param["name"], str(uuid.uuid4())))
    query_params = [p for p in params if p["in"] == "query"]
    pair = st.one_of(
        *[st.tuples(st.just(_enc(p["name"])), values_for(DOC, path, p)) for p in query_params],
        st.tuples(
            st.sampled_from(["bogus", "%00", "%ED%A0%80", "limit%5B%5D", "", "LIMIT"]),
            st.sampled_from(["1", "", "%00"]),
        ),
    )
    pairs = st.lists(pair.filter(lambda kv: kv[0] != ""), min_size=1, max_size=5)
    assert query_params

    @given(query=pairs)
    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(query: list[tuple[str, str]]) -> None:
        qs = "&".join(f"{name}={value}" for name, value in query)
        resp = api.client.get(url, query_string=qs, headers=api.world.site.headers)
        check_answer(resp, qs)

    run()


# The defects found, pinned ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize("value", EXTREME_TIMES[:3])
def test_time_out_of_range_in_utc_is_400_naming_the_parameter(
    api: Api, seeded: Fixture, name: str, value: str
) -> None:
    """It used to be an unhandled OverflowError (500) when bound as UTC."""
    path = f"/automations/{seeded.automation.id}/events"
    resp = api.get(path, query_string={name: value})
    assert resp.status_code == 400, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["field"] == name and body["message"].startswith(f"{name}: out of range")
    # the bulk replay's filters are the same type
    resp = api.post(f"/automations/{seeded.automation.id}/events/replay", {name: value})
    assert resp.status_code == 400 and resp.get_json()["field"] == name


def test_times_at_the_edge_of_the_range_work(api: Api, seeded: Fixture) -> None:
    path = f"/automations/{seeded.automation.id}/events"
    query = {"since": "0001-01-01T00:00:00-01:00", "until": "9999-12-31T23:59:59+14:00"}
    resp = api.get(path, query_string=query)
    assert resp.status_code == 200 and len(resp.get_json()["items"]) == 3


def test_malformed_times_are_400_naming_the_parameter(api: Api, seeded: Fixture) -> None:
    path = f"/automations/{seeded.automation.id}/events"
    for value in MALFORMED_TIMES:
        resp = api.get(path, query_string={"until": value})
        assert resp.status_code == 400, (value, resp.get_data(as_text=True))
        assert resp.get_json()["field"] == "until", value


@pytest.mark.parametrize(
    "value",
    [
        ["0001-01-01T00:00:00+01:00", "{id}"],  # overflowed when bound (500)
        ["2026-01-01T00:00:00+00:00", 5],  # uuid.UUID(5): AttributeError (500)
        ["2026-01-01T00:00:00+00:00", ["x"]],
        [5, "{id}"],
    ],
)
def test_forged_cursors_are_400_invalid_cursor(api: Api, seeded: Fixture, value: Any) -> None:
    value = [str(uuid.uuid4()) if v == "{id}" else v for v in value]
    cursor = _cursor(json.dumps({"k": "events", "v": value}).encode())
    resp = api.get(f"/automations/{seeded.automation.id}/events", query_string={"cursor": cursor})
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.get_json()["code"] == "invalid_cursor"


def test_cli_timestamps_are_utc_and_refuse_overflow() -> None:
    """The CLI sends what it parsed; a time out of range in UTC is refused before that."""
    assert parse_timestamp("2026-12-06T01:04:30+02:00") == datetime(
        2026, 12, 5, 23, 4, 30, tzinfo=UTC
    )
    assert parse_timestamp("2026-12-06T01:04:30+02:00").utcoffset() is not None
    for text in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"):
        with pytest.raises(ValueError, match="out of range"):
            parse_timestamp(text)
