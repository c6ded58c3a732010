"""What the decision log's storage layout costs on SQLite alone: CPU (user + system) a decision of
appending rows that are already built, through the plain ``sqlite3`` module, for the layout of
``store/schema.py`` and for candidate layouts, in one run. No ordergate code: the figure is the
database's part of an append (B-trees, WAL frames, fsync, checkpoints), the floor under any
Python-side cut.

Each layout gets a fresh file (WAL, ``synchronous=FULL``, foreign keys on, as ``store.db`` opens
SQLite), then ``--decisions`` rows in transactions of ``--group`` decisions made of requests of
100 (each request: one time, caller, request id and version; six actions and six rules in
turn), appended in statements of up to 512 rows as ``store/log.py`` does. Layouts:

- ``current``: a row a decision with the five secondary indexes and ``decision_rules`` (rowid
  table + primary key, no foreign key), the schema at the head revision;
- ``rules-without-rowid``: the same, ``decision_rules`` as a WITHOUT ROWID table;
- ``no-prev-hash``: the same as ``current`` without the ``prev_hash`` column (the hash of the row before);
- ``key-runs``: a row a decision with only ``decision_id`` unique; the filters' keys as one row
  per (filter, value, request): ``decision_keys(kind, value, first_seq, last_seq)``, WITHOUT ROWID;
- ``id-only``: a row a decision with ``decision_id`` unique and nothing else (the floor).

Each layout is checked afterwards: every row is there. Prints µs a decision, WAL frames a commit
(checkpoints off while counting) and bytes a decision on disk.

    .venv/bin/python bench/log_layouts.py
    .venv/bin/python bench/log_layouts.py --decisions 200000 --group 400 --rounds 2
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

LAYOUTS = ("current", "rules-without-rowid", "no-prev-hash", "key-runs", "id-only")
_INDEXES = ("(time, seq)", "(action, seq)", "(policy_version, seq)", "(caller, seq)", "(request_id)")
_SIZES = (512, 256, 128, 64, 32, 16, 8, 4, 2, 1)
_INPUT = ('{"context":{"organization":{"is_sop_integration_enabled":true},"system":"d365_sales"},'
          '"resource":{"salesorder":{"statecode":"submitted"}},"subject":{"is_integration_user":false}}')
_VERSION = "sha256:d89ea6269ef0717791151a09e6972e4f06b7182bc2b26fb261f37db3509e7e3c"
_RESULT = '{"allow":false,"error":null,"obligations":[],"policy_version":"%s","rules":["%s"]}'
_ACTIONS = ("salesorder.update", "salesorder_line.create", "invoice.update", "salesorder.submit", "quote.create",
            "quote_line.create")
_RULES = ("PRC-02", "PRC-03", "PRC-04", "PRC-07", "PRC-09", "PRC-12")


def create(conn: sqlite3.Connection, layout: str) -> None:
    prev = "" if layout == "no-prev-hash" else "prev_hash VARCHAR(64) NOT NULL, "
    conn.execute(f"CREATE TABLE decisions (seq INTEGER NOT NULL, decision_id VARCHAR(64) NOT NULL, "
                 f"time VARCHAR(32) NOT NULL, action VARCHAR(200) NOT NULL, allow BOOLEAN NOT NULL, "
                 f"policy_version VARCHAR(100), input TEXT NOT NULL, result TEXT NOT NULL, {prev}"
                 f"hash VARCHAR(64) NOT NULL, caller VARCHAR(200), request_id VARCHAR(200), PRIMARY KEY (seq), "
                 f"CONSTRAINT uq_decisions_decision_id UNIQUE (decision_id))")
    if layout in ("current", "rules-without-rowid", "no-prev-hash"):
        for i, columns in enumerate(_INDEXES):
            conn.execute(f"CREATE INDEX ix_{i} ON decisions {columns}")
        without = " WITHOUT ROWID" if layout == "rules-without-rowid" else ""
        conn.execute(f"CREATE TABLE decision_rules (rule_id VARCHAR(100) NOT NULL, seq INTEGER NOT NULL, "
                     f"PRIMARY KEY (rule_id, seq)){without}")
    elif layout == "key-runs":
        conn.execute("CREATE TABLE decision_keys (kind CHAR(1) NOT NULL, value VARCHAR(200) NOT NULL, "
                     "first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, PRIMARY KEY (kind, value, first_seq)) "
                     "WITHOUT ROWID")


def build(layout: str, decisions: int, group: int) -> list[tuple[list[tuple], list[tuple], list[tuple]]]:
    """The transactions: (decision rows, rule rows, key rows) each, built before any is timed."""
    transactions = []
    seq, prev = 0, "0" * 64
    while seq < decisions:
        rows, rules, keys = [], [], []
        for _ in range(max(1, group // 100)):
            asked = f"2026-11-29T14:{seq // 6_000_000 % 60:02d}:{seq // 100_000 % 60:02d}.{seq % 1_000_000:06d}Z"
            request = f"req-{seq // 100}"
            first, runs = seq + 1, {}
            for _ in range(100):
                seq += 1
                digest = hashlib.sha256(b"%d" % seq).hexdigest()
                action, rule = _ACTIONS[seq % 6], _RULES[seq % 6]
                row = (seq, f"01M8KSA809CNNT48Y1N{seq:07d}", asked, action, seq & 1, _VERSION, _INPUT,
                       _RESULT % (_VERSION, rule))
                rows.append(row + ((digest,) if layout == "no-prev-hash" else (prev, digest)) + ("crm", request))
                rules.append((rule, seq))
                for key in (("a", action), ("r", rule)):
                    runs.setdefault(key, [seq, seq])[1] = seq
                prev = digest
            for key in (("t", asked), ("v", _VERSION), ("c", "crm"), ("q", request)):
                runs[key] = [first, seq]
            keys += [(kind, value, a, b) for (kind, value), (a, b) in runs.items()]
        transactions.append((rows, rules, keys))
    return transactions


def insert(cursor: sqlite3.Cursor, table: str, rows: list[tuple]) -> None:
    """``rows`` in multi-row INSERTs of up to 512 rows (within the driver's variable limit)."""
    width, start = len(rows[0]), 0
    most = cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width
    one = "(" + ", ".join("?" * width) + ")"
    for size in _SIZES:
        if size > most:
            continue
        while len(rows) - start >= size:
            cursor.execute(f"INSERT INTO {table} VALUES {', '.join([one] * size)}",
                           list(itertools.chain.from_iterable(rows[start:start + size])))
            start += size


def measure(layout: str, args: argparse.Namespace, folder: Path, *, count_frames: bool) -> dict:
    path = folder / f"{layout}.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    if count_frames:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
    create(conn, layout)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    transactions = build(layout, args.decisions, args.group)
    cursor = conn.cursor()
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for rows, rules, keys in transactions:
        cursor.execute("BEGIN IMMEDIATE")
        insert(cursor, "decisions", rows)
        if layout in ("current", "rules-without-rowid", "no-prev-hash"):
            insert(cursor, "decision_rules", rules)
        elif layout == "key-runs":
            insert(cursor, "decision_keys", keys)
        cursor.execute("COMMIT")
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
    written = sum(len(t[0]) for t in transactions)
    logged = conn.execute("SELECT count(*), max(seq) FROM decisions").fetchone()
    if logged != (written, written):
        raise SystemExit(f"log_layouts: {layout}: {logged[0]} rows logged of {written}")
    wal = path.with_name(path.name + "-wal")
    frames = (wal.stat().st_size - 32) / (24 + 4096) / len(transactions) if count_frames else None
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {"user": (after.ru_utime - before.ru_utime) / written * 1e6,
            "sys": (after.ru_stime - before.ru_stime) / written * 1e6,
            "wall": wall / written * 1e6, "frames": frames, "bytes": path.stat().st_size / written}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=100_000, help="rows a layout (default 100,000)")
    parser.add_argument("--group", type=int, default=400, help="decisions a transaction (default 400)")
    parser.add_argument("--rounds", type=int, default=2, help="measurements a layout, alternating (default 2)")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help=f"comma list of {', '.join(LAYOUTS)}")
    parser.add_argument("--quick", action="store_true", help="2,000 decisions, one round (a smoke run)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.decisions, args.rounds = 2000, 1
    layouts = args.layouts.split(",")
    unknown = set(layouts) - set(LAYOUTS)
    if unknown:
        parser.error(f"unknown layout(s): {', '.join(sorted(unknown))}")
    print(f"log_layouts: {args.decisions:,} decisions a layout, {args.group} a transaction, SQLite "
          f"{sqlite3.sqlite_version}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'layout':<20} {'round':>5} {'user':>6} {'sys':>6} {'total':>6} us/decision  {'frames/commit':>13} "
          f"{'bytes/decision':>14}")
    with tempfile.TemporaryDirectory(prefix="ordergate-layouts-") as tmp:
        for round_ in range(1, args.rounds + 1):
            for layout in layouts:
                timed_in, counted_in = Path(tmp) / f"{layout}-{round_}", Path(tmp) / f"{layout}-{round_}-frames"
                timed_in.mkdir()
                counted_in.mkdir()
                timed = measure(layout, args, timed_in, count_frames=False)
                frames = measure(layout, args, counted_in, count_frames=True)["frames"]
                print(f"{layout:<20} {round_:>5} {timed['user']:>6.2f} {timed['sys']:>6.2f} "
                      f"{timed['user'] + timed['sys']:>6.2f}              {frames:>13.1f} {timed['bytes']:>14.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
