"""``ordergate demo`` runs every scenario end to end and shows denials leaving the order data unchanged."""
from __future__ import annotations

from click.testing import CliRunner
from conftest import O2C_RULES

import engine
from cli import main


def test_demo_runs_every_system_end_to_end(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    result = CliRunner().invoke(main, ["demo", "--database", url, "--rules", str(O2C_RULES)])
    assert result.exit_code == 0, result.output
    out = result.output
    for title in ("QAD CRM -> QAD EA", "Dynamics 365 Sales", "Autotask", "QAD EA: customers", "Dynamics AX"):
        assert f"== {title}" in out
    assert "opportunity stage = invoiced" in out
    says = {r.id: r.says for r in engine.load_policy_set(O2C_RULES).rules}
    assert f"because IC-02: {says['IC-02']}" in out and f"because STG-07: {says['STG-07']}" in out
    assert "durable_rules" not in out  # words a business reader has no use for
    assert "order data unchanged: NO" not in out
    assert out.count("order data unchanged: yes") == out.count("decision: DENY")
    assert "no mutation" not in out
    assert "mutations applied" in out


def test_demo_refuses_a_store_with_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    assert CliRunner().invoke(main, ["demo", "--database", url, "--rules", str(O2C_RULES)]).exit_code == 0
    again = CliRunner().invoke(main, ["demo", "--database", url, "--rules", str(O2C_RULES)])
    assert again.exit_code == 2 and "empty order book" in again.output
