"""Smoke run of bench/verify_log.py: it fills a log, verifies it and prints the ratio to its baseline."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_verify_bench_runs_and_prints_its_baseline():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "verify_log.py"), "--entries", "3000"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "read rows (baseline)" in out.stdout and "verify / read:" in out.stdout
