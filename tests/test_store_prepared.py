"""Decision-log records prepared once (validated and serialised on the caller's thread) and
hashed in the writer: the same stored form and hash as before, and malformed records refused
to the caller, never dropped by the writer."""
from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from test_store_helpers import record

from store import DecisionLogWriter, InvalidInput
from store.chain import PreparedRecord, canonical_json, entry_hash, normalize_record, prepare_record

TRICKY_TEXT = ['plain', 'quote " and \\ backslash', 'tab\tnewline\ncontrol\x01\x1f', 'é ü 漢字 \u2028 \U0001F600',
               '', '</script>']


def _tricky(i: int) -> dict:
    rec = record(i, action=f"order.{TRICKY_TEXT[i % len(TRICKY_TEXT)][:10] or 'x'}")
    rec["input"] = {"text": TRICKY_TEXT, "numbers": [0, -1, 2 ** 70, 1.5, 1e16, 1e-7, -0.0, 3.0],
                    "nested": {"z": None, "a": [True, False, {"ü": "ß"}]}, "tuple": (1, 2)}
    rec["result"] = {**rec["result"], "obligations": [{"name": "n", "params": {"b": 1, "a": "é"}}]}
    return rec


@pytest.mark.parametrize("version, who", [
    (None, {}), ("sha256:" + "a" * 64, {"caller": "crm-adapter"}), ("ver-é", {"caller": "é\"x", "request_id": "r-1"}),
])
def test_prepared_hash_is_the_hash_of_the_normalised_record(version, who):
    for i in range(len(TRICKY_TEXT)):
        rec = {**_tricky(i), "policy_version": version, **who}
        prepared = prepare_record(rec)
        normal = normalize_record(rec)
        assert prepared.input_json == canonical_json(normal["input"])
        assert prepared.result_json == canonical_json(normal["result"])
        body = {"seq": 7 + i, **normal}
        assert prepared.hash_body(7 + i) == canonical_json(body)
        assert prepared.entry_hash("f" * 64, 7 + i) == entry_hash("f" * 64, 7 + i, normal)
        assert prepared.time == normal["time"] and prepared.allow is rec["result"]["allow"]


def test_the_record_is_a_snapshot_taken_at_submit():
    rec = record(1)
    prepared = prepare_record(rec)
    rec["input"]["resource"] = {"changed": True}
    rec["result"]["allow"] = not rec["result"]["allow"]
    assert json.loads(prepared.input_json) == record(1)["input"]
    assert json.loads(prepared.result_json) == record(1)["result"]
    assert prepare_record(prepared) is prepared


def test_non_text_keys_are_stored_as_they_load_back(store):
    rec = record(1)
    rec["input"] = {"by_number": {10: "ten", 9: "nine"}, "flag": {True: 1}}
    prepared = prepare_record(rec)
    assert json.loads(prepared.input_json) == {"by_number": {"10": "ten", "9": "nine"}, "flag": {"true": 1}}
    assert prepared.input_json == canonical_json(json.loads(prepared.input_json))  # what verify recomputes
    store.append_decisions([prepared, record(2)])
    assert store.verify_chain().ok and store.verify_chain().checked == 2


@pytest.mark.parametrize("change, message", [
    (lambda r: r["input"].update(when=dt.date(2026, 1, 1)), "not JSON-serialisable"),
    (lambda r: r["input"].update(x=math.nan), "not JSON-serialisable"),
    (lambda r: r["input"].update(x="\ud800"), "lone surrogate"),
    (lambda r: r["result"].update(params={"x": object()}), "not JSON-serialisable"),
    (lambda r: r["result"].update(allow="yes"), "boolean `allow`"),
    (lambda r: r["result"].update(rules=["ok", ""]), "rule ids"),
    (lambda r: r.update(action=""), "action must be"),
    (lambda r: r.update(decision_id="x" * 65), "decision_id"),
    (lambda r: r.update(time="yesterday"), "ISO-8601"),
    (lambda r: r.update(extra=1), "unknown field"),
    (lambda r: r.pop("input"), "lacks input"),
])
def test_a_malformed_record_is_refused_to_the_caller_and_never_queued(store, change, message):
    writer = DecisionLogWriter(store, batch_size=10, flush_interval=0.0)
    try:
        assert writer.submit(record(1))
        bad = record(2)
        change(bad)
        with pytest.raises(InvalidInput, match=message):
            writer.submit(bad)
        assert writer.submit(record(3))
        assert writer.flush(timeout=30)
        stats = writer.stats()
        assert stats["written"] == 2 and stats["queued"] == 0 and stats["failed_batches"] == 0
        assert stats["healthy"]
    finally:
        assert writer.close(timeout=30)
    assert [r["decision_id"] for r in store.query_decisions()] == ["d-000001", "d-000003"]
    assert store.verify_chain().ok


def test_writer_hashes_prepared_records_into_one_chain(store):
    writer = DecisionLogWriter(store, batch_size=7, flush_interval=0.0)
    records = [_tricky(i) for i in range(40)]
    for i, rec in enumerate(records):
        assert writer.submit(rec if i % 2 else prepare_record(rec))
    assert writer.close(timeout=30)
    rows = store.query_decisions(limit=100)
    assert len(rows) == 40
    for rec, row in zip(records, rows, strict=False):
        assert row["input"] == json.loads(canonical_json(rec["input"]))
        assert row["result"] == json.loads(canonical_json(rec["result"]))
    assert store.query_decisions(rule="E-1")  # the rule index is written too
    report = store.verify_chain()
    assert report.ok and report.checked == 40


def test_prepared_record_type():
    assert isinstance(prepare_record(record(1)), PreparedRecord)
    with pytest.raises(InvalidInput):
        prepare_record([record(1)])
