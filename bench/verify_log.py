"""`audit verify` speed and memory: fills a decision log with N realistic entries, then times
``Store.verify_chain`` (one process, ``--jobs`` processes) against two baselines measured in the
same run: reading the same rows through the database driver and doing nothing with them (the floor
any verification pays), and the verifier as it was before issue 14 (``store/log.py`` of commit
``--before``, read from git; skipped when git or the commit is not there).

    .venv/bin/python bench/verify_log.py --entries 100000
    .venv/bin/python bench/verify_log.py --database postgresql+psycopg://postgres@127.0.0.1:5432/og_bench

The target (issue 14) is at least 100,000 entries/s on either database, in bounded memory.
A --database must be an empty database (or schema): the bench appends to its log, unless it holds
exactly --entries entries already (then it verifies them as they are: --keep fills one to reuse).
--memory runs each verifier once more in a child process of its own and prints its peak RSS (and
its workers').
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BEFORE = "1b66484"  # the last commit with the verifier of bench/README.md's earlier figures


def _records(start: int, count: int) -> list[dict]:
    base = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    out = []
    for i in range(start, start + count):
        out.append({
            "decision_id": f"01BENCH{i:019d}",
            "time": base + dt.timedelta(milliseconds=i),
            "action": "salesorder.update",
            "input": {"subject": {"is_integration_user": i % 3 == 0, "name": f"user-{i % 50}"},
                      "resource": {"salesorder": {"statecode": "active" if i % 4 else "submitted", "number": i}},
                      "context": {"system": "d365_sales", "organization": {"is_sop_integration_enabled": True}}},
            "result": {"allow": i % 4 != 0, "obligations": [{"name": "skip_price_calculation", "params": {}}],
                       "rules": ["PRC-03"] if i % 4 else ["PRC-14"], "error": None,
                       "policy_version": "sha256:" + "ab" * 32},
            "policy_version": "sha256:" + "ab" * 32,
            "caller": "crm-adapter",
            "request_id": f"req-{i}",
        })
    return out


def _before(commit: str):
    """The DecisionLog class of ``store/log.py`` at ``commit`` (in the store package), or None."""
    try:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:store/log.py"], check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    spec = importlib.util.spec_from_loader("store._log_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "store"
    sys.modules[spec.name] = module  # dataclasses look their module up
    exec(compile(source, f"{commit}:store/log.py", "exec"), module.__dict__)  # noqa: S102 - our own history
    return module.DecisionLog


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended (the workers of ``--jobs``)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(fn):
    """(what fn returned, wall seconds, CPU seconds of this process and of the workers it ran)."""
    started, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
    report = fn()
    return report, time.perf_counter() - started, time.process_time() - cpu + _children_cpu() - children


def _rss(url: str, variant: str) -> str:
    """Peak RSS of one verify in a child process of its own (and of its workers), in MiB.

    The child's own peak is its VmHWM: ``ru_maxrss`` would carry over the peak of this process
    (which the floor's read of a PostgreSQL log, all rows fetched at once, makes large) across exec.
    """
    code = ("import resource, sys; sys.path.insert(0, sys.argv[1]); from store import Store;"
            "from bench.verify_log import _before;"
            "s = Store(sys.argv[2]); v = sys.argv[3];"
            "r = _before(sys.argv[4])(s.db).verify() if v == 'before' else s.verify_chain(jobs=int(v));"
            "assert r.ok, r; s.dispose();"
            "hwm = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')][0];"
            "print(hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT), url, variant, BEFORE], check=True,
                         capture_output=True, text=True).stdout.split()
    own, workers = int(out[0]) / 1024, int(out[1]) / 1024
    return f"{own:.0f} MiB" + (f" (each worker at most {workers:.0f} MiB)" if variant not in ("before", "1") else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100000)
    parser.add_argument("--database", default=None, help="an empty database URL (default: a fresh SQLite file)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes of the parallel run (default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="times each verifier runs, alternating (best kept)")
    parser.add_argument("--before", default=BEFORE, help="the commit whose verifier is the baseline")
    parser.add_argument("--no-before", action="store_true", help="skip the baseline of --before")
    parser.add_argument("--memory", action="store_true", help="also measure each verifier's peak RSS")
    args = parser.parse_args(argv)
    from store import Store

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{os.path.join(tmp, 'verify.sqlite')}"
        store = Store(url, migrate=True)
        started = time.perf_counter()
        if store.decision_count() != args.entries:
            for start in range(store.decision_count(), args.entries, 2000):
                store.append_decisions(_records(start, min(2000, args.entries - start)))
        fill = time.perf_counter() - started
        before = None if args.no_before else _before(args.before)
        runs = {"read rows (floor)": lambda: _read(store)}
        if before is not None:
            runs[f"before ({args.before})"] = lambda: before(store.db).verify()
        runs["verify --jobs 1"] = lambda: store.verify_chain(jobs=1)
        runs[f"verify --jobs {args.jobs}"] = lambda: store.verify_chain(jobs=args.jobs)
        best: dict[str, tuple[float, float]] = {}
        loads = []
        for _ in range(args.rounds):
            for name, fn in runs.items():
                report, wall, cpu = _timed(fn)
                assert report is None or (report.ok and report.checked == args.entries), report
                if name not in best or wall < best[name][0]:
                    best[name] = (wall, cpu)
                loads.append(os.getloadavg()[0])
        memory = {}
        if args.memory:
            if before is not None:
                memory[f"before ({args.before})"] = _rss(url, "before")
            memory["verify --jobs 1"] = _rss(url, "1")
            memory[f"verify --jobs {args.jobs}"] = _rss(url, str(args.jobs))
        store.dispose()
    print(f"audit verify, {args.entries} entries on {url.split(':')[0]} (filled in {fill:.1f} s), "
          f"load {min(loads):.1f}-{max(loads):.1f} (1-min average during the runs), best of {args.rounds}")
    # CPU seconds of this process and its workers as well: on a shared machine the wall time also
    # counts the time other processes had the cores (the database work of PostgreSQL is in its own
    # process, not counted)
    print(f"{'':24}{'seconds':>9}{'entries/s':>12}{'CPU s':>9}{'entries/CPU s':>15}")
    for name, (wall, cpu) in best.items():
        print(f"{name:24}{wall:9.2f}{args.entries / wall:12,.0f}{cpu:9.2f}{args.entries / max(cpu, 1e-9):15,.0f}")
    for name, rss in memory.items():
        print(f"peak RSS, {name}: {rss}")


def _read(store) -> None:
    """The floor: every row of the log and of its rule index through the driver, nothing done with them."""
    with store.engine.connect() as conn:
        for _ in conn.exec_driver_sql("SELECT * FROM decisions ORDER BY seq"):
            pass
        for _ in conn.exec_driver_sql("SELECT seq, rule_id FROM decision_rules ORDER BY seq"):
            pass


if __name__ == "__main__":
    main()
