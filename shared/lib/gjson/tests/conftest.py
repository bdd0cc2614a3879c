"""Counts the conformance vectors' outcomes and prints them in the terminal summary:
``gjson conformance: 390/391 vectors passed, 1 known gaps, 0 failed``.

The count is kept in the process that prints the summary.  Under pytest-xdist that is the
controlling process, which collects nothing: it sees these hooks (and the workers' reports)
only when this file is one of pytest's *initial* conftests, i.e. when the run names this
library or a path inside it (``pytest shared/lib/gjson -n 2``) or runs the default
``testpaths``, which list ``shared/lib/gjson/tests``.  A run over a parent directory only
(``pytest shared/lib -n 2``) passes the tests but prints no count.
"""

from __future__ import annotations

import pytest

_gjson_vectors = {"passed": 0, "known gaps": 0, "failed": 0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "test_gjson_conformance.py::test_vector[" not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if hasattr(report, "wasxfail"):
            _gjson_vectors["known gaps"] += 1
        elif report.passed:
            _gjson_vectors["passed"] += 1
        elif report.failed:
            _gjson_vectors["failed"] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ran = sum(_gjson_vectors.values())
    if ran:
        terminalreporter.write_line(
            f"gjson conformance: {_gjson_vectors['passed']}/{ran} vectors passed, "
            f"{_gjson_vectors['known gaps']} known gaps, {_gjson_vectors['failed']} failed"
        )
