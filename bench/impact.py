"""The impact report's replay over a large decision log (issue 11: 1,000,000 in under 60 s).

A temporary SQLite log is filled with decisions of the shipped rules over all five systems (the
inputs of the rules' own YAML tests, decided and appended through the store: 10,000 real records
with their hash chain, then copied by SQL up to ``--count`` with fresh seqs and ids; the replay
never reads the chain). The same run then measures, on that log:

* reading alone: every logged entry streamed (``store.log_stream.stream_entries``), no decide;
  then (with counting the distinct requests) every input and result decoded as well;
* the impact report: the same stream, each decision decided again on a candidate and compared
  (``api.evidence.impact``), which is what ``ordergate impact`` does.

The candidate is the shipped rules with one guard rewritten so that part of the traffic changes.
The replay decides each distinct (action, input, logged result) once; the copied log repeats its
10,000 real decisions, so ``--distinct`` makes every copied input different (a fact no rule reads)
to measure a log where nothing repeats.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from ulid import ULID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import engine  # noqa: E402
from api.evidence import impact  # noqa: E402
from store import Store  # noqa: E402
from store.log_stream import stream_decisions, stream_entries  # noqa: E402

REAL = 10_000


def requests(files: dict[str, str]) -> list[tuple[str, dict]]:
    policy = engine.compile_files(files)
    report = engine.run_tests(policy, files)
    return [(r.action, r.input) for r in report.results
            if isinstance(r.input, dict) and isinstance(r.action, str) and 0 < len(r.action) <= 200]


def fill(store: Store, version: str, count: int, files: dict[str, str], distinct: bool = False) -> None:
    policy = store.policy_set(version)
    reqs = requests(files)
    now = dt.datetime.now(dt.UTC)
    real = min(count, REAL)
    records = []
    for i in range(real):
        action, data = reqs[i % len(reqs)]
        records.append({"decision_id": str(ULID()), "time": now, "action": action, "input": data,
                        "result": policy.decide(action, data).to_dict(), "policy_version": version})
    store.append_decisions(records)
    with store.engine.begin() as conn:
        have = real
        while have < count:
            n = min(have, count - have)
            # --distinct: each copy's input gets a fact no rule reads (its seq), so no two are equal
            copied = "json_set(input, '$.context.copy', seq + :off)" if distinct else "input"
            conn.execute(sa.text(
                "INSERT INTO decisions (seq, decision_id, time, action, allow, policy_version, input, result,"
                f" prev_hash, hash) SELECT seq + :off, decision_id || '-' || :off, time, action, allow,"
                f" policy_version, {copied}, result, prev_hash, hash FROM decisions WHERE seq <= :n"),
                {"off": have, "n": n})
            conn.execute(sa.text("INSERT INTO decision_rules (rule_id, seq) SELECT rule_id, seq + :off"
                                 " FROM decision_rules WHERE seq <= :n"), {"off": have, "n": n})
            have += n


def candidate(files: dict[str, str]) -> engine.PolicySet:
    changed = dict(files)
    text = changed["pricing.yaml"]
    if "deny_when: {sop: true}" not in text:
        raise SystemExit("bench: rules/pricing.yaml has no `deny_when: {sop: true}` guard; update bench/impact.py")
    changed["pricing.yaml"] = text.replace("deny_when: {sop: true}", "deny_when: {sop: false}", 1)
    return engine.compile_files(changed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="logged decisions (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="20,000 decisions, for the smoke test")
    parser.add_argument("--distinct", action="store_true",
                        help="no two logged requests equal (the replay cannot decide one for many)")
    args = parser.parse_args()
    count = 20_000 if args.quick else args.count
    files = engine.read_folder(ROOT / "rules")
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{folder}/log.sqlite")
        store.migrate()
        version = store.publish(files, author="bench", message="bench", activate=True).id
        started = time.perf_counter()
        fill(store, version, count, files, args.distinct)
        print(f"log: {count:,} decisions over {len(store.policy_set(version).catalogue)} systems "
              f"written in {time.perf_counter() - started:.1f} s")
        cand = candidate(files)

        started = time.perf_counter()
        read = sum(1 for _ in stream_entries(store))
        reading = time.perf_counter() - started
        started = time.perf_counter()
        distinct = len({(e.action, e.input_json, e.result_json) for e in stream_entries(store)})
        decoded = sum(1 for _ in stream_decisions(store))
        decoding = time.perf_counter() - started
        started = time.perf_counter()
        body = impact(store, cand)
        replay = time.perf_counter() - started
        store.dispose()
    assert read == decoded == count == body["replayed"], (read, decoded, count, body["replayed"])
    print(f"distinct (action, input, logged result): {distinct:,} of {count:,}")
    print(f"reading the log alone: {reading:.1f} s ({reading / count * 1e6:.1f} µs per decision); "
          f"and decoding every input and result: {decoding:.1f} s")
    print(f"impact report (read, decide on the candidate, compare, group): {replay:.1f} s "
          f"({replay / count * 1e6:.1f} µs per decision; {replay / reading:.2f}x reading alone)")
    print(f"changed: {body['changed']:,} in {len(body['groups'])} groups; counts {body['counts']}")
    target = 60 * count / 1_000_000
    print(f"target: {count:,} decisions in under {target:.0f} s: {'met' if replay < target else 'MISSED'}")


if __name__ == "__main__":
    main()
