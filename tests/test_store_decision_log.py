"""The decision log: append, query, the hash chain and its verification, the batching writer."""
from __future__ import annotations

import json
import threading
import time

import pytest
import sqlalchemy as sa
from test_store_helpers import drop_guards, record

from store import DecisionLogWriter, InvalidInput, Store, StoreError
from store.chain import GENESIS, canonical_json, entry_hash


def test_append_assigns_seq_and_chains_hashes(verify_path, store):
    store.append_decisions([record(i) for i in range(1, 4)])
    store.append_decisions([record(4, allow=False, rules=("G-1",))])
    rows = store.query_decisions(limit=10)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["prev_hash"] == GENESIS
    for prev, row in zip([None] + rows[:-1], rows, strict=False):
        if prev:
            assert row["prev_hash"] == prev["hash"]
        body = {k: row[k] for k in ("decision_id", "time", "action", "input", "result", "policy_version")}
        assert row["hash"] == entry_hash(row["prev_hash"], row["seq"], body)
    assert rows[0]["time"] == "2026-11-23T10:00:01.000123Z"  # normalised UTC text
    assert rows[0]["input"] == record(1)["input"] and rows[0]["result"] == record(1)["result"]
    report = store.verify_chain()
    assert report.ok and report.checked == 4 and report.first_broken_seq is None
    assert store.decision_count() == 4


def test_groups_of_every_size_are_written_whole_and_in_order(store):
    # SQLite writes a group in multi-row INSERTs of 64, 32, ... 1 rows: every remainder is written
    sizes = [1, 2, 3, 7, 63, 64, 65, 100, 127, 129]
    rules = [(), ("E-1",), ("G-1", "E-2", "E-1")]
    seq = 0
    for size in sizes:
        store.append_decisions([record(seq + k, rules=rules[(seq + k) % 3]) for k in range(size)])
        seq += size
    rows = store.query_decisions(limit=1000)
    assert [r["decision_id"] for r in rows] == [record(i)["decision_id"] for i in range(seq)]
    assert [r["seq"] for r in rows] == list(range(1, seq + 1))
    assert len(store.query_decisions(rule="E-1", limit=1000)) == len([i for i in range(seq) if i % 3])
    assert len(store.query_decisions(rule="G-1", limit=1000)) == len([i for i in range(seq) if i % 3 == 2])
    report = store.verify_chain()
    assert report.ok and report.checked == seq == sum(sizes)


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


def test_append_is_idempotent_per_decision_id(verify_path, store):
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
def test_a_tampered_row_is_detected_at_its_seq(verify_path, store, column, value):
    store.append_decisions([record(i) for i in range(1, 8)])
    drop_guards(store.engine)
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE decisions SET {column} = :v WHERE seq = 5"), {"v": value})
    report = store.verify_chain()
    assert not report.ok
    assert report.first_broken_seq == 5 and report.first_broken_id == "d-000005"
    assert report.checked == 4
    assert "altered" in report.reason


def test_tampering_with_hashes_order_deletion_and_derived_columns_is_detected(verify_path, store):
    store.append_decisions([record(i) for i in range(1, 8)])
    drop_guards(store.engine)
    # recomputing the hash of an altered row breaks the link to the next one
    row = store.query_decisions(after_seq=2, limit=1)[0]
    row["input"]["resource"]["customer"]["blocked"] = True
    body = {k: row[k] for k in ("decision_id", "time", "action", "input", "result", "policy_version")}
    forged = entry_hash(row["prev_hash"], 3, body)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE decisions SET input = :i, hash = :h WHERE seq = 3"),
                     {"i": canonical_json(row["input"]), "h": forged})
    report = store.verify_chain()
    # the forged entry itself is named, not the intact one after it
    assert (report.ok, report.first_broken_seq, report.first_broken_id) == (False, 3, "d-000003")
    assert "replaced" in report.reason and report.checked == 2

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


@pytest.mark.parametrize("seq", [1, 4, 7])
def test_a_forged_replacement_is_named_at_its_own_seq(verify_path, store, seq):
    """Content and hash of one entry rewritten together (by someone who dropped the triggers)."""
    store.append_decisions([record(i) for i in range(1, 8)])
    drop_guards(store.engine)
    row = store.query_decisions(after_seq=seq - 1, limit=1)[0]
    row["result"]["allow"] = not row["result"]["allow"]
    body = {k: row[k] for k in ("decision_id", "time", "action", "input", "result", "policy_version")}
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE decisions SET result = :r, allow = :a, hash = :h WHERE seq = :s"),
                     {"r": canonical_json(row["result"]), "a": row["result"]["allow"], "s": seq,
                      "h": entry_hash(row["prev_hash"], seq, body)})
    report = store.verify_chain()
    assert (report.ok, report.first_broken_seq, report.first_broken_id) == (False, seq, row["decision_id"])
    assert "replaced" in report.reason and report.checked == seq - 1


@pytest.mark.parametrize("statement", [
    "UPDATE decisions SET action = 'order.delete' WHERE seq = 2",
    "DELETE FROM decisions WHERE seq = 3",
    "UPDATE decision_rules SET rule_id = 'G-9' WHERE seq = 2",
    "DELETE FROM decision_rules",
    "UPDATE store_heads SET seq = 1 WHERE name = 'decision_log'",
    "UPDATE store_heads SET hash = '00' WHERE name = 'decision_log'",
    "DELETE FROM store_heads WHERE name = 'decision_log'",
])
def test_the_log_tables_are_append_only(verify_path, store, statement):
    store.append_decisions([record(i) for i in range(1, 4)])
    with pytest.raises(sa.exc.DatabaseError, match="append-only|only moves forward"), store.engine.begin() as conn:
        conn.execute(sa.text(statement))
    assert store.verify_chain().ok and store.decision_count() == 3
    store.append_decisions([record(4)])  # appending still works
    assert store.verify_chain().checked == 4


def test_truncating_the_tail_is_detected(verify_path, store):
    store.append_decisions([record(i) for i in range(1, 6)])
    drop_guards(store.engine)
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM decision_rules WHERE seq >= 4"))
        conn.execute(sa.text("DELETE FROM decisions WHERE seq >= 4"))
    report = store.verify_chain()
    assert not report.ok and report.first_broken_seq == 4


def test_an_entry_inserted_beyond_the_head_is_detected(verify_path, store):
    store.append_decisions([record(i) for i in range(1, 4)])
    drop_guards(store.engine)
    forged = store.query_decisions(after_seq=2)[0]
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO decisions (seq, decision_id, time, action, allow, policy_version, "
                             "input, result, prev_hash, hash) SELECT 4, 'forged', time, action, allow, "
                             "policy_version, input, result, hash, hash FROM decisions WHERE seq = 3"))
    report = store.verify_chain()
    assert not report.ok and report.first_broken_seq == 4 and report.first_broken_id == "forged"
    assert report.checked == 3 and forged["seq"] == 3


def test_verifying_while_others_append_sees_a_consistent_chain(verify_path, store):
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


def test_concurrent_appending_threads_keep_one_chain(verify_path, store):
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
    """Delegates to a real store; append_decisions fails while ``down`` is set (database down) and
    waits while ``stall`` is set (a database that does not answer)."""

    def __init__(self, real: Store):
        self.real = real
        self.down = threading.Event()
        self.stall = threading.Event()
        self.calls = 0

    def append_decisions(self, records):
        self.calls += 1
        while self.stall.is_set():
            time.sleep(0.01)
        if self.down.is_set():
            raise StoreError("append_decisions: database unavailable (simulated)")
        return self.real.append_decisions(records)

    def ping(self):
        if self.down.is_set():
            raise StoreError("ping: database unavailable (simulated)")


def _wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def _in_threads(fn, count):
    results = [None] * count
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, fn(i))) for i in range(count)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results


def test_a_recorded_decision_is_committed_when_record_returns_and_callers_share_commits(store):
    flaky = FlakyStore(store)
    w = DecisionLogWriter(flaky, batch_size=50)
    logged = []

    def caller(t):
        for i in range(25):
            rec = record(i, prefix=f"t{t}")
            assert w.record([rec]) == set()
            logged.append(rec["decision_id"])
            # answered as recorded: it is in the database now, not merely queued
            assert store.get_decision(rec["decision_id"]) is not None
        return True

    assert all(_in_threads(caller, 8))
    st = w.stats()
    assert st["written"] == 200 and st["queued"] == 0 and st["failed"] == 0 and st["durability"] == "commit"
    assert flaky.calls < 200  # group commit: concurrent callers shared transactions
    assert w.record([record(i, prefix="many") for i in range(120)]) == set()
    assert w.close()
    assert store.verify_chain().checked == 320
    assert w.record([record(1000)]) == {"d-001000"}  # closed: not recorded, caller must fail closed
    with pytest.raises(InvalidInput):
        DecisionLogWriter(store, start=False).record([{"decision_id": "x"}])


def test_commit_mode_fails_the_callers_of_a_failed_transaction_and_recovers(store):
    flaky = FlakyStore(store)
    w = DecisionLogWriter(flaky, max_retry_delay=0.05)
    assert w.record([record(1)]) == set()
    flaky.down.set()
    assert w.record([record(2), record(3)]) == {"d-000002", "d-000003"}
    assert not w.submit(record(4))
    st = w.stats()
    assert st["healthy"] is False and "unavailable" in st["last_error"]
    assert st["failed"] == 3 and st["queued"] == 0 and st["dropped"] == 0
    flaky.down.clear()  # back: healthy again without any decision to write (the writer probes)
    assert _wait_for(lambda: w.healthy, 5)
    assert w.record([record(5)]) == set()
    assert w.close()
    # failed decisions were answered fail closed and are not in the log; the rest are
    assert [r["decision_id"] for r in store.query_decisions()] == ["d-000001", "d-000005"]
    assert store.verify_chain().ok


def test_a_caller_waits_no_longer_than_the_commit_timeout(store):
    flaky = FlakyStore(store)
    w = DecisionLogWriter(flaky, commit_timeout=0.3)
    flaky.stall.set()
    started = time.monotonic()
    assert w.record([record(1)]) == {"d-000001"}
    assert w.record([record(2)]) == {"d-000002"}
    assert time.monotonic() - started < 5
    flaky.stall.clear()
    assert w.flush(timeout=10) and w.close()
    # record 1 was already in the stalled transaction: it may be written (its caller was refused);
    # record 2 was still queued when its caller gave up: the writer skipped it
    assert store.get_decision("d-000002") is None
    assert w.stats()["failed"] == 2


def test_closing_fails_the_waiting_callers_and_never_drops_silently(store):
    flaky = FlakyStore(store)
    flaky.stall.set()
    w = DecisionLogWriter(flaky, commit_timeout=60, max_retry_delay=0.05)
    results = []
    waiter = threading.Thread(target=lambda: results.append(w.record([record(1), record(2)])))
    waiter.start()
    assert _wait_for(lambda: flaky.calls == 1)
    second = threading.Thread(target=lambda: results.append(w.record([record(3)])))
    second.start()
    assert _wait_for(lambda: w.stats()["queued"] == 1)
    threading.Timer(1.0, flaky.stall.clear).start()
    assert w.close(timeout=0.2) is False  # record 3 never written: its caller is told so
    second.join(5)
    waiter.join(5)
    assert {"d-000003"} in results and w.stats()["failed"] == 1


@pytest.mark.parametrize("on_full", ["block", "fail_closed"])
def test_async_mode_keeps_failed_batches_and_fails_closed_when_full(store, on_full):
    flaky = FlakyStore(store)
    flaky.down.set()
    w = DecisionLogWriter(flaky, durability="async", batch_size=4, flush_interval=0.0, max_queue=10,
                          on_full=on_full, block_timeout=0.3, max_retry_delay=0.05)
    assert all(w.submit(record(i)) for i in range(10))
    assert _wait_for(lambda: w.stats()["failed_batches"] >= 2)
    st = w.stats()
    assert st["healthy"] is False and st["queued"] == 10 and st["at_risk"] == 10 and st["written"] == 0
    started = time.monotonic()
    assert w.submit(record(10)) is False  # full: block waits block_timeout, fail_closed not at all
    waited = time.monotonic() - started
    assert waited >= 0.3 if on_full == "block" else waited < 0.3
    assert w.stats()["rejected"] == 1
    flaky.down.clear()  # the database is back: the kept records are written, in order
    assert w.flush(timeout=30)
    st = w.stats()
    assert st["written"] == 10 and st["queued"] == 0 and st["at_risk"] == 0 and st["healthy"]
    assert w.close(timeout=30)
    rows = store.query_decisions(limit=100)
    assert [r["decision_id"] for r in rows] == [f"d-{i:06d}" for i in range(10)]


def test_async_mode_counts_what_shutdown_leaves_unwritten_as_dropped(store):
    flaky = FlakyStore(store)
    flaky.down.set()
    w = DecisionLogWriter(flaky, durability="async", max_retry_delay=0.05)
    assert all(w.submit(record(i)) for i in range(5))
    assert w.close(timeout=0.2) is False
    assert w.stats()["dropped"] == 5 and w.stats()["queued"] == 0


def test_block_waits_for_room_even_while_the_database_is_down(store):
    flaky = FlakyStore(store)
    flaky.down.set()
    w = DecisionLogWriter(flaky, durability="async", batch_size=2, max_queue=2, on_full="block",
                          block_timeout=60, max_retry_delay=0.05)
    threading.Timer(0.5, flaky.down.clear).start()
    started = time.monotonic()
    assert all(w.submit(record(i)) for i in range(20))  # far more than the queue holds
    assert time.monotonic() - started >= 0.4
    assert w.close(timeout=30)
    assert w.stats()["written"] == 20 and w.stats()["rejected"] == 0
    assert store.verify_chain().checked == 20


def test_the_queue_is_bounded_in_bytes(store):
    flaky = FlakyStore(store)
    flaky.down.set()
    w = DecisionLogWriter(flaky, durability="async", max_queue=1000, max_queue_bytes=3 << 20,
                          on_full="fail_closed", max_retry_delay=0.05)
    big = lambda i: dict(record(i), input={"blob": "x" * (1 << 20)})  # noqa: E731
    assert [w.submit(big(i)) for i in range(5)] == [True, True, False, False, False]
    st = w.stats()
    assert st["queued"] == 2 and st["rejected"] == 3 and 2 << 20 < st["queued_bytes"] <= 3 << 20
    assert w.submit(record(9))  # a small one still fits
    flaky.down.clear()
    assert w.close(timeout=30) and w.stats()["written"] == 3


def test_writer_against_a_database_that_does_not_answer():
    down = Store("postgresql+psycopg://postgres@127.0.0.1:1/test")
    w = DecisionLogWriter(down, max_retry_delay=0.05)
    assert w.record([record(i) for i in range(5)]) == {f"d-{i:06d}" for i in range(5)}
    st = w.stats()
    assert st["healthy"] is False and st["failed"] == 5 and st["queued"] == 0
    assert w.close(timeout=1)
    down.dispose()


def test_records_are_canonical_json_in_the_database(store):
    store.append_decisions([record(1)])
    with store.engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT input, result FROM decisions WHERE seq = 1")).one()
    assert raw[0] == canonical_json(record(1)["input"])
    assert json.loads(raw[1]) == record(1)["result"]


def _hold_the_chain_head(store: Store):
    """Lock the decision log's chain head as another process's append would (a context manager)."""
    import contextlib

    @contextlib.contextmanager
    def held():
        if store.dialect == "postgresql":
            with store.engine.connect() as conn, conn.begin():
                conn.execute(sa.text("SELECT seq FROM store_heads WHERE name = 'decision_log' FOR UPDATE"))
                yield
        else:
            with store.db.writer_lock("test"):
                yield
    return held()


def test_records_queued_while_the_writer_waits_for_the_chain_head_join_its_transaction(store):
    transactions = []
    append = store.append_decisions

    def counting(records, more=None):
        transactions.append(len(records))
        append(records, more=more)

    store.append_decisions = counting
    writer = DecisionLogWriter(store)
    try:
        answers = []
        with _hold_the_chain_head(store):
            first = threading.Thread(target=lambda: answers.append(writer.submit(record(1))))
            first.start()
            deadline = time.monotonic() + 10
            while not transactions and time.monotonic() < deadline:  # the writer took record 1 and waits
                time.sleep(0.01)
            assert transactions == [1]
            others = [threading.Thread(target=lambda i=i: answers.append(writer.submit(record(i))))
                      for i in range(2, 6)]
            for thread in others:
                thread.start()
            while writer.stats()["queued"] < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert store.decision_count() == 0 and answers == []  # nobody answered before the commit
        for thread in [first, *others]:
            thread.join(10)
        assert answers == [True] * 5
        assert transactions == [1]  # one transaction: the four queued meanwhile joined it
        assert [r["decision_id"] for r in store.query_decisions()] == [record(i)["decision_id"] for i in range(1, 6)]
        assert store.verify_chain().ok
    finally:
        writer.close()


def test_a_refused_record_that_joined_a_transaction_is_set_aside_alone(store):
    from store import RecordRefused

    locked = threading.Event()
    calls = []

    def append(records, more=None):  # the chain head is locked by someone else until `locked` is set
        calls.append([r.decision_id for r in records])
        if more is not None:
            assert locked.wait(10)
            records = records + more()
        if any(r.decision_id == "d-000002" for r in records):
            raise RecordRefused("refused for its content")
        store.log.append(records)

    class Refusing:
        append_decisions = staticmethod(append)

    writer = DecisionLogWriter(Refusing())
    assert writer._more
    try:
        answers = {}
        threads = [threading.Thread(target=lambda i=i: answers.update({i: writer.submit(record(i))}))
                   for i in (1, 2, 3)]
        threads[0].start()
        deadline = time.monotonic() + 10
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        for thread in threads[1:]:
            thread.start()
        while writer.stats()["queued"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        locked.set()
        for thread in threads:
            thread.join(10)
        assert answers == {1: True, 2: False, 3: True}
        assert [r["decision_id"] for r in store.query_decisions()] == ["d-000001", "d-000003"]
        assert writer.stats()["set_aside"] == 1 and writer.stats()["written"] == 2
        assert store.verify_chain().ok
    finally:
        writer.close()


# -- record_nowait: for a caller that must not wait (an event loop) ---------------------------------


class _Notices:
    """A ``notify`` for record_nowait: keeps each call (one a commit), from the writer's thread."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[object, set[str]]]] = []
        self.threads: set[str] = set()

    def __call__(self, settled):
        self.threads.add(threading.current_thread().name)
        self.calls.append(list(settled))

    def settled(self) -> dict:
        return {token: failed for call in self.calls for token, failed in call}


def test_record_nowait_queues_and_tells_each_commit_once_with_every_group_it_settled(store):
    flaky = FlakyStore(store)
    w = DecisionLogWriter(flaky)
    notices = _Notices()
    flaky.stall.set()  # the first group's transaction waits: the next three queue behind it
    first = w.record_nowait([record(1)], notices, "first")
    assert _wait_for(lambda: flaky.calls == 1)
    groups = [w.record_nowait([record(i), record(i + 10)], notices, f"g{i}") for i in (2, 3, 4)]
    assert notices.calls == [] and all(g is not None and not isinstance(g, set) for g in [first, *groups])
    flaky.stall.clear()
    assert w.flush(10)
    assert _wait_for(lambda: len(notices.settled()) == 4)
    # two commits (the first group, then the three queued behind it): two calls, on the writer's thread
    assert [sorted(token for token, _ in call) for call in notices.calls] == [["first"], ["g2", "g3", "g4"]]
    assert notices.settled() == {"first": set(), "g2": set(), "g3": set(), "g4": set()}
    assert notices.threads == {"ordergate-decision-log"}
    assert {r["decision_id"] for r in store.query_decisions()} == {
        "d-000001", "d-000002", "d-000003", "d-000004", "d-000012", "d-000013", "d-000014"}
    assert w.close()


def test_record_nowait_reports_a_failed_commit_and_give_up_ends_the_wait(store):
    flaky = FlakyStore(store)
    w = DecisionLogWriter(flaky, max_retry_delay=0.05)
    notices = _Notices()
    flaky.down.set()
    assert w.record_nowait([record(1)], notices, "down") is not None
    assert _wait_for(lambda: "down" in notices.settled())
    assert notices.settled()["down"] == {"d-000001"}  # failed: its caller answers fail closed
    flaky.down.clear()
    flaky.stall.set()
    stalled = w.record_nowait([record(2)], notices, "stalled")
    assert _wait_for(lambda: flaky.calls >= 2)
    queued = w.record_nowait([record(3)], notices, "queued")
    assert w.give_up(queued) == {"d-000003"} and w.give_up(stalled) == {"d-000002"}
    flaky.stall.clear()
    assert w.flush(10)
    assert "queued" not in notices.settled() and "stalled" not in notices.settled()  # nobody waits for them
    assert store.get_decision("d-000003") is None  # skipped: its caller was refused
    assert w.stats()["failed"] == 3 and w.close()


def test_record_nowait_never_waits_for_room(store):
    flaky = FlakyStore(store)
    flaky.stall.set()
    blocking = DecisionLogWriter(flaky, max_queue=2, on_full="block", block_timeout=60)
    notices = _Notices()
    assert blocking.record_nowait([record(1), record(2)], notices, "a") is not None
    started = time.monotonic()
    # no room now: nothing queued, the caller is told to wait elsewhere (on a thread, with record())
    assert blocking.record_nowait([record(3)], notices, "b") is None
    refusing = DecisionLogWriter(FlakyStore(store), max_queue=1, on_full="fail_closed")
    refusing._store.stall.set()
    assert refusing.record_nowait([record(4)], notices, "c") is not None
    assert _wait_for(lambda: refusing._store.calls == 1)
    assert refusing.record_nowait([record(5), record(6)], notices, "d") == {"d-000005", "d-000006"}
    assert time.monotonic() - started < 5
    async_writer = DecisionLogWriter(store, durability="async")
    assert async_writer.record_nowait([record(7)], notices, "e") == set()  # queued: nothing to wait for
    assert async_writer.record_nowait([], notices, "f") == set()
    for writer in (blocking, refusing):
        writer._store.stall.clear()
        assert writer.close()
    assert async_writer.close()
    assert blocking.stats()["rejected"] == 0 and refusing.stats()["rejected"] == 2


@pytest.mark.parametrize("timeout", [-1.0, float("inf"), float("nan"), 1e12])
def test_a_commit_timeout_a_caller_cannot_wait_for_is_refused_at_start(timeout):
    with pytest.raises(ValueError, match="commit_timeout"):
        DecisionLogWriter(None, commit_timeout=timeout, start=False)


def test_rows_too_wide_for_one_sqlite_statement_fail_the_append_instead_of_being_left_out():
    from store.log import _insert_sqlite

    class Connection:
        def getlimit(self, _limit: int) -> int:
            return 5   # fewer parameters than one row has

    class Cursor:
        connection = Connection()
        executed: list = []

        def execute(self, sql, params):  # pragma: no cover - must not be reached
            self.executed.append(sql)

    cursor = Cursor()
    with pytest.raises(StoreError, match="do not fit"):
        _insert_sqlite(cursor, "INSERT INTO t (a, b, c, d, e, f) VALUES (%s, %s, %s, %s, %s, %s)",
                       [(1, 2, 3, 4, 5, 6)] * 3)
    assert cursor.executed == []


def test_a_retried_record_after_many_new_ones_is_written_once(verify_path, store):
    # the rows go in several statements; the one logged already is in the last of them, so the
    # transaction is rolled back after rows were inserted, and written again without it
    store.append_decisions([record(600)])
    store.append_decisions([record(i) for i in range(1, 601)])
    logged = store.query_decisions(limit=1000)
    assert [r["decision_id"] for r in logged] == ["d-000600"] + [f"d-{i:06d}" for i in range(1, 600)]
    assert [r["seq"] for r in logged] == list(range(1, 601))
    assert store.decision_count() == 600 and store.verify_chain().ok
    store.append_decisions([record(5), record(600)])  # every one logged already: nothing written
    assert store.decision_count() == 600 and store.verify_chain().ok


def test_a_rule_row_beyond_the_chain_head_is_reported(verify_path, store):
    store.append_decisions([record(1), record(2), record(3)])
    assert store.verify_chain().ok
    with store.engine.begin() as conn:  # an insert is all the append-only guards let through
        conn.execute(sa.text("INSERT INTO decision_rules (rule_id, seq) VALUES ('G-9', 7)"))
    report = store.verify_chain()
    assert not report.ok and report.checked == 3 and report.first_broken_seq == 7
    assert "rule index names entry 7, beyond the chain head" in report.reason
    with store.engine.begin() as conn:  # and one below the first entry (no foreign key refuses it)
        conn.execute(sa.text("INSERT INTO decision_rules (rule_id, seq) VALUES ('G-9', 0)"))
    report = store.verify_chain()
    assert not report.ok and report.first_broken_seq == 0
    assert "rule index names entry 0, before the chain's first entry" in report.reason


def test_the_rule_index_migration_keeps_a_logged_history(db_url):
    """Revision 0006 drops the rule index's foreign key on a log that has entries: every entry,
    rule row and guard is still there, the chain verifies, and appending goes on."""
    from alembic import command

    s = Store(db_url)
    cfg = s.db._alembic_config()
    with s.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
    s.append_decisions([record(i, rules=("E-1", "G-1") if i % 2 else ("E-1",)) for i in range(1, 41)])
    assert sa.inspect(s.engine).get_foreign_keys("decision_rules") != []
    s.migrate()
    assert s.db.schema_revision() == "0006"
    assert sa.inspect(s.engine).get_foreign_keys("decision_rules") == []
    assert [r["seq"] for r in s.query_decisions(rule="G-1", limit=100)] == list(range(1, 41, 2))
    assert len(s.query_decisions(rule="E-1", limit=100)) == 40
    s.append_decisions([record(41, rules=("G-1",))])
    assert s.verify_chain().ok and s.verify_chain().checked == 41
    with pytest.raises(sa.exc.DBAPIError), s.engine.begin() as conn:  # still append-only
        conn.execute(sa.text("DELETE FROM decision_rules WHERE seq = 1"))
    with pytest.raises(sa.exc.DBAPIError), s.engine.begin() as conn:
        conn.execute(sa.text("UPDATE decision_rules SET rule_id = 'X' WHERE seq = 2"))
    assert len(s.query_decisions(rule="G-1", limit=100)) == 21
    s.dispose()


# -- the queue holds groups: split across transactions, settled at once --------------------------


class _Recording(FlakyStore):
    """A FlakyStore that keeps the decision ids of every transaction and refuses those in ``refuse``."""

    def __init__(self, real: Store, refuse=()):
        super().__init__(real)
        self.batches: list[list[str]] = []
        self.refuse = set(refuse)
        self.gate = threading.Event()
        self.gate.set()

    def append_decisions(self, records):
        from store import RecordRefused

        ids = [r.decision_id for r in records]
        self.batches.append(ids)
        assert self.gate.wait(10)
        if self.refuse & set(ids):
            raise RecordRefused("refused for its content (simulated)")
        return super().append_decisions(records)


def test_a_group_larger_than_the_room_left_is_split_and_its_caller_answered_after_its_last_part(store):
    recording = _Recording(store)
    notices = _Notices()
    w = DecisionLogWriter(recording, batch_size=4, start=False)
    groups = {name: [record(i, prefix=name) for i in range(size)] for name, size in (("a", 3), ("b", 5), ("c", 4))}
    pending = {name: w.record_nowait(recs, notices, name) for name, recs in groups.items()}
    assert all(not isinstance(p, set) and p is not None for p in pending.values())
    assert w.stats()["queued"] == 12
    w._thread.start()
    assert w.flush(timeout=30)
    ids = lambda name: [r["decision_id"] for r in groups[name]]  # noqa: E731
    # batch_size holds exactly: b's first record fills the first transaction, its rest the second
    assert recording.batches == [ids("a") + ids("b")[:1], ids("b")[1:], ids("c")]
    # one notice a commit, each with the groups it settled: b only once its last record is written
    assert notices.calls == [[("a", set())], [("b", set())], [("c", set())]]
    st = w.stats()
    assert st["written"] == 12 and st["queued"] == 0 and st["queued_bytes"] == 0 and st["failed"] == 0
    assert w.close()
    assert [r["decision_id"] for r in store.query_decisions(limit=20)] == ids("a") + ids("b") + ids("c")
    assert store.verify_chain().ok


def test_a_refused_record_inside_a_group_is_set_aside_and_the_rest_of_every_group_written(store):
    recording = _Recording(store, refuse={"g-000003"})
    w = DecisionLogWriter(recording, start=False)
    notices = _Notices()
    first = [record(i, prefix="f") for i in range(4)]
    group = [record(i, prefix="g") for i in range(6)]
    w.record_nowait(first, notices, "f")
    w.record_nowait(group, notices, "g")
    w._thread.start()
    assert w.flush(timeout=30)
    assert notices.settled() == {"f": set(), "g": {"g-000003"}}
    assert len(notices.calls) == 1  # one commit settled both groups
    st = w.stats()
    assert st["set_aside"] == 1 and st["written"] == 9 and st["failed"] == 1
    assert w.close()
    kept = [r["decision_id"] for r in first + group if r["decision_id"] != "g-000003"]
    assert [r["decision_id"] for r in store.query_decisions(limit=20)] == kept
    assert store.verify_chain().ok


def test_a_caller_that_gives_up_on_a_split_group_has_its_queued_rest_skipped(store):
    recording = _Recording(store)
    recording.gate.clear()  # the first transaction waits
    w = DecisionLogWriter(recording, batch_size=2, commit_timeout=0.2)
    group = [record(i) for i in range(6)]
    assert w.record(group) == {r["decision_id"] for r in group}  # answered fail closed at its timeout
    assert recording.batches == [["d-000000", "d-000001"]]
    recording.gate.set()
    assert w.flush(timeout=30)
    # the part in the transaction may be written (its caller was refused); the rest never is
    assert [r["decision_id"] for r in store.query_decisions()] == ["d-000000", "d-000001"]
    st = w.stats()
    assert st["failed"] == 6 and st["written"] == 2 and st["queued"] == 0 and st["queued_bytes"] == 0
    assert w.close()


def test_async_keeps_the_parts_of_a_split_group_in_order_across_failed_transactions(store):
    flaky = FlakyStore(store)
    flaky.down.set()
    w = DecisionLogWriter(flaky, durability="async", batch_size=3, flush_interval=0.0, max_retry_delay=0.05)
    assert w.record([record(i) for i in range(7)]) == set()
    assert w.record([record(i) for i in range(7, 9)]) == set()
    assert _wait_for(lambda: w.stats()["failed_batches"] >= 2)
    assert w.stats()["at_risk"] == 9  # queued or in the transaction being retried
    flaky.down.clear()
    assert w.flush(timeout=30) and w.close(timeout=30)
    assert w.stats()["written"] == 9 and w.stats()["dropped"] == 0
    assert [r["decision_id"] for r in store.query_decisions()] == [f"d-{i:06d}" for i in range(9)]
    assert store.verify_chain().ok


def test_closing_fails_every_record_of_a_group_left_in_the_queue(store):
    w = DecisionLogWriter(FlakyStore(store), batch_size=2, start=False)
    notices = _Notices()
    w.record_nowait([record(i) for i in range(5)], notices, "left")
    assert w.close(timeout=0.1) is False
    assert notices.settled() == {"left": {f"d-{i:06d}" for i in range(5)}}
    assert w.stats()["failed"] == 5 and w.stats()["queued"] == 0
