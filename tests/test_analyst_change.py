"""An analyst's correct change to the shipped rules keeps the suite green.

On a copy of rules/: one new guard rule with its YAML test, then every policy check the suite and
the command line run on a rules folder. Beside it, the guard in conftest.py that keeps every other
Python test off the shipped rules/ (they use tests/fixtures/).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import ROOT, SHIPPED_RULES

from cli import main

NEW_RULE = """
  - id: CUS-90
    kind: guard
    says: the closed account C999 takes no new sales orders
    source: [seed-004]
    actions: [salesorder.create]
    deny_when: {customer_code: C999}
"""

NEW_TEST = """
- name: CUS-90 an order for the closed account C999 is denied
  base: order
  action: salesorder.create
  input: {resource: {customer: {code: C999}}}
  expect: {allow: false, obligations: [], rules: [CUS-90]}
"""


@pytest.mark.shipped_policy
def test_a_new_guard_rule_with_its_yaml_test_passes_every_policy_check(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(SHIPPED_RULES, rules)
    with (rules / "customers.yaml").open("a") as f:
        f.write(NEW_RULE)
    with (rules / "tests" / "customers.yaml").open("a") as f:
        f.write(NEW_TEST)

    runner = CliRunner()
    checked = runner.invoke(main, ["check", str(rules)])
    assert checked.exit_code == 0, checked.output
    tested = runner.invoke(main, ["test-rules", str(rules)])
    assert tested.exit_code == 0, tested.output
    assert "0 failed" in tested.output and "(100%)" in tested.output
    suite = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_policy_yaml.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "ORDERGATE_POLICY_DIR": str(rules)})
    assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-3000:]
    assert "CUS-90" in (rules / "customers.yaml").read_text() and " passed" in suite.stdout


def test_a_test_not_marked_shipped_policy_cannot_read_the_shipped_rules():
    with pytest.raises(RuntimeError, match="use a fixture policy"):
        (SHIPPED_RULES / "pricing.yaml").read_text()
