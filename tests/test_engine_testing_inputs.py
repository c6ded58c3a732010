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


def test_an_unchanged_test_file_is_parsed_once_across_runs(monkeypatch):
    """Publishing again after a rule file changed (serve --watch) does not parse and validate the
    unchanged test files again; a changed test file is read anew."""
    from engine import load

    read: list[str] = []
    load_text = load.load_text
    monkeypatch.setattr(load, "load_text",
                        lambda path, text, **options: read.append(path) or load_text(path, text, **options))
    tests = TESTS.replace("the next test", "a test kept between runs")  # text no other test has used
    files = {"shop.yaml": LIMIT_POLICY, "tests/shop.yaml": tests}
    policy = engine.compile_files(files)
    first = engine.run_tests(policy, files)
    edited = dict(files, **{"shop.yaml": LIMIT_POLICY + "\n# a comment: the rules changed\n"})
    second = engine.run_tests(engine.compile_files(edited), edited)
    assert [r.passed for r in first.results] == [r.passed for r in second.results] == [True, True]
    assert read.count("tests/shop.yaml") == 1
    edited["tests/shop.yaml"] = tests + "\n"
    engine.run_tests(engine.compile_files(edited), edited)
    assert read.count("tests/shop.yaml") == 2
