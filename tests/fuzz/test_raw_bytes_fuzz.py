"""A short fuzzing run over raw bytes (issue 7 item 2): gjson paths and the ingress payload
preparation (``shared.events.payload.prepare_payload``).

With atheris installed (``pip install atheris``), the test runs this file as a coverage-guided
libFuzzer session in a subprocess for :data:`RUN_SECONDS` (any exception other than the allowed
ones, or an input slower than :data:`INPUT_TIMEOUT_S`, fails it); without atheris, hypothesis
feeds random bytes to the same target. A longer local run::

    .venv/bin/python tests/fuzz/test_raw_bytes_fuzz.py -max_total_time=600 -timeout=5

Properties:

* ``gjson.get(document, path)`` (path and document both cut from the input bytes) returns a
  Result or raises PathError; so do ``validate`` and the Result's ``string()``/``raw``;
* ``prepare_payload(body)`` never raises and its stored value is always storable as
  PostgreSQL jsonb: serialisable without NaN/Infinity, valid UTF-8 (no lone surrogates), no
  NUL, nested at most ``MAX_STORED_DEPTH`` levels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
RUN_SECONDS = int(os.environ.get("AUTOMATIONS_FUZZ_SECONDS", "20"))
INPUT_TIMEOUT_S = 5


def _depth_and_nul(value: Any) -> tuple[int, bool]:
    """Nesting depth of ``value`` and whether any key or string holds a NUL character."""
    deepest, nul = 0, False
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, str):
            nul = nul or "\x00" in v
        elif isinstance(v, (list, dict)):
            deepest = max(deepest, d)
            if isinstance(v, dict):
                nul = nul or any("\x00" in k for k in v)
                stack.extend((c, d + 1) for c in v.values())
            else:
                stack.extend((c, d + 1) for c in v)
    return deepest, nul


def check_payload(body: bytes) -> None:
    from shared.events.payload import MAX_STORED_DEPTH, prepare_payload

    for cap in (256, 1 << 20):
        prepared = prepare_payload(body, cap)
        for value in (prepared.stored, prepared.pending):
            if value is None and prepared.pending is None:
                continue
            depth, nul = _depth_and_nul(value)
            assert depth <= MAX_STORED_DEPTH and not nul, (depth, nul)
            text = json.dumps(value, allow_nan=False, ensure_ascii=False)
            text.encode("utf-8")  # strict: a lone surrogate raises


def check_path(data: bytes) -> None:
    from shared.lib import gjson
    from shared.lib.gjson import PathError

    split = data.find(b"\n")
    if split < 0:
        path_bytes, doc = data, b"{}"
    else:
        path_bytes, doc = data[:split], data[split + 1 :]
    path = path_bytes.decode("utf-8", "surrogateescape")
    try:
        gjson.validate(path)
    except PathError:
        pass
    for document in (doc, doc.decode("utf-8", "replace")):
        try:
            r = gjson.get(document, path)
            r.string()
            _ = r.raw, r.exists, r.type
        except PathError:
            pass


def one_input(data: bytes) -> None:
    if not data:
        return
    selector, rest = data[0], data[1:]
    if selector % 2:
        check_payload(rest)
    else:
        check_path(rest)


# ---------------------------------------------------------------------------
# pytest entry points


def _atheris_available() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _atheris_available(), reason="atheris is not installed")
def test_atheris_run(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seeds = [
        b'\x00a.b\n{"a":{"b":1}}',
        b'\x00#(a==1)#\n[{"a":1}]',
        b"\x00@dig:a|@reverse\n" + b"[" * 50 + b"]" * 50,
        b'\x01{"a":"\\u0000","b":"\\ud800"}',
        b"\x01" + b"[" * 600 + b"]" * 600,
        b"\x011e400",
    ]
    for i, seed in enumerate(seeds):
        (corpus / f"seed{i}").write_bytes(seed)
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__)),
            f"-max_total_time={RUN_SECONDS}",
            f"-timeout={INPUT_TIMEOUT_S}",
            "-rss_limit_mb=2048",
            "-max_len=4096",
            "-print_final_stats=1",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS + 120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    elapsed = time.monotonic() - started
    output = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"fuzzing found a failure ({elapsed:.0f}s):\n{output}"
    assert "stat::number_of_executed_units" in output, output


@settings(
    max_examples=400,
    deadline=None,  # bounded by CPU time in the test (wall time flakes on a loaded machine)
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(
    data=st.one_of(
        st.binary(max_size=4096),
        st.builds(
            lambda sel, path, doc: bytes([sel]) + path + b"\n" + doc,
            st.integers(0, 1),
            st.binary(max_size=64),
            st.binary(max_size=1024),
        ),
        st.builds(
            lambda n, inner: b"\x01" + b"[" * n + inner + b"]" * n,
            st.integers(0, 2000),
            st.sampled_from([b"", b'"\\u0000"', b'"\\udc00"', b"1e999", b"-0", b'{"a":1}']),
        ),
    )
)
def test_hypothesis_raw_bytes(data: bytes) -> None:
    """Always runs (also where atheris is unavailable): the same target over random bytes."""
    started = time.thread_time()
    one_input(data)
    elapsed = time.thread_time() - started
    assert elapsed < INPUT_TIMEOUT_S, f"one input took {elapsed:.2f}s of CPU"


def main() -> None:
    import atheris

    with atheris.instrument_imports(include=["shared"]):
        pass
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
