"""connector/ stays clean under the project's ruff rules and mypy, as configured in pyproject.toml."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing_in_the_connector():
    done = _run("ruff", "check", "--output-format", "concise", "connector/")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing_in_the_connector():
    # other packages are checked by their own gates: only the connector's errors count here
    done = _run("mypy", "--follow-imports", "silent", "connector/")
    assert done.returncode == 0, done.stdout + done.stderr
