"""The whole project stays linted, typed, simple and written once.

- ruff, with the rules chosen in pyproject.toml ([tool.ruff]), on every Python file (tests and bench too);
- mypy: strict on engine/ (tests/test_engine_gates.py), the default checks on api/, store/, cli/, connector/;
- radon: no function in engine/, store/, api/, cli/, connector/ worse than grade C;
- no block of six or more lines written twice in two files outside tests/ (pylint's duplicate-code check).

The tools are in the `dev` extras; each test prints what to fix when it fails.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from radon.complexity import cc_rank, cc_visit

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "store", "api", "cli", "connector")
# the shipped code whose copies count; tests repeat set-ups on purpose and are left out
NOT_TESTS = (*PACKAGES, "bench")
# a migration is the schema as it was at that step: it repeats the tables of its day on purpose,
# and must not import the current schema (store/schema.py), which later steps change
FROZEN = ("store/migrations/versions",)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=600)


def _python_files(*folders: str) -> list[str]:
    files = [path.relative_to(ROOT).as_posix() for folder in folders for path in (ROOT / folder).rglob("*.py")]
    return sorted(f for f in files if not f.startswith(FROZEN) and "/__pycache__/" not in f)


def test_ruff_is_clean_on_every_python_file():
    result = _run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_the_service_store_cli_and_connector(tmp_path):
    result = _run("mypy", "--cache-dir", str(tmp_path), "api", "store", "cli", "connector")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_function_is_worse_than_radon_grade_c():
    worse = []
    for rel in _python_files(*PACKAGES):
        for block in cc_visit((ROOT / rel).read_text(encoding="utf-8")):
            if cc_rank(block.complexity) > "C":
                worse.append(f"{rel}:{block.lineno} {block.fullname} {cc_rank(block.complexity)} ({block.complexity})")
    assert worse == []


def test_no_block_of_six_lines_is_written_twice_outside_the_tests():
    # pylint compares every pair of files, ignoring comments, docstrings, imports and signatures
    files = _python_files(*NOT_TESTS) + ["setup.py"]
    result = _run("pylint", "--disable=all", "--enable=duplicate-code", "--min-similarity-lines=6",
                  "--score=n", "--persistent=n", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_duplicate_gate_finds_a_copied_block(tmp_path):
    """The gate can fail: a six-line block copied into a second file is reported."""
    block = "".join(f"    total = total * {i} + len(items[{i}:])\n" for i in range(6))
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text(f"def {name[0]}(items):\n    total = 0\n{block}    return total\n")
    result = subprocess.run([sys.executable, "-m", "pylint", "--disable=all", "--enable=duplicate-code",
                             "--min-similarity-lines=6", "--score=n", "--persistent=n", "a.py", "b.py"],
                            cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode != 0 and "duplicate-code" in result.stdout, result.stdout + result.stderr
