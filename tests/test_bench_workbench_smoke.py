"""Smoke run of bench/workbench.py: it fills a log, requests every page, checks each answer and
prints the timings against its baseline (no time is asserted)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_workbench_bench_runs_every_page_and_prints_its_baseline():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "workbench.py"), "--quick"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "filled the log with 2,000 decisions" in out.stdout
    assert "GET /v1/versions (baseline)" in out.stdout
    for page in ("versions", "log: PRC-09 denials", "log: one order number", "decision + replay", "try: decide"):
        assert f"\n{page} " in out.stdout, page
