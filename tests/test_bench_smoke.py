"""The benchmarks in bench/ still run: each at tiny sizes (`--quick`), with its agreement check.

No timing is asserted: these runs only prove that the benchmarks work, that ordergate, the
hand-written baselines and every installed peer agree with the oracle, and that a disagreement
aborts the run. The peer engines are an optional extra (`.[bench]`); when they are missing the
peer benchmark must still run ordergate and the Python baselines and say why each peer was skipped.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
# The benchmarks compare ordergate with a hand-written copy of one pricing policy: the smoke
# runs give them the fixture copy, so that a correct change to the shipped rules/ keeps them green.
PRICING = ROOT / "tests" / "fixtures" / "o2c" / "pricing.yaml"
PEERS = {"zen-engine": "zen", "cedarpy": "cedarpy", "regopy": "regopy", "durable_rules": "durable",
         "rule-engine": "rule_engine"}


def run(args: list[str], env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "ORDERGATE_BENCH_PRICING": str(PRICING), **(env or {})})


def test_decide_quick_runs_and_agrees():
    proc = run([str(BENCH / "decide.py"), "--quick"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Agreement: ordergate and hand-written give the same decision on all 200 timed requests" in out
    assert "ordergate / hand-written:" in out
    assert "Agreement: every size gives the oracle's outcome" in out
    assert "100 rows / 10 rows:" in out
    assert "| 100 | " in out  # the compile/memory row of the child process


def test_peers_quick_runs_every_installed_peer_and_reports_the_others():
    proc = run([str(BENCH / "peers.py"), "--quick"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Agreement before timing: all" in out and "equals the hand-written one on all of them" in out
    for name, module in PEERS.items():
        if importlib.util.find_spec(module) is not None:
            assert f"\n| {name} | " in out, f"{name} is installed but was not timed"
        else:
            assert f"- skipped {name}: not installed" in out
    assert "| ordergate | 10 | " in out and "| python index by group (floor) | 10 | " in out


def test_peers_without_the_peer_engines_runs_ordergate_and_the_baselines(tmp_path):
    # Modules of the same names that fail to import stand for an install without `.[bench]`.
    for module in PEERS.values():
        (tmp_path / f"{module}.py").write_text("raise ImportError('hidden by the smoke test')\n")
    proc = run([str(BENCH / "peers.py"), "--quick"], env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for name in PEERS:
        assert f"- skipped {name}: not installed (ImportError: hidden by the smoke test)" in out
    assert "all 3 cases give the oracle's outcome on all 256 combinations" in out
    for case in ("ordergate", "python if-chain (hand-written, decision dict)", "python dict lookup (floor)"):
        assert f"\n| {case} | " in out


@pytest.mark.parametrize("broken", ["handwritten", "ordergate"])
def test_a_disagreement_aborts_with_exit_2(broken):
    # One case answers `calculate` where the table says `skip`: the run must stop before timing.
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(BENCH)!r})
        import workloads, peers
        real = workloads.sop_{broken}
        def wrong(*a):
            f = real(*a)
            return lambda x: "calculate" if x == ("salesorder", "update", True, True, False) else f(x)
        workloads.sop_{broken} = wrong
        sys.exit(peers.main(["--quick", "--no-scale", "--peers", "zen-engine"]))
    """)
    proc = run(["-c", script])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "DISAGREE" in proc.stdout and "not timing" in proc.stdout


def test_yaml_load_quick_compares_the_two_load_paths():
    proc = run([str(BENCH / "yaml_load.py"), "--quick"])
    if importlib.util.find_spec("engine._fastload") is None:
        assert proc.returncode == 1 and "is not built" in proc.stdout, proc.stdout + proc.stderr
        return
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Agreement: both paths give the same documents (100 rows" in proc.stdout
    assert "| 100 rows, extents |" in proc.stdout


def test_hotspots_quick_profiles_every_workload():
    proc = run([str(BENCH / "hotspots.py"), "--quick", "--top", "3"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("pricing", "rows-decide", "rows-compile"):
        assert f"## {name} (" in proc.stdout


def test_verify_quick_runs_and_prints_its_figures():
    proc = run([str(BENCH / "verify.py"), "--quick"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "| shipped rules/ | " in out and "| 100-row first-hit table | " in out
    assert "- shipped rules/: check " in out and "× compile" in out


def test_verify_log_runs_every_verifier_on_the_same_log_and_measures_their_memory():
    proc = run([str(BENCH / "verify_log.py"), "--entries", "300", "--rounds", "1", "--memory"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "audit verify, 300 entries on sqlite" in out and "read rows (floor)" in out
    assert "verify --jobs 1" in out and "verify --jobs 2" in out and "peak RSS, verify --jobs 2: " in out


def test_impact_quick_replays_the_whole_log():
    proc = run([str(BENCH / "impact.py"), "--quick"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "log: 20,000 decisions over 5 systems" in proc.stdout
    assert "impact report (read, decide on the candidate, compare, group):" in proc.stdout


@pytest.mark.slow
def test_watch_latency_quick_serves_each_edit():
    proc = run([str(BENCH / "watch_latency.py"), "--quick"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "this checkout  median" in proc.stdout


def test_cli_start_quick_runs_every_command():
    proc = run([str(BENCH / "cli_start.py"), "--quick"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(f"  {cmd}" in proc.stdout for cmd in ("--help", "versions", "log", "audit verify", "check"))


@pytest.mark.parametrize("group", ["1", "7"])
def test_log_write_runs_and_every_answered_record_is_logged(group):
    proc = run([str(BENCH / "log_write.py"), "--seconds", "0.5", "--processes", "2", "--threads", "2",
                "--group", group, "--work-us", "50"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = proc.stdout.strip().splitlines()[-1].split()
    assert row[:2] == ["this", "checkout"] and int(row[2].replace(",", "")) > 0 and row[-2] == "0"


def test_log_layouts_quick_appends_every_row_of_every_layout():
    proc = run([str(BENCH / "log_layouts.py"), "--quick"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[2:]}
    assert set(lines) == {"current", "rules-without-rowid", "no-prev-hash", "key-runs", "id-only"}
    # fewer B-trees, fewer WAL frames a commit: the layouts differ in what they write, not only in time
    assert float(lines["id-only"][5]) < float(lines["key-runs"][5]) < float(lines["current"][5])
