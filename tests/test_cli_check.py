"""`ordergate check`: findings of every stage in one run, --strict, --format json, exit codes."""
from __future__ import annotations

import json

from click.testing import CliRunner
from verify_support import FIXTURES

from cli import main

MINI = FIXTURES.parent / "mini"


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_warnings_pass_unless_strict():
    r = run("check", str(MINI))
    assert r.exit_code == 0
    assert "warning: table_value_unmentioned" in r.output and "; 1 warning" in r.output
    strict = run("check", "--strict", str(MINI))
    assert strict.exit_code == 1 and strict.output.strip().endswith(f"1 warning in {MINI}")


def test_errors_exit_1_with_witness_and_help():
    r = run("check", str(FIXTURES / "shadowed"))
    assert r.exit_code == 1
    assert "policy.yaml:35:9: row_shadowed: row `F-3` of table `discounts` never applies" in r.output
    assert "    help: remove row `F-3`, or move it above row `F-1`" in r.output
    assert r.output.strip().endswith(f"1 error, 2 warnings in {FIXTURES / 'shadowed'}")


def test_json_lists_every_finding_with_its_witness():
    r = run("check", "--format", "json", str(FIXTURES / "overlap"))
    assert r.exit_code == 1
    out = json.loads(r.output)
    assert out["ok"] is False and out["errors"] == 6 and out["warnings"] == 0
    first = next(f for f in out["findings"] if f["code"] == "table_overlap")
    assert first == {"severity": "error", "code": "table_overlap", "location": first["location"],
                     "message": first["message"], "help": first["help"], "rules": ["U-1", "U-2"],
                     "witness": {"region": "north", "tier": "platinum", "amount": 500, "channel": "web"}}
    assert first["location"].endswith("overlap/policy.yaml:34:9")
    gap = next(f for f in out["findings"] if f["code"] == "table_gap")
    assert set(gap["suggested_row"]) == {"region", "tier", "amount", "channel"}
    clean = json.loads(run("check", "--format", "json", str(MINI)).output)
    assert clean["ok"] is True and clean["policy_version"].startswith("sha256:")


def test_usage_errors_exit_2(tmp_path):
    assert run("check", str(tmp_path / "missing")).exit_code == 2
    assert run("check", "--format", "xml", str(MINI)).exit_code == 2
    assert "Exit status: 0 when nothing is wrong" in run("check", "--help").output


def _where(text: str, needle: str, offset: int = 0) -> str:
    """line:column (1-based) of ``needle`` in ``text`` (plus ``offset`` characters)."""
    at = text.index(needle) + offset
    return f"{text.count(chr(10), 0, at) + 1}:{at - text.rfind(chr(10), 0, at)}"


def test_check_names_every_unknown_system_action_fact_and_obligation_of_the_tests_once(tmp_path):
    import shutil

    from conftest import O2C_RULES

    rules = tmp_path / "rules"
    shutil.copytree(O2C_RULES, rules)
    pricing = rules / "tests" / "pricing.yaml"
    customers = rules / "tests" / "customers.yaml"
    p, c = pricing.read_text(), customers.read_text()
    # one typo each: a fact in the file's base (used by every test of the file), an action, a fact
    # in a test's input, an obligation, a `remove` path, a system in a named base
    p = p.replace("subject: {is_integration_user: false}}\ntests:", "subject: {is_integraton_user: false}}\ntests:", 1)
    p = p.replace("  action: opportunity.update\n", "  action: oportunity.update\n", 1)
    expect = "}}\n  expect:\n    allow: true\n    obligations: "
    p = p.replace(f"subject: {{is_integration_user: true{expect}[compute_price]",
                  f"subject: {{is_integration_usr: true{expect}[compute_prise]", 1)
    c = c.replace("remove: [resource.customer.code]", "remove: [resource.customer.cod]", 1)
    c = c.replace("  ship: {context: {system: qad_erp}", "  ship: {context: {system: qad_erpp}", 1)
    pricing.write_text(p)
    customers.write_text(c)
    r = run("check", str(rules))
    assert r.exit_code == 1
    shown = f"{rules.as_posix()}/tests/"
    expected = [
        f"{shown}customers.yaml:{_where(c, 'qad_erpp')}: test_unknown_system: unknown system `qad_erpp`",
        f"{shown}customers.yaml:{_where(c, 'resource.customer.cod]')}: test_unknown_fact: `resource.customer.cod` "
        "is not a fact of system `qad_erp`",
        f"{shown}pricing.yaml:{_where(p, 'is_integraton_user')}: test_unknown_fact: `subject.is_integraton_user` "
        "is not a fact this system declares",
        f"{shown}pricing.yaml:{_where(p, 'is_integration_usr')}: test_unknown_fact: `subject.is_integration_usr` "
        "is not a fact this system declares",
        f"{shown}pricing.yaml:{_where(p, 'compute_prise')}: test_unknown_obligation: system `d365_sales` declares "
        "no obligation `compute_prise`",
        f"{shown}pricing.yaml:{_where(p, 'oportunity.update')}: test_unknown_action: system `d365_sales` has no "
        "action `oportunity.update`",
    ]
    errors = [line for line in r.output.splitlines() if ": test_unknown_" in line]
    assert errors == expected, r.output  # sorted by file, line and column
    hints = [line.strip() for line in r.output.splitlines() if line.startswith("    help:")]
    assert hints == ["help: did you mean `qad_erp`?", "help: did you mean `resource.customer.code`?",
                     "help: did you mean `is_integration_user`?", "help: did you mean `is_integration_user`?",
                     "help: did you mean `compute_price`?", "help: did you mean `opportunity.update`?"]
    assert r.output.strip().endswith(f"6 errors in {shown}")


def test_a_test_may_send_an_undeclared_fact_only_when_it_lists_it(tmp_path):
    import shutil

    from conftest import O2C_RULES

    rules = tmp_path / "rules"
    shutil.copytree(O2C_RULES, rules)
    assert run("check", str(rules)).exit_code == 0
    pricing = rules / "tests" / "pricing.yaml"
    pricing.write_text(pricing.read_text().replace("  undeclared: [subject.extra]\n", ""))
    r = run("check", str(rules))
    assert r.exit_code == 1 and "test_unknown_fact: `subject.extra` is not a fact this system declares" in r.output
