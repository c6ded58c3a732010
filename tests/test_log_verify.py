"""Verifying the chain with worker processes over ranges: a break at a range's first or last entry,
at the log's first or last entry, is reported exactly as the sequential scan reports it."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from test_store_helpers import drop_guards, record

from store import log_verify
from store.chain import canonical_json, entry_hash

ENTRIES = 7  # ranges of 2: 1-2, 3-4, 5-6, 7


def _altered(conn, store, seq):
    conn.execute(sa.text("UPDATE decisions SET action = 'order.delete' WHERE seq = :s"), {"s": seq})


def _replaced(conn, store, seq):
    """Content and hash rewritten together."""
    row = store.query_decisions(after_seq=seq - 1, limit=1)[0]
    row["input"]["resource"]["customer"]["n"] = -1
    body = {k: row[k] for k in ("decision_id", "time", "action", "input", "result", "policy_version")}
    conn.execute(sa.text("UPDATE decisions SET input = :i, hash = :h WHERE seq = :s"),
                 {"i": canonical_json(row["input"]), "h": entry_hash(row["prev_hash"], seq, body), "s": seq})


def _removed(conn, store, seq):
    conn.execute(sa.text("DELETE FROM decision_rules WHERE seq = :s"), {"s": seq})
    conn.execute(sa.text("DELETE FROM decisions WHERE seq = :s"), {"s": seq})


def _reordered(conn, store, seq):
    """The entry and the one after it (the one before, for the last) swap places."""
    other = seq + 1 if seq < ENTRIES else seq - 1
    conn.execute(sa.text("DELETE FROM decision_rules WHERE seq IN (:a, :b)"), {"a": seq, "b": other})
    for old, new in ((seq, -1), (other, seq), (-1, other)):
        conn.execute(sa.text("UPDATE decisions SET seq = :new WHERE seq = :old"), {"old": old, "new": new})


def _allow(conn, store, seq):
    conn.execute(sa.text("UPDATE decisions SET allow = :f WHERE seq = :s"), {"f": False, "s": seq})


def _rule_index(conn, store, seq):
    conn.execute(sa.text("UPDATE decision_rules SET rule_id = 'G-9' WHERE seq = :s"), {"s": seq})


def _prev_link(conn, store, seq):
    conn.execute(sa.text("UPDATE decisions SET prev_hash = :h WHERE seq = :s"), {"h": "f" * 64, "s": seq})


TAMPERS = [_altered, _replaced, _removed, _reordered, _allow, _rule_index, _prev_link]


@pytest.fixture
def ranges_verdicts(monkeypatch):
    """The verdicts of the parallel path's ranges (True: every range intact and linked), one per verify."""
    verdicts: list[bool] = []
    real = log_verify._all_ranges_linked

    def recorded(*args):
        linked = real(*args)
        verdicts.append(linked[0])
        return linked

    monkeypatch.setattr(log_verify, "_all_ranges_linked", recorded)
    return verdicts


@pytest.mark.parametrize("seq", [1, 2, 3, 4, 6, 7], ids=lambda s: f"seq{s}")
@pytest.mark.parametrize("tamper", TAMPERS, ids=lambda f: f.__name__.strip("_"))
def test_a_break_at_a_range_boundary_is_reported_as_the_sequential_scan_reports_it(store, ranges_verdicts, tamper,
                                                                                   seq):
    store.append_decisions([record(i) for i in range(1, ENTRIES + 1)])
    assert store.verify_chain(jobs=2, chunk=2).ok and ranges_verdicts == [True]
    drop_guards(store.engine)
    with store.engine.begin() as conn:
        tamper(conn, store, seq)
    sequential = store.verify_chain()
    parallel = store.verify_chain(jobs=2, chunk=2)
    assert not sequential.ok and parallel == sequential
    assert sequential.first_broken_seq in (seq - 1, seq, seq + 1)
    # the ranges found the break themselves, unless it is the last entry's link to the chain head
    assert ranges_verdicts[1] is False or "chain head" in sequential.reason


def test_the_last_entry_replaced_is_named_by_both_paths(store, ranges_verdicts):
    store.append_decisions([record(i) for i in range(1, ENTRIES + 1)])
    drop_guards(store.engine)
    with store.engine.begin() as conn:
        _replaced(conn, store, ENTRIES)
    report = store.verify_chain(jobs=2, chunk=2)
    assert report == store.verify_chain()
    assert (report.first_broken_seq, report.checked) == (ENTRIES, ENTRIES - 1) and "chain head" in report.reason


@pytest.mark.parametrize("chunk", [1, 2, 3, 6, 7, 100])
def test_an_intact_log_verifies_with_any_range_size(store, ranges_verdicts, chunk):
    store.append_decisions([record(i, rules=("E-1", "G-1") if i % 2 else ()) for i in range(1, ENTRIES + 1)])
    report = store.verify_chain(jobs=2, chunk=chunk)
    assert report == store.verify_chain() and report.ok and report.checked == ENTRIES
    assert ranges_verdicts == ([True] if chunk < ENTRIES else [])  # one range: the sequential scan


def test_a_field_that_json_escapes_takes_the_exact_check_and_verifies(store):
    store.append_decisions([dict(record(1), decision_id='d-"quoted"\\', caller="crm\tteam", request_id="r\n1"),
                            dict(record(2), action="order.créer")])
    assert store.verify_chain().ok and store.verify_chain().checked == 2


def test_an_empty_log_verifies(store):
    assert store.verify_chain(jobs=2, chunk=1).ok and store.verify_chain().checked == 0
