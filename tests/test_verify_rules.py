"""The verifier on rules against rules and on stage graphs: exact findings, each re-proved by
deciding every request of a grid that covers the facts' values."""
from __future__ import annotations

import itertools

import pytest
from verify_support import FIXTURES, findings, request

import engine

W = "warning"
STAGES = ("lead", "qualified", "proposal", "review", "rework", "stalled", "won", "lost", "archived")


def test_rules_that_cannot_do_what_they_say():
    assert findings(FIXTURES / "rules") == [
        (W, "fact_never_read", "11:3", ()),
        (W, "obligation_never_emitted", "17:3", ()),
        (W, "rule_never_fires", "22:5", ("G-1",)),
        (W, "rule_never_fires", "28:5", ("G-2",)),
        (W, "obligation_always_overridden", "47:19", ("E-1", "E-2")),
    ]


def test_the_rule_findings_hold_on_every_request():
    files = engine.read_folder(FIXTURES / "rules")
    policy = engine.compile_files(files)
    seen_e1 = False
    for action, member, status, count in itertools.product(
            ("order.create", "order.update"), (False, True), ("draft", "confirmed", "shipped"), (0, 1, 7)):
        d = policy.decide(action, request(files, {"member": member, "status": status, "count": count}))
        assert d.error is None
        assert not {"G-1", "G-2"} & set(d.rules)                      # never deny
        assert "compute_price" not in [o.name for o in d.obligations]  # always overridden
        assert "notify" not in [o.name for o in d.obligations]
        seen_e1 |= "E-1" in d.rules or (d.allow and member)
    assert seen_e1


def test_stage_graph_findings():
    assert findings(FIXTURES / "graph") == [
        (W, "move_always_denied", "35:13", ("M-1", "M-2")),
        (W, "stage_cycle_without_exit", "35:13", ("M-1",)),
        (W, "stage_dead_end", "35:13", ("M-1",)),
        (W, "stage_unreachable", "35:13", ("M-1",)),
    ]


def test_the_graph_findings_hold_for_the_engine():
    files = engine.read_folder(FIXTURES / "graph")
    policy = engine.compile_files(files)
    allowed = {}
    for a, b in itertools.product(STAGES, STAGES):
        d = policy.decide("deal.move", request(files, {"stage": a, "target": b}))
        assert d.error is None
        allowed[a, b] = d.allow
        if (a, b) == ("proposal", "lost"):
            assert d.rules == ("M-2",)                      # the graph allows it, M-2 denies it
    reach, todo = {"lead"}, ["lead"]
    while todo:
        a = todo.pop()
        for b in STAGES:
            if allowed[a, b] and b not in reach:
                reach.add(b)
                todo.append(b)
    assert "archived" not in reach                          # stage_unreachable
    assert not any(allowed["stalled", b] for b in STAGES if b != "stalled")    # stage_dead_end
    assert {b for b in STAGES if allowed["review", b] or allowed["rework", b]} <= {"review", "rework"}


@pytest.mark.parametrize("old, new, code", [
    ("start: [lead]", "start: [lead, qualified]", None),
    ("start: [lead]", "start: [leed]", "compile_unknown_value"),
])
def test_start_and_final_are_checked_like_stages(old, new, code):
    files = engine.read_folder(FIXTURES / "graph")
    path = next(iter(files))
    assert old in files[path]
    files[path] = files[path].replace(old, new)
    if code is None:
        engine.compile_files(files)
        return
    with pytest.raises(engine.PolicyErrors) as exc:
        engine.compile_files(files)
    assert [e.code for e in exc.value.errors] == [code]
