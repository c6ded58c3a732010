"""The decision log's write path alone: ``DecisionLogWriter.record`` from several processes and
threads against one log, without HTTP or the engine, with a baseline in the same run.

Each process is a server worker's stand-in: one ``Store`` and one ``DecisionLogWriter`` on the same
database, ``--threads`` threads each calling ``record`` with one record (``--group 1``, a single
decision) or ``--group 100`` (a batch) in a loop, as answering threads do. Records are built as the
API builds them (``chain.prepare_decision``: realistic input, result and who-asked fields). Prints
records/s, p50 and p99 of ``record`` and the CPU time (user + system, all threads) per record of
every process together, and the load average before each run; then checks that every record answered
as written is in the log and that the chain verifies (exit 1 otherwise).

``--compare REF`` runs the same measurement with the ``store/`` of git revision REF (exported to a
temporary directory), alternating with this checkout's, ``--rounds`` times each:

    .venv/bin/python bench/log_write.py --seconds 3
    .venv/bin/python bench/log_write.py --compare main --group 100 --rounds 2
    .venv/bin/python bench/log_write.py --database postgresql+psycopg://postgres@127.0.0.1:5432/og_bench

A --database must be an empty database: every run appends to its log (a PostgreSQL database's
log is emptied by each run's set-up). SQLite: a fresh file per run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _child(args: argparse.Namespace) -> None:
    """One process: a writer, ``threads`` threads recording for ``seconds`` from ``start_at``."""
    import resource

    from store import Store
    from store.chain import format_time, prepare_decision
    from store.decision_log import DecisionLogWriter

    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval / 1000)
    store = Store(args.database)
    print("ready", flush=True)  # the parent answers with the start time once every process is ready
    args.start_at = float(sys.stdin.readline())
    transactions = [0]
    append = store.append_decisions

    def counted(records, **kwargs):  # the writer's transactions (a retry after a refusal counts again)
        transactions[0] += 1
        return append(records, **kwargs)

    store.append_decisions = counted
    writer = DecisionLogWriter(store, durability=args.durability)
    stop_at = args.start_at + args.seconds
    latencies: list[list[float]] = [[] for _ in range(args.threads)]
    counts = [0] * args.threads
    refused = [0] * args.threads
    stamp = format_time(__import__("datetime").datetime.now(__import__("datetime").UTC))

    def records(thread: int, n: int, group: int) -> list:
        out = []
        for k in range(group):
            i = n * group + k
            result = {"allow": i % 4 != 0, "obligations": [{"name": "skip_price_calculation", "params": {}}],
                      "rules": ["PRC-03"] if i % 4 else ["PRC-14"], "error": None,
                      "policy_version": "sha256:" + "ab" * 32}
            facts = {"subject": {"is_integration_user": i % 3 == 0, "name": f"user-{i % 50}"},
                     "resource": {"salesorder": {"statecode": "active" if i % 4 else "submitted", "number": i}},
                     "context": {"system": "d365_sales", "organization": {"is_sop_integration_enabled": True}}}
            out.append(prepare_decision(f"{args.tag}{thread:03d}{i:012d}", stamp, "salesorder.update", facts,
                                        result, "sha256:" + "ab" * 32, "crm-adapter", f"req-{i}",
                                        input_has_text_keys=True))
        return out

    def run(thread: int) -> None:
        n = 0
        mine = latencies[thread]
        while time.time() < args.start_at:
            time.sleep(0.001)
        while True:
            if args.work_us:  # the request's own work (parsing, deciding) before it records: Python holding the GIL
                until = time.perf_counter() + args.work_us * 1e-6 * args.group
                while time.perf_counter() < until:
                    pass
            batch = records(thread, n, args.group)
            n += 1
            started = time.perf_counter()
            missed = writer.record(batch)
            now = time.perf_counter()
            if time.time() >= stop_at:
                break
            mine.append(now - started)
            counts[thread] += len(batch) - len(missed)
            refused[thread] += len(missed)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(args.threads)]
    for th in threads:
        th.start()
    while time.time() < args.start_at:
        time.sleep(0.001)
    before, started = resource.getrusage(resource.RUSAGE_SELF), transactions[0]
    for th in threads:
        th.join()
    after, ended = resource.getrusage(resource.RUSAGE_SELF), transactions[0]
    writer.close()
    store.dispose()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    system = after.ru_stime - before.ru_stime
    switches = (after.ru_nvcsw - before.ru_nvcsw) + (after.ru_nivcsw - before.ru_nivcsw)
    print(json.dumps({"count": sum(counts), "refused": sum(refused), "cpu": cpu, "system": system,
                      "switches": switches, "transactions": ended - started,
                      "latencies": [x for mine in latencies for x in mine]}))


def _setup(code: Path, database: str) -> None:
    """Migrate ``database`` with ``code``'s store (an empty log)."""
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from store import Store; "
              "s = Store(sys.argv[2], migrate=True); s.dispose()")
    subprocess.run([sys.executable, "-c", script, str(code), database], check=True)


def _check_log(code: Path, database: str, answered: int) -> None:
    """Every record answered as written is in the log, and the chain verifies (else exit 1)."""
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from store import Store; s = Store(sys.argv[2]); "
              "r = s.verify_chain(); print(s.decision_count(), int(r.ok)); s.dispose()")
    out = subprocess.run([sys.executable, "-c", script, str(code), database], check=True, capture_output=True,
                         text=True).stdout.split()
    if int(out[0]) < answered or out[1] != "1":
        raise SystemExit(f"the log holds {out[0]} decisions (chain ok: {out[1] == '1'}) after {answered} "
                         f"were answered as written")


def _reset_postgres(database: str) -> None:
    """An empty schema on a PostgreSQL database (the previous run's log and tables gone)."""
    import sqlalchemy as sa

    engine = sa.create_engine(database)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def _measure(code: Path, args: argparse.Namespace, tmp: str, label: str, round_: int) -> dict:
    if args.database:
        database = args.database
        _reset_postgres(database)
    else:
        database = f"sqlite:///{os.path.join(tmp, f'log-{label}-{round_}.sqlite')}"
    _setup(code, database)
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    env = dict(os.environ, PYTHONPATH=str(code))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--database", database,
           "--threads", str(args.threads), "--group", str(args.group), "--seconds", str(args.seconds),
           "--durability", args.durability, "--work-us", str(args.work_us),
           "--switch-interval", str(args.switch_interval)]
    procs = [subprocess.Popen([*cmd, "--tag", f"p{p}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                              cwd=str(code), text=True) for p in range(args.processes)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    start_at = time.time() + 0.2
    outs = [json.loads(proc.communicate(f"{start_at!r}\n")[0]) for proc in procs]
    if any(proc.returncode for proc in procs):
        raise SystemExit(f"{label}: a writer process failed")
    count = sum(o["count"] for o in outs)
    _check_log(code, database, count)
    lat = sorted(x for o in outs for x in o["latencies"])
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")  # noqa: E731
    return {"label": label, "rate": count / args.seconds, "p50": pick(0.5), "p99": pick(0.99),
            "cpu_us": sum(o["cpu"] for o in outs) / max(count, 1) * 1e6,
            "sys_us": sum(o["system"] for o in outs) / max(count, 1) * 1e6,
            "switches": sum(o["switches"] for o in outs) / max(count, 1),
            "refused": sum(o["refused"] for o in outs), "load": load,
            "per_commit": count / max(1, sum(o["transactions"] for o in outs))}


def _export(ref: str, into: Path) -> Path:
    """``store/`` of git revision ``ref``, exported under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "store"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="recording threads per process")
    parser.add_argument("--group", type=int, default=1, help="records per record() call (1: single, 100: batch)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--durability", choices=("commit", "async"), default="commit")
    parser.add_argument("--work-us", type=float, default=0.0,
                        help="µs of Python work a thread does per record before recording (a request's own work)")
    parser.add_argument("--switch-interval", type=float, default=0.0,
                        help="ms: the writer processes' GIL switch interval (sys.setswitchinterval; default Python's)")
    parser.add_argument("--database", default=None, help="an empty PostgreSQL database URL (default: SQLite files)")
    parser.add_argument("--compare", metavar="REF", default=None, help="git revision whose store/ is the baseline")
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each, alternating")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="p0", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        sys.path.insert(0, os.environ.get("PYTHONPATH", str(ROOT)))
        _child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        codes = [("this checkout", ROOT)]
        if args.compare:
            base = Path(tmp) / "base"
            base.mkdir()
            codes.insert(0, (f"{args.compare}", _export(args.compare, base)))
        print(f"{args.processes} processes x {args.threads} threads, {args.group} record(s) a call, "
              f"{args.work_us:g} µs of work a record, "
              f"{args.durability}, {args.seconds:g} s, {'PostgreSQL' if args.database else 'SQLite'}")
        print(f"{'code':<16} {'records/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/rec':>11} {'of it sys':>9} "
              f"{'switches/rec':>12} {'rec/commit':>10} {'refused':>8} load")
        for round_ in range(args.rounds):
            for label, code in codes:
                r = _measure(code, args, tmp, label.replace(" ", "-").replace("/", "-"), round_)
                print(f"{label:<16} {r['rate']:>10,.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['cpu_us']:>11.0f} "
                      f"{r['sys_us']:>9.0f} {r['switches']:>12.1f} {r['per_commit']:>10.1f} {r['refused']:>8} "
                      f"{r['load']}", flush=True)

if __name__ == "__main__":
    main()
