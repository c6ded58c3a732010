"""The analysts' YAML tests in rules/tests/, each as one pytest item, plus rule coverage."""
from __future__ import annotations

import pytest

import engine
from conftest import RULES_DIR

FILES = engine.read_folder(RULES_DIR)


def _report():
    policy = engine.load_policy_set(RULES_DIR)
    return engine.run_tests(policy, FILES, display_root="rules/")


REPORT = _report()


@pytest.mark.parametrize("result", REPORT.results, ids=[f"{r.location.file}:{r.location.line}" for r in REPORT.results])
def test_policy_case(result):
    assert result.passed, f"{result.location}: {result.name}\n" + "\n".join(result.problems)


def test_every_shipped_rule_is_exercised():
    assert REPORT.results, "no YAML tests found"
    assert REPORT.uncovered == []


def test_every_rule_of_the_spec_is_shipped():
    ids = {r.id for r in engine.load_policy_set(RULES_DIR).rules}
    expected = ({f"PRC-{i:02d}" for i in range(1, 16)} | {f"STG-{i:02d}" for i in range(1, 12)}
                | {f"STG-{i:02d}" for i in range(20, 32)} | {f"CUS-{i:02d}" for i in range(1, 15)}
                | {f"IC-{i:02d}" for i in range(0, 14)})
    assert ids == expected
