"""The decision log: append, query, the hash chain and its verification, the batching writer."""
from __future__ import annotations

import json
import threading

import pytest
import sqlalchemy as sa

from store import DecisionLogWriter, InvalidInput, Store, StoreError
from store.chain import GENESIS, canonical_json, entry_hash
from test_store_helpers import record


def test_append_assigns_seq_and_chains_hashes(store):
    store.append_decisions([record(i) for i in range(1, 4)])
    store.append_decisions([record(4, allow=False, rules=("G-1",))])
    rows = store.query_decisions(limit=10)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["prev_hash"] == GENESIS
    for prev, row in zip([None] + rows[:-1], rows):
        if prev:
            assert row["prev_hash"] == prev["hash"]
        body = {k: row[k] for k in ("decision_id", "time", "action", "input", "result", "policy_version")}
        assert row["hash"] == entry_hash(row["prev_hash"], row["seq"], body)
    assert rows[0]["time"] == "2026-11-23T10:00:01.000123Z"  # normalised UTC text
    assert rows[0]["input"] == record(1)["input"] and rows[0]["result"] == record(1)["result"]
    report = store.verify_chain()
    assert report.ok and report.checked == 4 and report.first_broken_seq is None
    assert store.decision_count() == 4


def test_get_and_query_decisions_by_every_filter(store):
    v_a, v_b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    store.append_decisions([record(1, version=v_a), record(2, version=v_a, allow=False, rules=("G-1",)),
                            record(3, version=v_b, action="order.cancel", rules=("E-2", "E-1")),
                            record(70, version=v_b, allow=False, rules=("G-1",))])
    assert store.get_decision("d-000002")["result"]["allow"] is False
    assert store.get_decision("missing") is None
    ids = lambda rows: [r["decision_id"] for r in rows]  # noqa: E731
    assert ids(store.query_decisions(allow=False)) == ["d-000002", "d-000070"]
    assert ids(store.query_decisions(action="order.cancel")) == ["d-000003"]
    assert ids(store.query_decisions(rule="G-1")) == ["d-000002", "d-000070"]
    assert ids(store.query_decisions(rule="E-1")) == ["d-000001", "d-000003"]
    assert ids(store.query_decisions(version=v_b)) == ["d-000003", "d-000070"]
    assert ids(store.query_decisions(since="2026-11-23T10:00:02Z", until="2026-11-23T10:01:00Z")) == [
        "d-000002", "d-000003"]
    assert ids(store.query_decisions(since="2026-11-23T11:00:02+01:00")) == ["d-000002", "d-000003", "d-000070"]
    assert ids(store.query_decisions(limit=2)) == ["d-000001", "d-000002"]
    assert ids(store.query_decisions(after_seq=2)) == ["d-000003", "d-000070"]
    assert ids(store.query_decisions(newest_first=True, limit=1)) == ["d-000070"]
    assert ids(store.query_decisions(allow=True, rule="E-1", version=v_a)) == ["d-000001"]
    for bad in ({"limit": 0}, {"since": "yesterday"}, {"allow": "yes"}, {"after_seq": "3"}):
        with pytest.raises(InvalidInput):
            store.query_decisions(**bad)


def test_append_is_idempotent_per_decision_id(store):
    store.append_decisions([record(1), record(2)])
    store.append_decisions([record(2), record(3), record(3)])
    assert [r["decision_id"] for r in store.query_decisions()] == ["d-000001", "d-000002", "d-000003"]
    assert store.verify_chain().ok


def test_a_malformed_record_writes_nothing(store):
    good = record(1)
    bads = [dict(good, decision_id=""), dict(good, time="noon"), dict(good, result={"rules": []}),
            dict(good, input={"x": float("nan")}), dict(good, extra=1),
            dict(good, result=dict(good["result"], rules=["R" * 101])),
            dict(good, policy_version="v" * 101), dict(good, decision_id="i" * 65),
            {k: v for k, v in good.items() if k != "action"}, "not a record"]
    for bad in bads:
        with pytest.raises(InvalidInput):
            store.append_decisions([good, bad])
    assert store.query_decisions() == [] and store.decision_count() == 0


@pytest.mark.parametrize("column,value", [
    ("input", '{"context":{"system":"shop"},"resource":{"customer":{"blocked":false,"n":999}}}'),
    ("result", '{"allow":true,"error":null,"obligations":[],"policy_version":"x","rules":[]}'),
    ("action", "order.delete"),
    ("time", "2026-11-23T09:00:00.000000Z"),
])
def test_a_tampered_row_is_detected_at_its_seq(store, column, value):
    store.append_decisions([record(i) for i in range(1, 8)])
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE decisions SET {column} = :v WHERE seq = 5"), {"v": value})
    report = store.verify_chain()
    assert not report.ok
    assert report.first_broken_seq == 5 and report.first_broken_id == "d-000005"
    assert report.checked == 4
    assert "altered" in report.reason


def test_tampering_with_hashes_order_deletion_and_derived_columns_is_detected(store):
    store.append_decisions([record(i) for i in range(1, 8)])
    # recomputing the hash of an altered row breaks the link to the next one
    row = store.query_decisions(after_seq=2, limit=1)[0]
    row["input"]["resource"]["customer"]["blocked"] = True
    body = {k: row[k] for k in ("decision_id", "time", "action", "input", "result", "policy_version")}
    forged = entry_hash(row["prev_hash"], 3, body)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE decisions SET input = :i, hash = :h WHERE seq = 3"),
                     {"i": canonical_json(row["input"]), "h": forged})
    report = store.verify_chain()
    assert (report.ok, report.first_broken_seq) == (False, 4)
    assert "prev_hash" in report.reason

    s2 = store
    with s2.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM decision_rules"))
        conn.execute(sa.text("DELETE FROM decisions"))
        conn.execute(sa.text("UPDATE store_heads SET seq = 0, hash = :g WHERE name = 'decision_log'"),
                     {"g": GENESIS})
    s2.append_decisions([record(i) for i in range(1, 8)])
    with s2.engine.begin() as conn:  # a removed entry
        conn.execute(sa.text("DELETE FROM decision_rules WHERE seq = 6"))
        conn.execute(sa.text("DELETE FROM decisions WHERE seq = 6"))
    report = s2.verify_chain()
    assert (report.ok, report.first_broken_seq) == (False, 6) and "missing" in report.reason

    with s2.engine.begin() as conn:  # the allow column no longer matches the hashed result
        conn.execute(sa.text("UPDATE decisions SET allow = :f WHERE seq = 2"), {"f": False})
    report = s2.verify_chain()
    assert (report.ok, report.first_broken_seq) == (False, 2) and "allow" in report.reason


def test_truncating_the_tail_is_detected(store):
    store.append_decisions([record(i) for i in range(1, 6)])
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM decision_rules WHERE seq >= 4"))
        conn.execute(sa.text("DELETE FROM decisions WHERE seq >= 4"))
    report = store.verify_chain()
    assert not report.ok and report.first_broken_seq == 4


def test_an_entry_inserted_beyond_the_head_is_detected(store):
    store.append_decisions([record(i) for i in range(1, 4)])
    forged = store.query_decisions(after_seq=2)[0]
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO decisions (seq, decision_id, time, action, allow, policy_version, "
                             "input, result, prev_hash, hash) SELECT 4, 'forged', time, action, allow, "
                             "policy_version, input, result, hash, hash FROM decisions WHERE seq = 3"))
    report = store.verify_chain()
    assert not report.ok and report.first_broken_seq == 4 and report.first_broken_id == "forged"
    assert report.checked == 3 and forged["seq"] == 3


def test_verifying_while_others_append_sees_a_consistent_chain(store):
    stop = threading.Event()

    def append() -> None:
        b = 0
        while not stop.is_set() and b < 200:
            store.append_decisions([record(i, prefix=f"c{b}") for i in range(5)])
            b += 1

    writer = threading.Thread(target=append)
    writer.start()
    try:
        reports = [store.verify_chain() for _ in range(15)]
    finally:
        stop.set()
        writer.join()
    assert all(r.ok for r in reports), [r.reason for r in reports if not r.ok]
    assert store.verify_chain().checked == store.decision_count()


def test_concurrent_appending_threads_keep_one_chain(store):
    errors: list[Exception] = []

    def work(t: int) -> None:
        try:
            for b in range(10):
                store.append_decisions([record(i, prefix=f"t{t}-{b}") for i in range(5)])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    report = store.verify_chain()
    assert report.ok and report.checked == 200


# -- DecisionLogWriter ------------------------------------------------------------------------


class FlakyStore:
    """Delegates to a real store; append_decisions fails while ``down`` is set (database down)."""

    def __init__(self, real: Store):
        self.real = real
        self.down = threading.Event()
        self.calls = 0

    def append_decisions(self, records):
        self.calls += 1
        if self.down.is_set():
            raise StoreError("append_decisions: database unavailable (simulated)")
        return self.real.append_decisions(records)


def _wait_for(predicate, timeout=30.0):
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        done.wait(0.01)
    return predicate()


def test_writer_batches_and_writes_everything(store):
    w = DecisionLogWriter(store, batch_size=50, flush_interval=0.01)
    for i in range(500):
        assert w.submit(record(i))
    assert w.flush(timeout=30)
    st = w.stats()
    assert st["written"] == 500 and st["queued"] == 0 and st["dropped"] == 0 and st["healthy"]
    assert w.close()
    assert store.verify_chain().checked == 500
    assert not w.submit(record(1000))  # closed: not queued, caller must fail closed
    with pytest.raises(InvalidInput):
        DecisionLogWriter(store, start=False).submit({"decision_id": "x"})


@pytest.mark.parametrize("on_full", ["block", "fail_closed"])
def test_writer_keeps_failed_batches_and_fails_closed_when_full_while_the_database_is_down(store, on_full):
    flaky = FlakyStore(store)
    flaky.down.set()
    w = DecisionLogWriter(flaky, batch_size=4, flush_interval=0.0, max_queue=10, on_full=on_full,
                          block_timeout=30, max_retry_delay=0.05)
    accepted = [w.submit(record(i)) for i in range(10)]
    assert all(accepted)
    assert _wait_for(lambda: w.stats()["failed_batches"] >= 2)
    st = w.stats()
    assert st["healthy"] is False and "unavailable" in st["last_error"]
    assert st["queued"] == 10 and st["written"] == 0 and st["dropped"] == 0
    # full and unhealthy: refused at once in both modes (block would otherwise wait 30 s)
    assert w.submit(record(10)) is False
    assert w.stats()["rejected"] == 1
    assert not w.flush(timeout=0.2)

    flaky.down.clear()  # the database is back: the kept records are written, in order
    assert w.flush(timeout=30)
    st = w.stats()
    assert st["written"] == 10 and st["queued"] == 0 and st["healthy"] and st["dropped"] == 0
    assert w.submit(record(11))
    assert w.close(timeout=30)
    rows = store.query_decisions(limit=100)
    assert [r["decision_id"] for r in rows] == [f"d-{i:06d}" for i in list(range(10)) + [11]]
    assert store.verify_chain().ok


def test_fail_closed_refuses_when_full_even_if_healthy(store):
    w = DecisionLogWriter(store, max_queue=3, on_full="fail_closed", start=False)
    assert [w.submit(record(i)) for i in range(4)] == [True, True, True, False]
    st = w.stats()
    assert st["queued"] == 3 and st["rejected"] == 1 and st["dropped"] == 0


def test_block_waits_for_room_while_healthy(store):
    flaky = FlakyStore(store)
    w = DecisionLogWriter(flaky, batch_size=2, flush_interval=0.0, max_queue=2, on_full="block",
                          block_timeout=60)
    results = [w.submit(record(i)) for i in range(20)]  # far more than the queue holds
    assert all(results)
    assert w.close(timeout=30)
    assert w.stats()["written"] == 20 and w.stats()["rejected"] == 0
    assert store.verify_chain().checked == 20


def test_writer_against_a_database_that_does_not_answer(tmp_path):
    down = Store("postgresql+psycopg://postgres@127.0.0.1:1/test")
    w = DecisionLogWriter(down, batch_size=10, flush_interval=0.0, max_queue=5, on_full="block",
                          block_timeout=30, max_retry_delay=0.05)
    assert all(w.submit(record(i)) for i in range(5))
    assert _wait_for(lambda: w.stats()["failed_batches"] >= 1)
    assert w.submit(record(5)) is False
    st = w.stats()
    assert st["healthy"] is False and st["queued"] == 5 and st["dropped"] == 0
    assert w.close(timeout=0.2) is False  # unwritten records are reported, not silently lost
    assert w.stats()["queued"] == 5
    down.dispose()


def test_records_are_canonical_json_in_the_database(store):
    store.append_decisions([record(1)])
    with store.engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT input, result FROM decisions WHERE seq = 1")).one()
    assert raw[0] == canonical_json(record(1)["input"])
    assert json.loads(raw[1]) == record(1)["result"]
