"""The index of a row table finds exactly the rows a full scan finds: random tables of exact, `in:`,
band and `-` cells, each hit policy, with and without a guard or a second rule beside the table, decided
by the generated code (through the index) and by the interpreter (every row, in order)."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine import rowindex

GROUPS = ["a", "b", "c"]
CURRENCIES = ["USD", "EUR", "GBP"]
BOUNDS = [0, 10, 100, 1000]


def _cell(draw, column: str) -> str:
    kinds = ["-", "is", "band", "band", "band"] if column == "total" else ["-", "is", "in", "not_in"]
    kind = draw(st.sampled_from(kinds))
    values = GROUPS if column == "group" else CURRENCIES
    if kind == "-":
        return '"-"'
    if kind == "band":
        low, high = sorted(draw(st.lists(st.sampled_from(BOUNDS), min_size=2, max_size=2)))
        ops = draw(st.sampled_from([("at_least", "below"), ("above", "at_most"), ("at_least", None),
                                    (None, "at_most")]))
        parts = [f"{op}: {v}" for op, v in zip(ops, (low, high), strict=True) if op]
        return "{" + ", ".join(parts) + "}"
    if kind == "is":
        return str(draw(st.sampled_from(values))) if column != "total" else str(draw(st.sampled_from(BOUNDS)))
    chosen = draw(st.lists(st.sampled_from(values), min_size=1, max_size=2, unique=True))
    return "{" + f"{kind}: [{', '.join(chosen)}]" + "}"


@st.composite
def tables(draw):
    hit = draw(st.sampled_from(["first", "unique", "collect"]))
    count = draw(st.integers(1, 16))
    body = []
    for i in range(count):
        cells = [_cell(draw, c) for c in ("group", "currency", "total")]
        body.append(f"      - [R-{i}, {', '.join(cells)}, {draw(st.sampled_from(['small', 'big']))}]")
    beside = draw(st.sampled_from(["", "guard", "effect"]))
    return hit, "\n".join(body), beside


def policy_text(hit: str, body: str, beside: str) -> str:
    extra = {"": "", "guard": """
  - {kind: guard, id: G-1, says: no zero totals, source: [gen], actions: [order.price], deny_when: {total: 0}}""",
             "effect": """
  - {kind: effect, id: E-1, says: big totals are noted, source: [gen], actions: [order.price],
     when: {total: {at_least: 100}}, then: [note]}"""}[beside]
    return f"""system: shop
title: random row table
sources:
  gen: {{kind: inferred, title: generated}}
facts:
  group: {{path: order.group, type: string, says: the group}}
  currency: {{path: order.currency, type: enum, values: [{", ".join(CURRENCIES)}], says: the currency}}
  total: {{path: order.total, type: integer, says: the total}}
obligations:
  discount: {{says: a discount, params: {{percent: {{type: integer}}}}}}
  note: {{says: a note}}
actions:
  - names: [order.price]
    reads: [group, currency, total]
rules:
  - kind: table
    id: prices
    says: prices by group, currency and total
    source: [gen]
    layout: rows
    hit: {hit}
    actions: [order.price]
    outcomes:
      small: [{{name: discount, params: {{percent: 5}}}}]
      big: [{{name: discount, params: {{percent: 10}}}}, note]
    header: [rule, group, currency, total, outcome]
    body:
{body}{extra}
"""


requests = st.builds(
    lambda g, c, t: {"context": {"system": "shop"}, "order": {"group": g, "currency": c, "total": t}},
    st.sampled_from(GROUPS + ["zzz"]), st.sampled_from(CURRENCIES),
    st.one_of(st.sampled_from([b + d for b in BOUNDS for d in (-1, 0, 1)]), st.integers(-5, 2000)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(tables(), st.lists(requests, min_size=1, max_size=8))
def test_the_index_finds_what_a_full_scan_finds(table, reqs):
    try:
        policy = engine.compile_files({"t.yaml": policy_text(*table)})
    except engine.PolicyErrors:
        return       # e.g. two rows of a `unique` table that always match together
    for body in reqs:
        for _ in range(2):      # the second decision of a row comes from what the first one kept
            generated = policy.decide("order.price", body)
            assert generated == policy.interpret("order.price", body)
        explained = policy.decide("order.price", body, explain=True)
        assert explained._replace(trace=None) == generated


def test_bands_and_values_narrow_a_large_table_to_a_few_rows():
    body = "\n".join(f"      - [R-{i}, {GROUPS[i % 3]}{i // 30}, {CURRENCIES[i % 3]}, "
                     f"{{at_least: {(i % 10) * 10}, below: {(i % 10) * 10 + 10}}}, small]" for i in range(300))
    policy = engine.compile_files({"t.yaml": policy_text("first", body + '\n      - [R-ANY, "-", "-", "-", big]', "")})
    table = policy.ir.plan("shop", "order.price").units[0]
    index = rowindex.build(table, lambda r, c: (r, c))
    vals = ["a0", "USD", 0, "order.price"]
    entries = rowindex.lookup(index, vals)
    assert [r for r, _ in entries] == [0, 300]          # the one row of that group, currency and band; the catch-all
    assert entries == ((0, ((0, 1),)), (300, ()))      # left to test: row 0's currency (the path decided the rest)
    assert rowindex.lookup(index, ["a0", "USD", "x", "order.price"]) is None   # not a whole number: scan instead
    assert policy.decide("order.price", {"context": {"system": "shop"},
                                         "order": {"group": "a0", "currency": "USD", "total": 5}}).rules == ("R-0",)


@pytest.mark.parametrize("extra", [200, 600, 1000, 4096])
def test_a_repeated_pattern_is_indexed_as_if_each_were_made_anew(monkeypatch, extra):
    # 200 groups of the same 6 rows (the same cell objects: compile shares equal cells): a group's node
    # is copied from the first group's (rowindex.SHAPE_ROWS); it must be the node made anew, also when
    # the entry budget runs out part way (a small `extra`)
    body = "\n".join(f"      - [R-{i}, g{i // 6}, {'{in: [USD, EUR]}' if i % 2 else 'USD'}, "
                     f"{{at_least: {(i % 3) * 10}, below: {(i % 3) * 10 + 10}}}, small]" for i in range(1200))
    policy = engine.compile_files({"t.yaml": policy_text("first", body + '\n      - [R-ANY, "-", "-", "-", big]', "")})
    table = policy.ir.plan("shop", "order.price").units[0]
    monkeypatch.setattr(rowindex, "ENTRIES_PER_ROW", 1)
    monkeypatch.setattr(rowindex, "ENTRIES_EXTRA", extra)
    copied = rowindex.build(table, lambda r, c: (r, c))
    monkeypatch.setattr(rowindex, "SHAPE_ROWS", 0)
    made = rowindex.build(table, lambda r, c: (r, c))
    assert copied == made
    assert isinstance(made, rowindex.Exact)


def test_rows_alike_in_every_column_make_a_leaf():
    # more rows than a leaf holds, equal in every column: once each column is split on, none is left
    # to split (nor to look the node up by, rowindex.SHAPE_ROWS)
    body = "\n".join([f"      - [R-{i}, a, USD, {{at_least: 0, below: 10}}, small]" for i in range(4)] + [
        "      - [R-4, a, USD, {at_least: 10, below: 20}, big]", "      - [R-5, a, EUR, {at_least: 0, below: 10}, big]",
        "      - [R-6, b, USD, {at_least: 0, below: 10}, big]"])
    policy = engine.compile_files({"t.yaml": policy_text("first", body, "")})
    request = {"context": {"system": "shop"}, "order": {"group": "a", "currency": "USD", "total": 5}}
    assert policy.decide("order.price", request).rules == ("R-0",)
    assert policy.decide("order.price", request) == policy.interpret("order.price", request)
