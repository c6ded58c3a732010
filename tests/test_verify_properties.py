"""A property of the verifier on random small tables, checked against the engine on every input
of a grid that contains a point of every region the tables can tell apart."""
from __future__ import annotations

import itertools

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from verify_support import request

import engine
from engine.verify import verify

ENUM = ("north", "south", "east", "west")
TEXT = ("a", "b", "c")
COLUMNS = {
    "region": ("{type: enum, values: [north, south, east, west]}", ENUM),
    "amount": ("{type: integer, min: 0}", tuple(range(14))),
    "channel": ("{type: string}", TEXT + ("other",)),
}


def cells(column: str):
    values = {"region": st.sampled_from(ENUM), "amount": st.integers(0, 12), "channel": st.sampled_from(TEXT)}[column]
    some = st.lists(values, min_size=1, max_size=3, unique=True)
    out = [st.just('"-"'), values.map(str),
           some.map(lambda v: "{in: [" + ", ".join(map(str, v)) + "]}"),
           some.map(lambda v: "{not_in: [" + ", ".join(map(str, v)) + "]}"),
           values.map(lambda v: "{is_not: " + str(v) + "}")]
    if column == "amount":
        out.append(st.tuples(st.integers(0, 12), st.integers(0, 12)).map(
            lambda b: f"{{at_least: {min(b)}, below: {max(b) + 1}}}"))
        out.append(st.sampled_from(["at_least", "above", "at_most", "below"]).flatmap(
            lambda op: values.map(lambda v: f"{{{op}: {v}}}")))
    return st.one_of(*out)


@st.composite
def tables(draw):
    names = draw(st.lists(st.sampled_from(sorted(COLUMNS)), min_size=1, max_size=3, unique=True))
    hit = draw(st.sampled_from(["unique", "first"]))
    n = draw(st.integers(1, 5))
    body = []
    for i in range(n):
        row = [draw(cells(c)) for c in names]
        body.append(f"      - [R-{i}, {', '.join(row)}, done]")
    facts = "\n".join(f"  {c}: {{path: x.{c}, {COLUMNS[c][0][1:-1]}}}" for c in names)
    text = f"""system: shop
sources: {{doc: {{kind: seed, title: t}}}}
facts:
{facts}
obligations:
  mark: {{says: mark}}
actions:
  - names: [order.price]
    reads: [{", ".join(names)}]
rules:
  - kind: table
    id: t
    says: a random table
    source: [doc]
    layout: rows
    hit: {hit}
    actions: [order.price]
    outcomes:
      done: [mark]
    header: [rule, {", ".join(names)}, outcome]
    body:
""" + "\n".join(body) + "\n"
    return names, hit, text


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_witnesses_are_real_and_clean_tables_are_clean(table):
    names, hit, text = table
    files = {"policy.yaml": text}
    report = verify(files)
    assume(report.policy is not None)    # compile refuses some overlaps of plain values itself
    collect = engine.compile_files({"policy.yaml": text.replace(f"hit: {hit}", "hit: collect")})

    def matching(witness):
        return sorted(collect.decide("order.price", request(files, witness)).rules, key=lambda r: int(r[2:]))

    grid = [dict(zip(names, point, strict=False)) for point in itertools.product(*(COLUMNS[c][1] for c in names))]
    matched = [matching(point) for point in grid]
    by_code: dict[str, list] = {}
    for f in report.findings:
        by_code.setdefault(f.code, []).append(f)
    assert set(by_code) <= {"table_overlap", "table_gap", "row_shadowed", "table_value_unmentioned"}
    for f in by_code.get("table_overlap", []):
        assert set(f.rules) <= set(matching(f.witness))
    for f in by_code.get("table_gap", []):
        assert matching(f.witness) == []
    for f in (f for f in by_code.get("row_shadowed", []) if f.witness is not None):
        rows = matching(f.witness)
        assert f.rules[0] in rows and rows[0] in f.rules[1:]
    if "table_gap" not in by_code:
        assert all(matched)
    if hit == "unique" and "table_overlap" not in by_code:
        assert all(len(m) <= 1 for m in matched)
    if hit == "first":
        reached = {m[0] for m in matched if m}
        shadowed = {f.rules[0] for f in by_code.get("row_shadowed", [])}
        n = text.count("      - [R-")
        assert reached | shadowed == {f"R-{i}" for i in range(n)} and not reached & shadowed
