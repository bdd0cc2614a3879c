"""``$regex`` on RE2 (shared.triggers.regex_cost): what is refused and why, the Python spellings
translated, and the cost model's inputs. (The backtracking-cost scanner this module held
before issue 16 is gone: RE2 never backtracks.)"""

from __future__ import annotations

import pytest

from shared.triggers.regex_cost import (
    MAX_REGEX_INPUT,
    MAX_REGEX_PATTERN,
    RE2_UNSUPPORTED,
    RegexPlan,
    regex_plan,
    search_cost_ms,
)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", "uses a backreference"),
        (r"(?P<x>a)(?P=x)", "uses a backreference"),
        ("a(?=b)", "uses a lookaround"),
        ("a(?!b)", "uses a lookaround"),
        ("(?<=a)b", "uses a lookaround"),
        ("(?<!a)b", "uses a lookaround"),
        ("(?>ab)", "uses an atomic group or a possessive quantifier"),
        ("a*+", "uses an atomic group or a possessive quantifier"),
        ("(?(1)a|b)", "uses a conditional group"),
    ],
)
def test_unsupported_constructs_are_named(pattern: str, reason: str) -> None:
    plan = regex_plan(pattern)
    assert isinstance(plan, str)
    assert plan.startswith(reason) and RE2_UNSUPPORTED in plan


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("(", "does not compile with RE2: missing )"),
        ("[", "does not compile with RE2: missing ]"),
        ("\\", "does not compile with RE2: trailing \\"),
        ("a{1001}", "does not compile with RE2: invalid repetition size"),
        ("(?x) a", "does not compile with RE2"),
        ("\\pL{1000}", "is too large"),
        ("\ud800", "does not compile with RE2"),
        ("a" * (MAX_REGEX_PATTERN + 1), "longer than 1024 characters"),
    ],
)
def test_malformed_or_oversized_patterns_are_refused(pattern: str, fragment: str) -> None:
    plan = regex_plan(pattern)
    assert isinstance(plan, str) and fragment in plan


def test_plans_are_compiled_once_and_carry_the_program_size() -> None:
    plan = regex_plan("^refs/tags/v\\d+")
    assert isinstance(plan, RegexPlan) and plan.program_size > 0
    assert regex_plan("^refs/tags/v\\d+") is plan
    assert plan.regex.search(b"refs/tags/v12") is not None


def test_the_cost_model_is_linear_in_program_size_and_input() -> None:
    assert search_cost_ms(10, MAX_REGEX_INPUT) == 10 * search_cost_ms(1, MAX_REGEX_INPUT)
    assert search_cost_ms(10, 2000) == 2 * search_cost_ms(10, 1000)
    assert search_cost_ms(1, 1_000_000) == 25.0  # 25 ns per instruction and byte


def test_the_product_uses_no_private_regex_modules() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for name in ("shared/triggers/filters.py", "shared/triggers/regex_cost.py"):
        text = (root / name).read_text()
        for private in ("re._parser", "re._constants", "sre_parse", "sre_constants", "re2._re2"):
            assert private not in text, (name, private)
