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
