"""How long `ordergate` commands take from start to exit (a fresh interpreter each time).

Runs `--help`, `versions`, `log`, `audit verify` (on an up-to-date SQLite store holding the fixture
policy) and `check` (the fixture policy), each ``--rounds`` times. With ``--baseline ROOT`` (another
checkout, e.g. ``git worktree add /tmp/base <commit>``) the same commands run against that code
too, alternating with this checkout's, and the ratio of the medians is printed.

    python bench/cli_start.py --rounds 10 --baseline /tmp/base
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "o2c"


def run(root: Path, args: list[str], cwd: Path) -> float:
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)})
    elapsed = time.perf_counter() - began
    if proc.returncode not in (0, 1):
        raise SystemExit(f"`ordergate {' '.join(args)}` failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with (same commands, alternating)")
    parser.add_argument("--quick", action="store_true", help="two rounds (the smoke test)")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    roots = {"this checkout": ROOT}
    if args.baseline:
        roots = {"baseline": args.baseline.resolve(), **roots}
    with tempfile.TemporaryDirectory(prefix="og-cli-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'db.sqlite'}"
        run(ROOT, ["publish", str(FIXTURE), "-m", "bench", "--database", url], Path(tmp))
        commands = {"--help": ["--help"], "versions": ["versions", "--database", url],
                    "log": ["log", "--limit", "5", "--database", url],
                    "audit verify": ["audit", "verify", "--database", url], "check": ["check", str(FIXTURE)]}
        times = {(name, cmd): [] for name in roots for cmd in commands}
        for _ in range(rounds):
            for cmd, cmd_args in commands.items():
                for name, root in roots.items():
                    times[name, cmd].append(run(root, cmd_args, Path(tmp)))
    print(f"ordergate start-to-exit, median of {rounds} runs, load average {os.getloadavg()[0]:.2f}")
    for cmd in commands:
        cells = "  ".join(f"{name} {statistics.median(times[name, cmd]):.3f} s" for name in roots)
        ratio = ""
        if "baseline" in roots:
            before, after = statistics.median(times["baseline", cmd]), statistics.median(times["this checkout", cmd])
            ratio = f"  ratio {before / after:.2f}x"
        print(f"  {cmd:13s} {cells}{ratio}")


if __name__ == "__main__":
    main()
