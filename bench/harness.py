"""Timing, memory and table printing shared by the benchmarks.

Method (the same for every benchmark, so figures can be compared):

* every case is a one-argument callable; the inputs are prepared before timing;
* **batch timing**: one `perf_counter_ns` pair around a batch of inputs; "median" and "p99 (batch)"
  are over the per-batch means per decision (the timer costs nothing per decision);
* **per-call timing**: each call timed on its own; p50/p99 over single decisions (each includes
  about 0.05-0.1 µs of timer and loop, see the no-op row);
* a warm-up batch per case, then `rounds` rounds that **interleave** the cases (their order
  rotates every round) so that drifting background load hits all of them alike; GC stays on.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

perf = time.perf_counter_ns


@dataclass
class Stats:
    name: str
    batch_means: list = field(default_factory=list)   # ns per decision, one per batch
    calls: list = field(default_factory=list)         # ns, one per timed call

    @property
    def median(self) -> float:
        return statistics.median(self.batch_means) / 1000

    @property
    def p99_batch(self) -> float:
        return percentile(self.batch_means, 99) / 1000

    @property
    def p50_call(self) -> float:
        return percentile(self.calls, 50) / 1000

    @property
    def p99_call(self) -> float:
        return percentile(self.calls, 99) / 1000


def percentile(values: Sequence[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def noop(_x: Any) -> None:
    return None


def measure(cases: dict[str, Callable[[Any], Any] | tuple[Callable[[Any], Any], Sequence[Any]]],
            inputs: Sequence[Any] = (), *, rounds: int = 3, budget: float = 1.0, batch: int | None = None,
            min_batches: int = 3, progress: Callable[[str], None] | None = None) -> dict[str, Stats]:
    """Time every case, interleaved over `rounds`; `budget` seconds per case in all.

    A case is a callable (run on `inputs`) or `(callable, its own inputs)`. Half of each round's
    share goes to batches, half to per-call timing. A batch is `batch` inputs (default: all of
    them), taken cyclically, so every case sees its inputs in the same order.
    """
    plans = {}
    for name, case in cases.items():
        fn, xs = case if isinstance(case, tuple) else (case, inputs)
        xs = list(xs)
        size = min(batch or len(xs), len(xs))
        plans[name] = (fn, [[xs[(b * size + i) % len(xs)] for i in range(size)]
                            for b in range(max(1, len(xs) // size))])
    stats = {name: Stats(name) for name in cases}
    for fn, batches in plans.values():  # warm-up: one batch each
        for x in batches[0]:
            fn(x)
    share = budget / rounds / 2
    names = list(cases)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            (fn, batches), st = plans[name], stats[name]
            deadline, n, b = perf() + share * 1e9, 0, r
            while n < min_batches or perf() < deadline:
                xs = batches[b % len(batches)]
                t0 = perf()
                for x in xs:
                    fn(x)
                st.batch_means.append((perf() - t0) / len(xs))
                n, b = n + 1, b + 1
            deadline, calls = perf() + share * 1e9, st.calls
            while True:
                for x in batches[b % len(batches)]:
                    t0 = perf()
                    fn(x)
                    calls.append(perf() - t0)
                b += 1
                if perf() >= deadline:
                    break
            if progress:
                progress(f"round {r + 1}/{rounds} {name}: {st.median:.2f} µs")
    return stats


def fmt(x: float) -> str:
    if x != x:  # nan
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def ratio(x: float, ref: float) -> str:
    if not ref or x != x or ref != ref:
        return "-"
    r = x / ref
    return f"{r:,.0f}×" if r >= 100 else f"{r:.1f}×" if r >= 10 else f"{r:.2f}×"


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def engine_revision() -> str:
    """The last commit that changed engine/, and whether engine/ had uncommitted changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "log", "-1", "--format=%h", "--", "engine"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "engine"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head or 'unknown'}{' + uncommitted engine/ changes' if dirty else ''}"


def machine_line() -> str:
    load = os.getloadavg()
    return (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs; "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start; "
            f"CPython {sys.version.split()[0]}; engine/ at commit {engine_revision()}")


def rss_bytes() -> int:
    """Resident set size of this process (psutil when installed, else /proc)."""
    try:
        import psutil
        return psutil.Process().memory_info().rss
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_child(script: str, args: Sequence[str], timeout: float, code: str | None = None) -> dict:
    """Run `python script --child ARGS...` and return the JSON object of its last output line.

    Compile time and memory are measured in a fresh process each, so that one engine's
    allocations and imports do not count against another's. ``code``: a checkout of another
    commit whose packages the child imports (a before/after comparison in one run).
    """
    env = None
    if code is not None:  # import the project (engine, ...) from another checkout
        env = dict(os.environ, PYTHONPATH=code + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        proc = subprocess.run([sys.executable, script, "--child", *args], capture_output=True,
                              text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail[:200]}"}
    return json.loads(lines[-1])


def compile_footprint(build: Callable[[], Any], retained: bool = False, repeat: int = 1,
                      max_total_s: float = 5.0) -> dict:
    """Compile in this (fresh) process: seconds, RSS growth and resulting RSS, in MB.

    RSS growth (first build) includes what the allocator kept of the compiler's temporaries.
    With `repeat` > 1 the build is timed up to that many times while the total stays under
    `max_total_s` (one result alive at a time) and the median is reported, so one slice of
    background load does not decide the figure. With
    `retained`, one more build under tracemalloc says how much the compiled object itself keeps
    alive (Python allocations only).
    """
    import gc
    gc.collect()
    before = rss_bytes()
    t0, c0 = perf(), time.process_time()
    obj = build()
    times, cpu = [(perf() - t0) / 1e9], [time.process_time() - c0]
    gc.collect()
    after = rss_bytes()
    for _ in range(repeat - 1):
        if sum(times) > max_total_s:
            break
        del obj
        gc.collect()
        t0, c0 = perf(), time.process_time()
        obj = build()
        times.append((perf() - t0) / 1e9)
        cpu.append(time.process_time() - c0)
    # CPU seconds of this process as well: on a loaded machine wall time also counts waiting for a core
    out = {"compile_s": statistics.median(times), "compile_runs_s": times, "compile_cpu_s": statistics.median(cpu),
           "rss_growth_mb": (after - before) / 2**20, "rss_mb": after / 2**20}
    if retained:
        import tracemalloc
        del obj
        gc.collect()
        tracemalloc.start()
        kept = build()
        gc.collect()
        out["retained_mb"] = tracemalloc.get_traced_memory()[0] / 2**20  # while `kept` is alive
        tracemalloc.stop()
        del kept
    return out


def load_now() -> str:
    load = os.getloadavg()
    return f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
