"""How long `ordergate serve --watch` takes to serve an edited cell of a rule table.

Starts `ordergate serve --watch` (granian, --workers N, SQLite) on a copy of the fixture policy,
then edits one cell of the pricing table and its YAML test, back and forth, and times each edit
from the save to the first decision answered with the new obligation. With ``--baseline ROOT``
(another checkout, e.g. ``git worktree add /tmp/base <commit>``) the same rounds run against that
code too, alternating with this checkout's, and the ratio of the medians is printed.

    python bench/watch_latency.py --rounds 8 --workers 2
    python bench/watch_latency.py --baseline /tmp/base --quick
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "o2c"
# each state: (the cell's last value, the test's expected obligation)
STATES = (("calculate]", "compute_price"), ("skip when integ]", "skip_price_calculation"))
sys.path.insert(0, str(ROOT / "tests"))
from test_serve_watch import ROW, TEST, free_port, obligations  # noqa: E402  (the edit the test makes)


class Served:
    """One `serve --watch` of the code at ``root`` on its own copy of the fixture policy."""

    def __init__(self, root: Path, workers: int, scratch: Path) -> None:
        self.rules = scratch / "rules"
        shutil.copytree(root / FIXTURE.relative_to(ROOT), self.rules)  # each checkout's own copy of the fixture
        self.rule_text = (self.rules / "pricing.yaml").read_text()
        self.test_text = (self.rules / "tests" / "pricing.yaml").read_text()
        if ROW not in self.rule_text or TEST not in self.test_text:
            raise SystemExit("the fixture's pricing table changed: update ROW and TEST in bench/watch_latency.py")
        self.port = free_port()
        self.log = (scratch / "serve.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from cli import main; main()", "serve", "--watch", "--port", str(self.port),
             "--workers", str(workers), "--rules", str(self.rules), "--database", f"sqlite:///{scratch / 'db.sqlite'}"],
            cwd=scratch, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(root)})
        self._wait(lambda: obligations(self.port) == ["compute_price"], 120)
        self.state = 0

    def _wait(self, predicate, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if predicate():
                    return
            except OSError:
                pass
            time.sleep(0.01)
        raise SystemExit(f"timed out after {timeout} s; see {self.log.name}")

    def edit(self) -> float:
        """Flip the cell (and its test); seconds from the save until the new obligation is served."""
        self.state = 1 - self.state
        cell, expected = STATES[self.state]
        row = ROW.removesuffix("calculate]") + cell
        start = self.test_text.index(TEST)
        end = self.test_text.index("\n\n", start)
        block = self.test_text[start:end].replace("obligations: [compute_price]", f"obligations: [{expected}]")
        (self.rules / "tests" / "pricing.yaml").write_text(self.test_text[:start] + block + self.test_text[end:])
        (self.rules / "pricing.yaml").write_text(self.rule_text.replace(ROW, row))
        began = time.monotonic()
        self._wait(lambda: obligations(self.port) == [expected], 60)
        return time.monotonic() - began

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with (same rounds, alternating)")
    parser.add_argument("--quick", action="store_true", help="two rounds, one worker (the smoke test)")
    args = parser.parse_args()
    rounds, workers = (2, 1) if args.quick else (args.rounds, args.workers)
    roots = {"this checkout": ROOT}
    if args.baseline:
        roots = {"baseline": args.baseline.resolve(), **roots}
    with tempfile.TemporaryDirectory(prefix="og-watch-bench-") as tmp:
        servers = {}
        try:
            for i, (name, root) in enumerate(roots.items()):
                scratch = Path(tmp) / str(i)
                scratch.mkdir()
                servers[name] = Served(root, workers, scratch)
            times: dict[str, list[float]] = {name: [] for name in servers}
            for _ in range(rounds):
                for name, served in servers.items():
                    times[name].append(served.edit())
        finally:
            for served in servers.values():
                served.stop()
    load = os.getloadavg()[0]
    print(f"serve --watch, {workers} worker(s), {rounds} edits each, load average {load:.2f}")
    for name, values in times.items():
        print(f"  {name:14s} median {statistics.median(values):.2f} s  max {max(values):.2f} s  "
              f"({', '.join(f'{v:.2f}' for v in values)})")
    if "baseline" in times:
        ratio = statistics.median(times["baseline"]) / statistics.median(times["this checkout"])
        print(f"  ratio baseline/this checkout: {ratio:.2f}x")


if __name__ == "__main__":
    main()
