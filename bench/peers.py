"""ordergate against the peer engines on the Dynamics 365 price-computation table (issue 5).

    .venv/bin/pip install -e '.[bench,dev]'     # the peer engines (optional extra `bench`)
    .venv/bin/python bench/peers.py             # about 4 minutes
    .venv/bin/python bench/peers.py --quick     # tiny sizes, a few seconds: the smoke test

1. SOP table: the table of domain spec 5.1 in ordergate (rules/pricing.yaml without the edit
   guards and PRC-15, see bench/workloads.py), in each peer engine (bench/peer_adapters.py), in
   hand-written Python returning ordergate's decision dict, and as a precomputed dict (the
   floor). Every case must give the oracle's outcome on all 256 combinations, before and after
   timing, and ordergate must give the hand-written decision dict: exit 2 otherwise.
2. Scale: the generated 10 / 1,000 / 10,000-row tables of bench/rowtable.py in ordergate and in
   every peer that can load them: compile time and memory in a fresh process per engine and
   size (with the agreement check on every query there), then decide time, interleaved.

A peer engine that is not installed is skipped, and the reason is printed.
"""
from __future__ import annotations

import argparse
import importlib
import json
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import handwritten as hw  # noqa: E402
import harness as H  # noqa: E402
import peer_adapters as P  # noqa: E402
import rowtable as rt  # noqa: E402
import sop_table as st  # noqa: E402
import workloads as W  # noqa: E402

ORDERGATE = "ordergate"
HAND = "python if-chain (hand-written, decision dict)"
FLOOR = "python dict lookup (floor)"
LINEAR = "python linear scan"
INDEXED = "python index by group (floor)"
# durable_rules never finishes creating a ruleset whose rules compare one attribute with more than
# 512 distinct values (raise CHILD_TIMEOUT to watch it): the 10,000-row table has 1,250 groups.
CHILD_TIMEOUT = 60
SCALED_BASE = {ORDERGATE: lambda rows: W.scaled_ordergate(W.scaled_ordergate_policy(rows)),
               LINEAR: W.scaled_linear, INDEXED: W.scaled_indexed}


def available() -> tuple[list[str], dict[str, str]]:
    """Installed peers, and why each other one is skipped."""
    ok, skipped = [], {}
    for name, module in P.MODULES.items():
        try:
            importlib.import_module(module)
            ok.append(name)
        except Exception as exc:  # ImportError, or a broken native build
            skipped[name] = f"not installed ({type(exc).__name__}: {exc})"
    return ok, skipped


def timed_build(build):
    t0 = time.perf_counter()
    obj = build()
    return obj, (time.perf_counter() - t0) * 1000


def sop_agreement(cases: dict) -> int:
    bad = 0
    for name, fn in cases.items():
        wrong = [(x, fn(x), st.oracle(*x)) for x in st.all_inputs()]
        wrong = [w for w in wrong if w[1] != w[2]]
        for x, got, want in wrong[:3]:
            print(f"DISAGREE {name} on {x}: {got}, oracle {want}")
        bad += len(wrong)
    return bad


def child_scaled(engine: str, size: int, queries: int) -> None:
    """In a fresh process: compile `size` rows for `engine`, measure, and check every query."""
    build = SCALED_BASE.get(engine) or P.SCALED[engine]
    build(rt.rows(1))  # imports and one-time set-up, not counted
    rows = rt.rows(size)
    out = {}
    holder = {}

    def make():
        holder["run"] = build(rows)
        return holder["run"]
    out.update(H.compile_footprint(make, repeat=3))
    run = holder["run"]
    qs = rt.queries(rows, queries, seed=size) + rt.boundary_queries(rows)
    wrong = [(q, run(q), rt.oracle(rows, q)) for q in qs]
    wrong = [w for w in wrong if w[1] != w[2]]
    out["checked"] = len(qs)
    out["disagree"] = len(wrong)
    out["examples"] = [f"{q}: {got}, oracle {want}" for q, got, want in wrong[:3]]
    print(json.dumps(out))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes and budgets (smoke test)")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--budget", type=float, help="seconds per case and workload (all rounds)")
    ap.add_argument("--sizes", help="comma-separated row counts of the scale section (default 10,1000,10000)")
    ap.add_argument("--peers", help="comma-separated subset of peers to run")
    ap.add_argument("--no-scale", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("ENGINE", "SIZE", "QUERIES"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_scaled(args.child[0], int(args.child[1]), int(args.child[2]))
        return 0
    rounds = args.rounds or (2 if args.quick else 3)
    budget = args.budget or (0.04 if args.quick else 3.0)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([10] if args.quick else [10, 1_000, 10_000])
    say = (lambda m: None) if args.quick else (lambda m: print(f"  … {m}", file=sys.stderr))

    peers, skipped = available()
    if args.peers:
        wanted = args.peers.split(",")
        unknown = set(wanted) - set(P.MODULES)
        if unknown:
            ap.error(f"unknown peers {', '.join(sorted(unknown))}; known: {', '.join(P.MODULES)}")
        skipped.update({p: "not selected (--peers)" for p in peers if p not in wanted})
        peers = [p for p in peers if p in wanted]

    print(f"# bench/peers.py\n\n{H.machine_line()}\n")
    print("Versions: " + ", ".join(f"{name} {_version(name)}" for name in peers) + "\n" if peers else "")
    for name, why in skipped.items():
        print(f"- skipped {name}: {why}")
    if skipped:
        print()

    # 1. the SOP table ----------------------------------------------------------------------
    setup, cases = {}, {}
    policy, setup[ORDERGATE] = timed_build(W.table_policy)
    cases[ORDERGATE] = W.sop_ordergate(policy)
    cases[HAND], setup[HAND] = timed_build(W.sop_handwritten)
    cases[FLOOR], setup[FLOOR] = timed_build(W.sop_dict_lookup)
    for name in peers:
        cases[name], setup[name] = timed_build(P.SOP[name])

    dict_bad = 0
    for x in st.all_inputs():
        action, body = st.request(*x)
        if hw.comparable(policy.decide(action, body).to_dict()) != hw.comparable(hw.decide_price_table(action, body)):
            dict_bad += 1
            if dict_bad <= 3:
                print(f"DISAGREE ordergate vs hand-written decision dict on {x}")
    bad = sop_agreement(cases) + dict_bad
    if bad:
        print(f"\n{bad} disagreements on the SOP table: not timing")
        return 2
    print(
        f"Agreement before timing: all {len(cases)} cases give the oracle's outcome on all "
        f"{len(st.all_inputs())} combinations; ordergate's decision dict equals the hand-written one on all of them.\n"
    )

    inputs = st.all_inputs()
    random.Random(5).shuffle(inputs)
    stats = H.measure({"(harness: no-op)": H.noop, **cases}, inputs, rounds=rounds, budget=budget, progress=say)
    if sop_agreement(cases):
        print("\ndisagreement after timing")
        return 2
    ref = stats[ORDERGATE].median
    print("## SOP price-computation table (256 inputs; agreement re-checked after timing)\n")
    order = ["(harness: no-op)", FLOOR, HAND, ORDERGATE] + sorted(peers, key=lambda n: stats[n].median)
    print(H.markdown(["engine", "median µs", "p99 µs (batch)", "p50 µs (call)", "p99 µs (call)", "× ordergate",
                      "batches / calls", "setup ms"],
                     [[n, H.fmt(stats[n].median), H.fmt(stats[n].p99_batch), H.fmt(stats[n].p50_call),
                       H.fmt(stats[n].p99_call), H.ratio(stats[n].median, ref),
                       f"{len(stats[n].batch_means):,} / {len(stats[n].calls):,}",
                       f"{setup[n]:.2f}" if n in setup else "-"] for n in order]))
    slower = [n for n in peers if stats[n].median < ref]
    print(f"\nordergate / hand-written: {ref / stats[HAND].median:.2f}× (target ≤ 3×); "
          + ("faster than every peer that ran" if not slower else f"SLOWER than {', '.join(slower)}")
          + (f" ({len(peers)} of {len(P.MODULES)} peers installed)\n" if len(peers) < len(P.MODULES) else "\n"))

    # 2. scale --------------------------------------------------------------------------------
    if args.no_scale:
        return 0
    print("## Scale: generated first-hit tables (bench/rowtable.py)\n")
    print("Compile time and memory: a fresh process per engine and size, after a warm-up build of a 1-row table. "
          "Compile s = building the engine's source from the rows and loading it, the median of up to 3 builds "
          "(1 when a build passes 5 s); RSS growth = across the first build. Every timed query and band-edge "
          "query is checked against the oracle there. Decide time: in this process, the engines that loaded, "
          "interleaved.\n")
    n_queries = 64 if args.quick else 256
    names = [ORDERGATE, INDEXED, LINEAR] + peers
    result_rows = []
    for size in sizes:
        rows = rt.rows(size)
        # One child at a time, so that compile times do not compete; --quick only proves they run.
        with ThreadPoolExecutor(max_workers=2 if args.quick else 1) as pool:
            args_of = [[name, str(size), str(n_queries)] for name in names]
            foot = dict(zip(names, pool.map(
                lambda child_args: H.run_child(__file__, child_args, timeout=CHILD_TIMEOUT), args_of), strict=True))
        for name in names:
            if foot[name].get("disagree"):
                print(f"DISAGREE {name} at {size} rows: {foot[name]['disagree']} of {foot[name]['checked']}: "
                      f"{foot[name]['examples']}")
                return 2
        loaded = [n for n in names if "error" not in foot[n]]
        queries = rt.queries(rows, n_queries, seed=size)
        cases = {}
        for name in loaded:
            say(f"{size} rows: building {name}")
            cases[name] = (SCALED_BASE.get(name) or P.SCALED[name])(rows)
            for q in queries[:16]:  # the child checked them all; this is the same encoding
                if cases[name](q) != rt.oracle(rows, q):
                    print(f"DISAGREE {name} at {size} rows on {q}")
                    return 2
        stats = H.measure(cases, queries, rounds=rounds, budget=budget, batch=32, min_batches=1, progress=say)
        ref = stats[ORDERGATE].median if ORDERGATE in stats else float("nan")
        for name in names:
            f = foot[name]
            if "error" in f:
                result_rows.append([name, f"{size:,}", f"cannot load: {f['error']}", "-", "-", "-", "-", "-"])
                continue
            s = stats[name]
            result_rows.append([name, f"{size:,}", H.fmt(s.median), H.fmt(s.p99_call), H.ratio(s.median, ref),
                                f"{f['compile_s']:.3f}", f"{f['rss_growth_mb']:.1f}", f"{len(s.calls):,}"])
        del cases
    print(H.markdown(["engine", "rows", "median µs", "p99 µs (call)", "× ordergate", "compile s", "RSS growth MB",
                      "timed calls"], result_rows))
    print(f"\nLoad average at the end: {H.load_now()}")
    return 0


def _version(name: str) -> str:
    from importlib import metadata
    dist = {"zen-engine": "zen-engine", "cedarpy": "cedarpy", "regopy": "regopy", "durable_rules": "durable_rules",
            "rule-engine": "rule-engine"}[name]
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
