"""engine/ stays typed, linted and simple: mypy --strict, ruff, and no function worse than radon grade C.

The settings are in pyproject.toml ([tool.mypy], [tool.ruff]); the tools are in the `dev` extras.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from radon.complexity import cc_rank, cc_visit

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_mypy_strict_is_clean_on_engine(tmp_path):
    result = _run("mypy", "--strict", "--cache-dir", str(tmp_path), "engine")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean_on_engine():
    result = _run("ruff", "check", "--no-cache", "engine")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_engine_function_is_worse_than_radon_grade_c():
    worse = []
    for path in sorted(ENGINE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for block in cc_visit(path.read_text(encoding="utf-8")):
            if cc_rank(block.complexity) > "C":
                worse.append(f"{rel}:{block.lineno} {block.fullname} {cc_rank(block.complexity)} ({block.complexity})")
    assert worse == []
