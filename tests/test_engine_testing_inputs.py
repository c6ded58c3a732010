"""A YAML test's `remove` applies to that test only, never to the base the next test merges over."""
from __future__ import annotations

from test_engine_whatif import LIMIT_POLICY

import engine

TESTS = """\
base:
  context: {system: shop}
  subject: {vip: false}
  resource: {amount: 10}
tests:
  - name: without an amount the order cannot be decided
    action: order.create
    remove: [resource.amount]
    expect: {allow: false, error: {code: missing_fact, field: resource.amount}}
  - name: the next test still has the base amount
    action: order.create
    expect: {allow: true, rules: [L-2]}
"""


def test_remove_does_not_reach_into_the_base_of_the_next_test():
    files = {"shop.yaml": LIMIT_POLICY, "tests/shop.yaml": TESTS}
    report = engine.run_tests(engine.compile_files(files), files)
    assert [r.passed for r in report.results] == [True, True], [r.problems for r in report.results]
    assert report.results[0].input == {"context": {"system": "shop"}, "subject": {"vip": False}, "resource": {}}
    assert report.results[1].input["resource"] == {"amount": 10}
