"""The analysts' YAML tests of the shipped rules/, each as one pytest item, plus rule coverage.

This is the only place the Python suite looks at the shipped policy. ``ORDERGATE_POLICY_DIR``
points it at another folder (tests/test_analyst_change.py runs it on an edited copy of rules/).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import SHIPPED_RULES

import engine

pytestmark = pytest.mark.shipped_policy

POLICY_DIR = Path(os.environ.get("ORDERGATE_POLICY_DIR", SHIPPED_RULES))
FILES = engine.read_folder(POLICY_DIR)


def _report():
    policy = engine.load_policy_set(POLICY_DIR)
    return engine.run_tests(policy, FILES, display_root="rules/")


REPORT = _report()


@pytest.mark.parametrize("result", REPORT.results, ids=[f"{r.location.file}:{r.location.line}" for r in REPORT.results])
def test_policy_case(result):
    assert result.passed, f"{result.location}: {result.name}\n" + "\n".join(result.problems)


def test_every_shipped_rule_is_exercised():
    assert REPORT.results, "no YAML tests found"
    assert REPORT.uncovered == []
