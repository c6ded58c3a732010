"""The analyst command line: check, test, decide — exit codes and messages."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from cli import main

MINI = Path(__file__).parent / "fixtures" / "mini"


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def test_check_ok():
    r = run("check", str(MINI))
    assert r.exit_code == 0 and "ok: 10 rules; shop (4 actions)" in r.output


def test_check_lists_every_error_and_exits_1(tmp_path):
    folder = tmp_path / "rules"
    shutil.copytree(MINI, folder)
    p = folder / "policy.yaml"
    p.write_text(
        p.read_text().replace("when: {member: true}", "when: {membr: true}").replace("[skip_price]", "[skip_prize]")
    )
    r = run("check", str(folder))
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert lines[0].endswith("policy.yaml:80:12: compile_unknown_fact: unknown fact `membr`")
    assert lines[1] == "    help: did you mean `member`?"
    assert lines[2].endswith("policy.yaml:81:19: compile_unknown_obligation: unknown obligation `skip_prize`")
    assert lines[-1] == f"2 errors in {folder}"


def test_test_command_reports_coverage():
    r = run("test-rules", str(MINI))
    assert r.exit_code == 0 and "10 passed, 0 failed" in r.output and "rule coverage: 10/10 (100%)" in r.output


def test_test_command_prints_failures_readably(tmp_path):
    folder = tmp_path / "rules"
    shutil.copytree(MINI, folder)
    t = folder / "tests" / "mini.yaml"
    t.write_text(
        t.read_text().replace("expect: {allow: false, rules: [G-1], obligations: []}", "expect: {allow: true}")
    )
    r = run("test-rules", str(folder))
    assert r.exit_code == 1
    assert "FAIL " in r.output and "G-1 a shipped order cannot change" in r.output
    assert "allow: expected True, got False" in r.output
    assert "9 passed, 1 failed" in r.output


def test_test_command_lists_rules_no_test_fires(tmp_path):
    folder = tmp_path / "rules"
    shutil.copytree(MINI, folder)
    t = folder / "tests" / "mini.yaml"
    text = t.read_text()
    start = text.index("  - name: M-1")
    end = text.index("  - name: M-2")
    t.write_text(text[:start] + text[end:])
    r = run("test-rules", str(folder))
    assert r.exit_code == 1
    assert "9 passed, 0 failed" in r.output and "rule coverage: 9/10 (90%)" in r.output
    assert "rules no test makes fire: M-1" in r.output


def test_decide_from_stdin_with_exit_codes():
    body = {"context": {"system": "shop"}, "subject": {"is_member": False},
            "resource": {"order": {"status": "shipped", "item_count": 1}}}
    r = run("decide", "order.update", "--input", "-", "--rules", str(MINI), input=json.dumps(body))
    out = json.loads(r.output)
    assert r.exit_code == 2 and out["allow"] is False and out["rules"] == ["G-1"] and "trace" not in out
    r = run("decide", "order.nope", "--input", "-", "--rules", str(MINI), "--explain", input=json.dumps(body))
    out = json.loads(r.stdout)  # stderr may add a did-you-mean
    assert r.exit_code == 3 and out["error"]["code"] == "unknown_action" and out["trace"] == []
    body["resource"]["order"]["status"] = "draft"
    r = run("decide", "order.update", "--input", "-", "--rules", str(MINI), "--explain", input=json.dumps(body))
    assert r.exit_code == 0 and json.loads(r.output)["trace"]


def test_decide_rejects_unreadable_input():
    r = run("decide", "order.update", "--input", "-", "--rules", str(MINI), input="{not: [json")
    assert r.exit_code == 2 and "neither JSON nor YAML" in r.output


def test_plan_prints_the_generated_code_of_one_action():
    r = run("plan", "shop", "order.create", str(MINI))
    assert r.exit_code == 0
    assert r.output.startswith("def decide_order_create(inp, tr):\n")
    assert "f_count = " in r.output and "_run_rows(TABLE_sizes, vals, tr, fired, den, V)" in r.output
    compile(r.output, "plan", "exec")   # what is printed is the Python that runs


def test_plan_of_an_unknown_action_exits_2():
    r = run("plan", "shop", "order.nothing", str(MINI))
    assert r.exit_code == 2 and "action `order.nothing` is not in the catalogue of `shop`" in r.output
