"""The verifier on row tables: each broken fixture gives exactly its findings, and every witness is
re-decided by the engine to prove it."""
from __future__ import annotations

from verify_support import FIXTURES, findings, fired, report, request

import engine

E, W = "error", "warning"


def test_overlaps_through_ranges_lists_negations_and_wildcards():
    assert findings(FIXTURES / "overlap") == [
        (E, "table_gap", "21:5", ()),
        (E, "table_gap", "21:5", ()),
        (E, "table_gap", "21:5", ()),
        (E, "table_overlap", "34:9", ("U-1", "U-2")),      # a range and `in:` meet a `-`
        (E, "table_overlap", "36:9", ("U-3", "U-4")),      # `not_in` and `is_not` meet a scale range
        (E, "table_overlap", "37:9", ("U-4", "U-5")),      # `not_in` meets `in` and `-`
    ]


def test_every_overlap_witness_matches_both_rows_and_the_engine_refuses_it():
    files = engine.read_folder(FIXTURES / "overlap")
    overlaps = [f for f in report(FIXTURES / "overlap").findings if f.code == "table_overlap"]
    assert overlaps
    for f in overlaps:
        assert set(f.rules) <= set(fired(files, "order.price", f.witness))
        decision = engine.compile_files(files).decide("order.price", request(files, f.witness))
        assert decision.error is not None and decision.error.code == "evaluation_error"
        assert all(r in decision.error.message for r in f.rules)


def test_every_gap_witness_matches_no_row_and_its_suggested_row_closes_the_gap():
    files = engine.read_folder(FIXTURES / "gap")
    gaps = [f for f in report(FIXTURES / "gap").findings if f.code == "table_gap"]
    assert [g.suggested for g in gaps] == [{"region": {"is_not": "west"}, "tier": "bronze",
                                            "amount": {"at_least": 1000}, "channel": "-"}]
    for g in gaps:
        assert fired(files, "order.price", g.witness) == []
    # the suggested row, added, closes the gap: the table is then gap free
    path = next(iter(files))
    files[path] = files[path].replace(
        "      - [G-3,", '      - [G-4, {is_not: west}, bronze, {at_least: 1000}, "-", d5]\n      - [G-3,'
    )
    assert not [f for f in engine.verify.verify(files).findings if f.code == "table_gap"]


def test_gap_and_unmentioned_value():
    assert findings(FIXTURES / "gap") == [
        (E, "table_gap", "21:5", ()),
        (W, "table_value_unmentioned", "21:5", ()),
    ]


def test_shadowed_row_names_the_rows_that_take_its_requests():
    assert findings(FIXTURES / "shadowed") == [
        (W, "table_value_unmentioned", "21:5", ()),
        (W, "table_value_unmentioned", "21:5", ()),
        (E, "row_shadowed", "35:9", ("F-3", "F-1", "F-2")),
    ]
    files = engine.read_folder(FIXTURES / "shadowed")
    (f,) = [f for f in report(FIXTURES / "shadowed").findings if f.code == "row_shadowed"]
    assert "F-3" in fired(files, "order.price", f.witness)          # the row matches its witness ...
    taken = fired(files, "order.price", f.witness, table_hit="first")
    assert taken != ["F-3"] and set(taken) <= set(f.rules[1:])      # ... but an earlier row takes it


def test_a_cell_the_verifier_cannot_read_makes_the_table_unproven():
    assert findings(FIXTURES / "unverified") == [(E, "table_unverified", "26:20", ())]


def test_the_mini_fixture_has_only_its_unmentioned_scale_values():
    got = report(FIXTURES.parent / "mini")
    assert [(f.code, f.severity) for f in got.findings] == [("table_value_unmentioned", W)]
    assert got.passed() and not got.passed(strict=True)



def test_a_table_when_limits_the_gaps_and_rows_to_the_requests_it_applies_to():
    files = engine.read_folder(FIXTURES / "gap")
    path = next(iter(files))
    files[path] = files[path].replace(
        "    hit: first\n", "    hit: first\n    when: {region: {not_in: [west]}, amount: {below: 5000}}\n"
    )
    got = engine.verify.verify(files).findings
    assert [(f.code, f.rules) for f in got] == [("table_gap", ()), ("table_value_unmentioned", ()),
                                               ("row_shadowed", ("G-3",))]   # G-3 is for `west` only
    (gap,) = [f for f in got if f.code == "table_gap"]
    assert gap.suggested["amount"] == {"at_least": 1000, "at_most": 4999}
    # re-decided with a catch-all row added: only the catch-all fires, so the table applied and no row matched
    files[path] = files[path].replace("      - [G-3,", "      - [Z, \"-\", \"-\", \"-\", \"-\", d5]\n      - [G-3,")
    assert fired(files, "order.price", gap.witness) == ["Z"]
    outside = dict(gap.witness, amount=5000)
    assert fired(files, "order.price", outside) == []            # outside the `when`, the table does not apply


def test_a_table_that_declares_no_match_is_not_reported_for_its_gaps():
    files = engine.read_folder(FIXTURES / "gap")
    path = next(iter(files))
    files[path] = files[path].replace("    hit: first\n", "    hit: first\n    no_match: deny\n")
    got = engine.verify.verify(files)
    assert got.policy is not None and [f.code for f in got.findings] == ["table_value_unmentioned"]
