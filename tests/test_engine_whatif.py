"""What would change the outcome (engine.whatif): every proposed change flips the decision and
is a smallest one, over every denial and allow of the YAML tests of a policy."""
from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest

import engine
from engine.domains import with_value
from engine.whatif import why_not

FIXTURES = Path(__file__).parent / "fixtures"
RULES = Path(__file__).resolve().parent.parent / "rules"

SUBMITTED_ORDER_EDIT = {
    "context": {"system": "d365_sales", "organization": {"is_sop_integration_enabled": True}},
    "subject": {"is_integration_user": False},
    "resource": {"salesorder": {"statecode": "submitted"}},
}


def _apply(data, changes):
    for change in changes:
        data = with_value(data, tuple(change["path"].split(".")), change["to"])
    return data


def _check_flips(policy, action, data):
    """Every alternative flips the decision, and no part of it (a subset of its changes) does
    (a part may stop at a fact the change makes required)."""
    before = policy.decide(action, data)
    found = why_not(policy, action, data)
    assert found is not None and found.complete
    body = found.to_dict()
    assert list(body) == ["to_deny" if before.allow else "to_allow", "complete"]
    for alternative in body["to_deny" if before.allow else "to_allow"]:
        changes = alternative["changes"]
        after = policy.decide(action, _apply(data, changes))
        assert after.error is None and after.allow is not before.allow, alternative
        assert alternative["rules"] == list(after.rules)
        for size in range(1, len(changes)):
            for part in combinations(changes, size):
                smaller = policy.decide(action, _apply(data, part))
                assert smaller.error is not None or smaller.allow is before.allow
    return body


@pytest.mark.parametrize(
    "folder",
    [FIXTURES / "o2c", FIXTURES / "mini", pytest.param(RULES, marks=pytest.mark.shipped_policy)],
    ids=["o2c", "mini", "rules"],
)
def test_every_change_proposed_for_a_tested_decision_flips_it(folder):
    """A property of any policy: it holds for the fixtures and for the shipped rules alike."""
    policy = engine.load_policy_set(folder)
    report = engine.run_tests(policy, engine.read_folder(folder))
    denials = [r for r in report.results if r.decision["error"] is None and not r.decision["allow"]]
    assert denials
    for result in report.results:
        if result.decision["error"] is None:
            _check_flips(policy, result.action, result.input)


def test_a_decision_with_an_error_has_no_what_if():
    policy = engine.load_policy_set(FIXTURES / "o2c")
    assert why_not(policy, "salesorder.update", {"context": {"system": "d365_sales"}}) is None


def test_the_submitted_order_lock_lists_its_three_exemptions_and_the_active_state():
    policy = engine.load_policy_set(FIXTURES / "o2c")
    body = _check_flips(policy, "salesorder.update", SUBMITTED_ORDER_EDIT)
    found = {(c["fact"], c["to"]): a for a in body["to_allow"] for c in a["changes"]}
    assert all(len(a["changes"]) == 1 for a in body["to_allow"])
    # the three exemptions of PRC-09, and the one state of the order that is not locked at all
    assert set(found) == {("integ", True), ("created_by_integration_user", True),
                          ("submitted_by_integration_user", True), ("statecode", "active")}
    assert all(a["clears"] == ["PRC-09"] for a in found.values())
    assert found["integ", True]["says"] == (
        "the signed-in user is an integration user: yes (now no) (clears PRC-09)")
    assert found["created_by_integration_user", True]["says"] == (
        "the order was created by an integration user: yes (now no by default) (clears PRC-09)")
    # switching SOP off or cancelling the order only trades PRC-09 for PRC-14
    assert ("sop", False) not in found and ("statecode", "canceled") not in found


LIMIT_POLICY = """\
system: shop
title: a credit limit
sources: {doc: {kind: seed, title: the manual}}
facts:
  amount: {path: resource.amount, type: integer, min: 0, says: the order amount}
  vip: {path: subject.vip, type: boolean, says: the customer is a VIP}
actions:
  - names: [order.create]
    reads: [amount, vip]
rules:
  - id: L-1
    kind: guard
    says: orders above 1000 need a VIP
    source: doc
    actions: [order.create]
    deny_when: {amount: {above: 1000}, vip: false}
  - id: L-2
    kind: effect
    says: orders are taken otherwise
    source: doc
    actions: [order.create]
    obligations: []
"""


def test_integer_bounds_give_the_nearest_value_on_the_other_side_of_a_threshold():
    policy = engine.compile_files({"shop.yaml": LIMIT_POLICY})
    denied = {"context": {"system": "shop"}, "subject": {"vip": False}, "resource": {"amount": 5000}}
    body = _check_flips(policy, "order.create", denied)
    assert [(c["fact"], c["to"]) for a in body["to_allow"] for c in a["changes"]] == [
        ("amount", 1000), ("vip", True)]
    allowed = {"context": {"system": "shop"}, "subject": {"vip": False}, "resource": {"amount": 10}}
    body = _check_flips(policy, "order.create", allowed)
    assert [(c["fact"], c["to"]) for a in body["to_deny"] for c in a["changes"]] == [("amount", 1001)]
    assert body["to_deny"][0]["says"] == "the order amount: `1001` (now `10`) (then denied by L-1)"
