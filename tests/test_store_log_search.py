"""The workbench's log search (store/log_search.py) on SQLite and PostgreSQL: filters, keyset pages
in both directions that never lose or repeat an entry (also when a bounded scan stops early), text
only in fact values, and one entry's place in the hash chain."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from test_store_helpers import drop_guards, record

from store import log_search
from store.log_search import Cursor, LogFilters, check_entry, search


def entry(i: int, **kwargs) -> dict:
    rec = record(i, **kwargs)
    rec["input"]["resource"]["customer"]["code"] = f"CUST-{i % 3}"
    rec["input"]["resource"]["order"] = f"SO-{i:05d}" if i != 7 else 'SO-"quoted" & <b>'
    rec["caller"] = "crm" if i % 2 else "erp"
    return rec


@pytest.fixture
def logged(store):
    store.append_decisions([entry(i, allow=i % 4 != 0, rules=("G-1",) if i % 4 == 0 else ("E-1",),
                                  action="order.create" if i % 5 else "order.cancel") for i in range(1, 61)])
    return store


def walk(store, filters: LogFilters, size: int) -> list[int]:
    """Every seq of the search, page by page back to the oldest, and forward again to the newest."""
    back, page = [], search(store, filters, limit=size)
    pages = [page]
    back += [e["seq"] for e in page.entries]
    while page.older is not None:
        page = search(store, filters, limit=size, cursor=page.older)
        pages.append(page)
        back += [e["seq"] for e in page.entries]
    forward = [e["seq"] for e in page.entries]  # from the oldest page back to the newest
    while page.newer is not None:
        page = search(store, filters, limit=size, cursor=page.newer)
        forward = [e["seq"] for e in page.entries] + forward
    assert forward == back
    return back


@pytest.mark.parametrize("filters, expected", [
    (LogFilters(), list(range(60, 0, -1))),
    (LogFilters(allow=False, rule="G-1"), [i for i in range(60, 0, -1) if i % 4 == 0]),
    (LogFilters(action="order.cancel", caller="erp"), [i for i in range(60, 0, -1) if i % 5 == 0 and i % 2 == 0]),
    (LogFilters(text="cust-1"), [i for i in range(60, 0, -1) if i % 3 == 1]),
    (LogFilters(text='"quoted" & <b>'), [7]),
    (LogFilters(text="customer"), []),  # a key, not a value
    (LogFilters(system="shop", text="SO-0004"), list(range(49, 39, -1))),
    (LogFilters(system="other"), []),
    (LogFilters(since="2026-11-23T10:00:10Z", until="2026-11-23T10:00:20Z"), list(range(19, 9, -1))),
])
def test_search_finds_exactly_the_matching_entries_page_by_page(logged, filters, expected):
    assert walk(logged, filters, 7) == expected
    assert [e["seq"] for e in search(logged, filters, limit=100).entries] == expected


def test_a_bounded_scan_stops_early_and_the_next_page_goes_on_from_there(logged, monkeypatch):
    monkeypatch.setattr(log_search, "SCAN_WINDOW", 8)
    monkeypatch.setattr(log_search, "SCAN_ROWS", 16)
    filters = LogFilters(text="SO-00003")  # entry 3 only: far back
    first = search(logged, filters, limit=5)
    assert first.entries == [] and first.searched_to == 45 and first.older == Cursor(45, None, True)
    assert walk(logged, filters, 5) == [3]
    everything = walk(logged, LogFilters(text="cust"), 5)
    assert everything == list(range(60, 0, -1))


def test_a_cursor_of_another_search_is_refused():
    from store import InvalidInput

    with pytest.raises(InvalidInput):
        Cursor.decode("2026-01-01T00:00:00Z~5", older=True, by_time=False)
    with pytest.raises(InvalidInput):
        Cursor.decode("12", older=True, by_time=True)
    assert Cursor.decode("12", older=False, by_time=False) == Cursor(12, None, False)


def test_check_entry_reads_three_entries_and_names_a_replaced_or_altered_one(logged):
    assert check_entry(logged, 1).ok and check_entry(logged, 30).ok and check_entry(logged, 60).ok
    assert not check_entry(logged, 61).ok
    drop_guards(logged.engine)
    with logged.engine.begin() as conn:
        conn.execute(sa.text("UPDATE decisions SET input = :i WHERE seq = 30"), {"i": '{"context":{}}'})
    altered = check_entry(logged, 30)
    assert not altered.ok and "altered" in altered.reason
    assert check_entry(logged, 29).ok and check_entry(logged, 31).ok  # their own links still hold
    assert logged.verify_chain().first_broken_seq == 30  # the whole chain agrees


def test_a_scan_in_a_time_range_reads_only_the_range(logged, monkeypatch):
    monkeypatch.setattr(log_search, "SCAN_WINDOW", 4)
    monkeypatch.setattr(log_search, "SCAN_ROWS", 4)
    filters = LogFilters(since="2026-11-23T10:00:10Z", until="2026-11-23T10:00:20Z", text="cust-1")
    assert not filters.by_time  # a scan pages by seq, within the seqs of the range
    first = search(logged, filters, limit=50)
    assert first.searched_to == 16  # 19..16: one window of four, then the budget ran out
    assert walk(logged, filters, 50) == [19, 16, 13, 10]
