"""Where ordergate's time goes: deterministic profiles (cProfile) of the benchmark workloads.

    .venv/bin/python bench/hotspots.py              # pricing decide, 10,000-row decide, 10,000-row compile
    .venv/bin/python bench/hotspots.py --top 25     # more lines
    .venv/bin/python bench/hotspots.py --quick      # tiny sizes: the smoke test

cProfile charges every Python call, so it exaggerates call-heavy code; for shares of wall time
use a sampling profiler on the same workloads, e.g.

    py-spy record -r 2000 -f raw -o out.raw -- \\
        .venv/bin/python bench/hotspots.py --only pricing --seconds 10 --no-profile
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rowtable as rt  # noqa: E402
import workloads as W  # noqa: E402


def pricing(seconds: float, quick: bool):
    policy = W.pricing_policy()
    inputs = W.pricing_inputs()
    random.Random(1).shuffle(inputs)
    decide = policy.decide

    def run():
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for action, body in inputs[:200] if quick else inputs:
                decide(action, body)
    return run


def rows_decide(seconds: float, quick: bool):
    table = rt.rows(100 if quick else 10_000)
    policy = W.scaled_ordergate_policy(table)
    bodies = [rt.ordergate_input(q) for q in rt.queries(table, 1024, seed=len(table))]
    decide = policy.decide

    def run():
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for body in bodies:
                decide("order.price", body)
    return run


def rows_compile(seconds: float, quick: bool):
    import engine
    text = rt.ordergate_yaml(rt.rows(100 if quick else 10_000))
    engine.compile_files({"warm.yaml": rt.ordergate_yaml(rt.rows(1))})

    def run():
        end = time.perf_counter() + seconds
        while True:
            engine.compile_files({"bench.yaml": text})
            if time.perf_counter() >= end:
                break
    return run


WORKLOADS = {"pricing": pricing, "rows-decide": rows_decide, "rows-compile": rows_compile}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=list(WORKLOADS))
    ap.add_argument("--seconds", type=float, help="per workload (default 3, --quick 0.1)")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--no-profile", action="store_true", help="just run (for an external sampling profiler)")
    args = ap.parse_args(argv)
    seconds = args.seconds or (0.1 if args.quick else 3.0)
    for name, make in WORKLOADS.items():
        if args.only and name != args.only:
            continue
        run = make(seconds, args.quick)
        if args.no_profile:
            run()
            continue
        profile = cProfile.Profile()
        profile.runcall(run)
        print(f"## {name} ({seconds:g} s under cProfile)\n")
        pstats.Stats(profile, stream=sys.stdout).strip_dirs().sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
