"""`ordergate check` — compile plus the verifier — on the shipped rules and on generated tables.

    .venv/bin/python bench/verify.py            # about a minute
    .venv/bin/python bench/verify.py --quick    # small sizes, a few seconds: the smoke test

Cases: the shipped rules/; the generated first-hit discount table of bench/rowtable.py (rows and
a catch-all: the verifier proves no gap and looks for shadowed rows); the same rows as a `unique`
table without the catch-all (the verifier looks for overlaps and finds the gaps). The baseline,
measured in the same run, is compiling the same files alone (`engine.compile_files`); `check`
does that and then verifies. Targets: shipped rules < 2 s, 10,000 rows < 30 s.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as H  # noqa: E402
import rowtable as rt  # noqa: E402

RULES = Path(__file__).resolve().parent.parent / "rules"
TARGET_SHIPPED_S = 2.0
TARGET_TABLE_S = 30.0


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def unique_table(size: int) -> str:
    text = rt.ordergate_yaml(rt.rows(size)).replace("hit: first", "hit: unique")
    return "\n".join(line for line in text.splitlines() if "D-ANY" not in line) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = ap.parse_args(argv)
    import engine
    from engine.verify import verify

    size = 100 if args.quick else 10_000
    few = 1 if args.quick else 3
    cases = [("shipped rules/", engine.read_folder(RULES), TARGET_SHIPPED_S, few),
             (f"{size:,}-row first-hit table", {"bench.yaml": rt.ordergate_yaml(rt.rows(size))}, TARGET_TABLE_S, 1),
             (f"{size:,}-row unique table, no catch-all", {"bench.yaml": unique_table(size)}, TARGET_TABLE_S, 1)]
    print(f"# bench/verify.py\n\n{H.machine_line()}\n")
    verify({"warm.yaml": rt.ordergate_yaml(rt.rows(2))})   # imports and one-time set-up
    rows, verdicts = [], []
    for name, files, target, repeat in cases:
        compile_s, _ = timed(lambda files=files: engine.compile_files(files), repeat)
        check_s, report = timed(lambda files=files: verify(files), repeat)
        codes = sorted({f.code for f in report.findings})
        rows.append([name, repeat, f"{compile_s:.3f}", f"{check_s:.3f}", H.ratio(check_s, compile_s),
                     f"{len(report.findings)} ({', '.join(codes) or 'none'})", f"< {target:g}"])
        verdicts.append(f"- {name}: check {check_s:.2f} s — "
                        + (f"met (< {target:g} s)" if check_s < target else f"MISSED (> {target:g} s)"))
    print(H.markdown(["case", "runs (median)", "compile s (baseline)", "check s", "× compile", "findings", "target s"],
                     rows))
    print()
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
