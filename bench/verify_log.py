"""`audit verify` speed and memory: fills a decision log with N realistic entries, then times
``Store.verify_chain`` against a baseline measured in the same run: reading the same rows through
the database driver and doing nothing with them (the floor any verification pays).

    .venv/bin/python bench/verify_log.py --entries 100000
    .venv/bin/python bench/verify_log.py --database postgresql+psycopg://postgres@127.0.0.1:5432/og_bench

The target (issue 14) is at least 100,000 entries/s on either database, in bounded memory.
A --database must be an empty database (or schema): the bench appends to its log.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100000)
    parser.add_argument("--database", default=None, help="an empty database URL (default: a fresh SQLite file)")
    parser.add_argument("--memory", action="store_true", help="also measure verify's peak memory (a second run)")
    args = parser.parse_args(argv)
    from store import Store
    from store.log import VERIFY_PAGE

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{os.path.join(tmp, 'verify.sqlite')}"
        store = Store(url, migrate=True)
        started = time.perf_counter()
        for start in range(0, args.entries, 2000):
            store.append_decisions(_records(start, min(2000, args.entries - start)))
        fill = time.perf_counter() - started
        with store.engine.connect() as conn:  # baseline: the same rows through the driver
            started, cpu = time.perf_counter(), time.process_time()
            rows = 0
            for _ in conn.exec_driver_sql("SELECT * FROM decisions ORDER BY seq"):
                rows += 1
            for _ in conn.exec_driver_sql("SELECT seq, rule_id FROM decision_rules ORDER BY seq"):
                pass
            read, read_cpu = time.perf_counter() - started, time.process_time() - cpu
        started, cpu = time.perf_counter(), time.process_time()
        report = store.verify_chain()
        verify, verify_cpu = time.perf_counter() - started, time.process_time() - cpu
        peak = None
        if args.memory:  # a second run under tracemalloc (which slows every allocation down)
            tracemalloc.start()
            store.verify_chain()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        store.dispose()
    assert report.ok and report.checked == args.entries == rows, report
    load = os.getloadavg()[0]
    print(f"audit verify, {args.entries} entries on {url.split(':')[0]} (filled in {fill:.1f} s), load {load:.1f}")
    # CPU seconds of this process as well: on a shared machine the wall time also counts the
    # time other processes had the cores (the database work of PostgreSQL is in its own process)
    print(f"{'':24}{'seconds':>9}{'entries/s':>12}{'CPU s':>9}{'entries/CPU s':>15}")
    print(f"{'read rows (baseline)':24}{read:9.2f}{args.entries / read:12,.0f}{read_cpu:9.2f}"
          f"{args.entries / max(read_cpu, 1e-9):15,.0f}")
    print(f"{'verify_chain':24}{verify:9.2f}{args.entries / verify:12,.0f}{verify_cpu:9.2f}"
          f"{args.entries / max(verify_cpu, 1e-9):15,.0f}")
    print(f"verify / read: {verify / read:.2f}x")
    if peak is not None:
        print(f"verify's peak Python memory: {peak / 2**20:.1f} MiB (bounded by the page of {VERIFY_PAGE} entries)")


if __name__ == "__main__":
    main()
