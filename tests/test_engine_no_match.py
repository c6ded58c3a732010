"""A row table says what a request no row matches gets (`no_match:` deny, error, or an outcome), and
the decision and its trace say that no row of the table matched."""
from __future__ import annotations

from pathlib import Path

import pytest

import engine
from engine import ir

POLICY = Path(__file__).parent / "fixtures" / "no_match"


@pytest.fixture(scope="module")
def desk():
    return engine.load_policy_set(POLICY)


def req(group, total):
    return {"context": {"system": "desk"}, "resource": {"account": {"group": group}, "order": {"total": total}}}


def no_match_record(decision):
    return next(t for t in decision.trace if t["outcome"] == "no row matched")


def test_no_match_deny_denies_citing_the_table(desk):
    assert desk.decide("order.price", req("retail", 500)).to_dict()["obligations"] == [
        {"name": "discount", "params": {"percent": 5}}]
    d = desk.decide("order.price", req("staff", 500), explain=True)
    assert (d.allow, d.rules, d.obligations, d.error) == (False, ("prices",), (), None)
    assert no_match_record(d)["says"] == "no row of table `prices` matched"


def test_no_match_error_is_an_evaluation_error_that_says_so(desk):
    d = desk.decide("order.book", req("trade", 5000), explain=True)
    assert d.allow is False and d.error.code == "evaluation_error"
    assert d.error.message == "no row of table `bookings` matched"
    assert no_match_record(d)["no_match"] == "error"


def test_no_match_outcome_asks_for_its_obligations(desk):
    d = desk.decide("order.check", req("staff", 50), explain=True)
    assert d.allow is True and d.rules == ("checks",) and [o.name for o in d.obligations] == ["review"]
    assert no_match_record(d)["obligations"] == [{"name": "review", "params": {}}]
    assert desk.decide("order.check", req("staff", 5)).rules == ("C-1",)


def test_without_no_match_a_gap_still_decides_nothing(desk):
    d = desk.decide("order.quote", req("staff", 5), explain=True)
    assert (d.allow, d.rules, d.obligations) == (True, (), ())
    assert all(t["outcome"] != "no row matched" for t in d.trace)


def test_no_match_is_in_the_ir(desk):
    tables = {t.id: t for t in desk.ir.systems["desk"].tables}
    assert tables["prices"].no_match.outcome == "deny"
    assert tables["checks"].no_match.obligations[0].name == "review"
    assert tables["quotes"].no_match is None
    assert tables["prices"].no_match.location.line == POLICY.joinpath("policy.yaml").read_text().splitlines().index(
        "    no_match: deny") + 1


def test_an_unknown_no_match_outcome_is_one_error_with_a_suggestion():
    text = POLICY.joinpath("policy.yaml").read_text().replace("no_match: manual", "no_match: manul")
    with pytest.raises(engine.PolicyErrors) as info:
        engine.compile_files({"policy.yaml": text})
    assert [(e.code, e.help) for e in info.value.errors] == [("compile_unknown_outcome", "did you mean `manual`?")]


def test_a_move_graph_declares_its_start_and_final_stages(desk):
    guard = desk.ir.plan("desk", "order.move").units[0]
    graph = guard.deny.inner.graph
    assert isinstance(graph, ir.StageGraph) and graph.start == ("new",) and graph.final == ("won", "lost")
    text = POLICY.joinpath("policy.yaml").read_text().replace("final: [won, lost]", "final: [won, lots]")
    with pytest.raises(engine.PolicyErrors) as info:
        engine.compile_files({"policy.yaml": text})
    assert [(e.code, e.help) for e in info.value.errors] == [("compile_unknown_value", "did you mean `lost`?")]
