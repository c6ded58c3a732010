"""The loader alone: `engine.load.load_text` of a generated row table, native path against Python path.

    .venv/bin/python bench/yaml_load.py             # 10,000 rows, 9 rounds: about 10 seconds
    .venv/bin/python bench/yaml_load.py --quick     # 100 rows, 2 rounds: the smoke test

The same text (bench/rowtable.py) is loaded by engine/_fastload.c (the native path) and by the
Python path (`_Builder` over PyYAML's libyaml events, the native module switched off), without and
with extents, alternating in one process so that background load hits both alike; each figure is
the median CPU time of the rounds. Both are first checked to give the same documents.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness as H  # noqa: E402
import rowtable as rt  # noqa: E402

from engine import load  # noqa: E402


def timed(text: str, extents: bool, native: bool) -> float:
    saved = load._fastload
    load._fastload = saved if native else None
    try:
        gc.collect()
        start = time.process_time()
        loaded, errors = load.load_text("bench.yaml", text, extents=extents)
        spent = time.process_time() - start
    finally:
        load._fastload = saved
    assert loaded is not None and not errors
    return spent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 rows, 2 rounds (smoke test)")
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args(argv)
    rows, rounds = (100, 2) if args.quick else (args.rows, args.rounds)
    print(f"# bench/yaml_load.py\n\n{H.machine_line()}\n")
    if load._fastload is None:
        print("engine._fastload is not built (no C compiler or libyaml headers at install): nothing to compare")
        return 1
    text = rt.ordergate_yaml(rt.rows(rows))
    native = load._load_native("bench.yaml", text, False)
    saved, load._fastload = load._fastload, None
    python = load.load_text("bench.yaml", text)[0]
    load._fastload = saved
    if native is None or python is None or native.documents != python.documents:
        print("DISAGREE: the native and Python paths give different documents")
        return 2
    print(f"Agreement: both paths give the same documents ({rows:,} rows, {len(text):,} characters).\n")
    out = []
    for extents in (False, True):
        spent: dict[bool, list[float]] = {True: [], False: []}
        for r in range(rounds):
            for path in ((True, False) if r % 2 == 0 else (False, True)):
                spent[path].append(timed(text, extents, path))
        n, p = statistics.median(spent[True]), statistics.median(spent[False])
        out.append([f"{rows:,} rows" + (", extents" if extents else ""), f"{n * 1000:.1f}", f"{p * 1000:.1f}",
                    H.ratio(p, n)])
    print(H.markdown(["load_text of", "native ms CPU (median)", "Python path ms CPU (median)",
                      "Python / native"], out))
    print(f"\nLoad average at the end: {H.load_now()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
