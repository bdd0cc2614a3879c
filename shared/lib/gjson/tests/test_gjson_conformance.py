"""Runs every gjson conformance vector in ``gjson_vectors.json`` (next to this file).

Each vector: ``doc`` (JSON text), ``path``, and gjson's ``exists``, ``raw``,
``str`` and ``type``.  We compare ``exists``; the parsed value of ``raw``
(strings when either side is not JSON); and ``str`` against
``Result.string()`` - for JSON-typed results (objects/arrays) ``str`` is
gjson's raw text, whose whitespace comes from the source document, so it is
compared as parsed JSON (our engine emits compact JSON by design).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.lib.gjson import get

VECTORS_FILE = Path(__file__).resolve().with_name("gjson_vectors.json")

if not VECTORS_FILE.is_file():
    # a failure, not a skip: the vectors are part of the library and must not go missing quietly
    pytest.fail(f"gjson conformance vectors not found at {VECTORS_FILE}", pytrace=False)

VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))

# Vector index -> why the engine cannot reproduce it.  Marked xfail(strict=True)
# so that a gap that starts passing is noticed and removed from this table.
KNOWN_GAPS: dict[int, str] = {
    278: (
        "@tostr on an object: gjson embeds the source text verbatim, whitespace "
        'included ("{\\"first\\": \\"Tom\\", ...}"); this engine evaluates parsed '
        "values and serialises compact JSON"
    ),
}


def _as_json(text: str) -> tuple[str, Any]:
    try:
        return ("json", json.loads(text))
    except ValueError:
        return ("text", text)


def _check(vec: dict[str, Any]) -> None:
    res = get(vec["doc"], vec["path"])
    assert res.exists is vec["exists"], f"exists: got {res.exists}, want {vec['exists']}"
    if not vec["exists"]:
        assert res.raw == ""
        assert res.string() == ""
        return
    assert _as_json(res.raw) == _as_json(vec["raw"]), f"raw: got {res.raw!r}, want {vec['raw']!r}"
    if vec["type"] == "JSON":
        assert _as_json(res.string()) == _as_json(vec["str"]), (
            f"str: got {res.string()!r}, want {vec['str']!r}"
        )
    else:
        assert res.string() == vec["str"], f"str: got {res.string()!r}, want {vec['str']!r}"
    assert res.type == vec["type"], f"type: got {res.type}, want {vec['type']}"


def _params() -> list[Any]:
    out = []
    for i, vec in enumerate(VECTORS):
        marks = []
        if i in KNOWN_GAPS:
            marks.append(pytest.mark.xfail(reason=KNOWN_GAPS[i], strict=True))
        out.append(pytest.param(i, id=f"{i}-{vec['feature']}-{vec['path'][:40]}", marks=marks))
    return out


@pytest.mark.parametrize("index", _params())
def test_vector(index: int) -> None:
    _check(VECTORS[index])  # the pass count is printed by conftest.py


def test_core_and_webhook_vectors_have_no_gaps() -> None:
    for i in KNOWN_GAPS:
        assert VECTORS[i]["feature"] not in ("basic", "webhook"), i


def test_known_gaps_are_few() -> None:
    assert len(KNOWN_GAPS) <= len(VECTORS) * 0.05
