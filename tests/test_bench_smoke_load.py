"""bench/load.py still runs: a tiny load against a real `ordergate serve`, no timing asserted."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from api.testing import ALLOWED, SHOP, write_rules

ROOT = Path(__file__).resolve().parent.parent


def test_load_benchmark_runs_end_to_end(tmp_path):
    rules = write_rules(tmp_path / "rules", SHOP)  # stable rules: the smoke test must not follow rules/ churn
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load.py"), "--seconds", "0.5", "--clients", "1", "--workers", "1",
         "--threads", "2", "--batch-size", "5", "--rules", str(rules),
         "--database", f"sqlite:///{tmp_path / 'load.sqlite'}", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    summary = json.loads(completed.stdout)
    assert [r["mode"] for r in summary["results"]] == ["single", "batch"]
    for result in summary["results"]:
        assert result["requests"] > 0
        assert result["errors"] == 0
        assert result["allows"] == 0  # the requests name d365_sales, which the shop rules do not know
    # single: each a 422 decision error; batch: 200 with an error per item
    assert set(summary["results"][0]["statuses"]) == {"422"}
    assert set(summary["results"][1]["statuses"]) == {"200"}
    assert summary["results"][1]["decisions"] == 5 * summary["results"][1]["requests"]
    assert summary["decisions_logged"] == summary["decisions_sent"] > 0


def test_load_benchmark_log_off_and_sync_workers_run(tmp_path):
    """--log-off (bench/serve_nolog.py, comparison only) and gunicorn's sync workers still run."""
    rules = write_rules(tmp_path / "rules", SHOP)
    for extra in (["--log-off"], ["--server", "gunicorn", "--worker-class", "sync"]):
        completed = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "load.py"), "--seconds", "0.5", "--clients", "1", "--workers", "1",
             "--threads", "2", "--batch-size", "5", "--rules", str(rules),
             "--database", f"sqlite:///{tmp_path / ('load-' + extra[-1] + '.sqlite')}", "--json", *extra],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
        summary = json.loads(completed.stdout)
        assert all(r["requests"] > 0 and r["errors"] == 0 for r in summary["results"])
        if extra == ["--log-off"]:
            assert summary["decision_log"] is False and summary["decisions_logged"] is None
        else:
            assert summary["worker_class"] == "sync"
            assert summary["decisions_logged"] == summary["decisions_sent"] > 0


def test_front_benchmark_runs_with_wrk(tmp_path):
    """bench/front.py (wrk; .ci/run installs it): bare Flask and ordergate under granian, one second each."""
    rules = write_rules(tmp_path / "rules", SHOP)
    requests = tmp_path / "requests.json"
    requests.write_text(json.dumps([ALLOWED]))
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "front.py"), "--seconds", "1", "--servers", "granian",
         "--connections", "2", "--workers", "1", "--threads", "2", "--batch-size", "5", "--rules", str(rules),
         "--requests", str(requests), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads(completed.stdout)["results"]["granian"]
    for app in ("bare", "ordergate"):
        for mode in ("single", "batch"):
            assert results[app][mode]["requests"] > 0
            assert results[app][mode]["non_2xx"] == 0 and results[app][mode]["socket_errors"] == 0
    assert results["ordergate"]["log"]["logged"] >= results["ordergate"]["log"]["answered_at_least"] > 0
