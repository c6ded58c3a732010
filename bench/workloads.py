"""ordergate and plain-Python cases of the benchmarks, and the inputs they are timed on.

ordergate is always called the way a service calls it: `PolicySet.decide(action, input)` on the
request dict, with the outcome read from the returned Decision.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import handwritten as hw
import rowtable as rt
import sop_table as st
import yaml

import engine

ROOT = Path(__file__).resolve().parent.parent
# The pricing rules measured: the shipped rules/pricing.yaml, or the file ORDERGATE_BENCH_PRICING
# names (the smoke tests pass a fixture copy, so that a policy change cannot break them).
PRICING = Path(os.environ.get("ORDERGATE_BENCH_PRICING") or ROOT / "rules" / "pricing.yaml")
# Rules of rules/pricing.yaml that are not cells of the price-computation table but apply to
# table actions: the edit lock (PRC-09, PRC-14) and PRC-15. The peers encode the table alone.
NOT_TABLE = ("PRC-09", "PRC-14", "PRC-15")


def pricing_policy() -> engine.PolicySet:
    """The shipped d365_sales rules (rules/pricing.yaml alone, so other systems' files in
    progress cannot break the benchmark)."""
    return engine.compile_files({"pricing.yaml": PRICING.read_text()})


def table_policy() -> engine.PolicySet:
    """rules/pricing.yaml without the rules that are not the table (same facts, same table text)."""
    doc = yaml.safe_load(PRICING.read_text())
    ids = {r.get("id") for r in doc["rules"]}
    missing = [i for i in NOT_TABLE + ("price-computation",) if i not in ids]
    if missing:
        raise SystemExit(f"bench: rules/pricing.yaml has no rule {', '.join(missing)}; update bench/workloads.py")
    doc["rules"] = [r for r in doc["rules"] if r.get("id") not in NOT_TABLE]
    return engine.compile_files({"pricing-table.yaml": yaml.safe_dump(doc, sort_keys=False)})


def decision_outcome(d) -> str:
    """`sop_table.outcome_of` on a Decision, without building its dict."""
    if d.error is not None or not d.allow:
        raise AssertionError(f"expected an allow, got {d.to_dict()}")
    names = {o.name for o in d.obligations}
    if "skip_price_calculation" in names:
        return "skip"
    if "compute_price" in names:
        return "calculate"
    if not d.rules:
        raise AssertionError(f"no rule cited: {d.to_dict()}")
    return "not_applicable"


# --- SOP table cases: decide((entity, operation, sop, integ, submitted)) -> outcome -------------
def sop_ordergate(policy: engine.PolicySet):
    decide, request = policy.decide, st.request

    def run(x):
        return decision_outcome(decide(*request(*x)))
    return run


def sop_handwritten():
    decide, request, outcome = hw.decide_price_table, st.request, st.outcome_of

    def run(x):
        return outcome(decide(*request(*x)))
    return run


def sop_dict_lookup():
    table = {x: st.oracle(*x) for x in st.all_inputs()}
    return table.__getitem__


# --- scaled table cases: decide(Query) -> outcome ---------------------------------------------
def scaled_ordergate_policy(rows: list[rt.Row]) -> engine.PolicySet:
    return engine.compile_files({"bench.yaml": rt.ordergate_yaml(rows)})


def scaled_ordergate(policy: engine.PolicySet):
    decide, make = policy.decide, rt.ordergate_input

    def run(q):
        d = decide("order.price", make(q))
        if d.error is not None or len(d.obligations) != 1:
            raise AssertionError(f"unexpected decision {d.to_dict()}")
        o = d.obligations[0]
        return f"discount_{o.params['percent']}" if o.name == "apply_discount" else \
            "skip" if o.name == "skip_price_calculation" else "calculate"
    return run


def scaled_linear(rows: list[rt.Row]):
    """Hand-written first-hit scan over the rows (tuples), in order."""
    table = [(r.group, frozenset(r.currencies), r.lo, r.hi, frozenset(r.channels) if r.channels else None, r.outcome)
             for r in rows]

    def run(q):
        group, currency, total, channel = q
        for g, curs, lo, hi, chans, outcome in table:
            if g == group and currency in curs and lo <= total < hi and (chans is None or channel in chans):
                return outcome
        return "calculate"
    return run


def scaled_indexed(rows: list[rt.Row]):
    """Hand-written index: the rows of the query's group (at most 8), scanned in order: the floor."""
    by_group: dict = {}
    for r in rows:
        by_group.setdefault(r.group, []).append(
            (frozenset(r.currencies), r.lo, r.hi, frozenset(r.channels) if r.channels else None, r.outcome))

    def run(q):
        group, currency, total, channel = q
        for curs, lo, hi, chans, outcome in by_group.get(group, ()):
            if currency in curs and lo <= total < hi and (chans is None or channel in chans):
                return outcome
        return "calculate"
    return run


# --- the pricing workload of bench/decide.py ---------------------------------------------------
def pricing_inputs() -> list[tuple[str, dict]]:
    """All 34 d365_sales actions x SOP x integration user x order state x created/submitted by an
    integration user: every flag combination a plug-in can send (2,720 requests)."""
    out = []
    for action in sorted(hw.PRICING_ACTIONS):
        for sop, integ, state, cbi, sbi in itertools.product((False, True), (False, True), hw.STATES,
                                                              (False, True), (False, True)):
            out.append((action, {
                "context": {"system": "d365_sales", "organization": {"is_sop_integration_enabled": sop}},
                "subject": {"is_integration_user": integ},
                "resource": {"salesorder": {"statecode": state, "created_by_integration_user": cbi,
                                            "submitted_by_integration_user": sbi}},
            }))
    return out


def faulty_inputs() -> list[tuple[str, dict]]:
    """Requests the fact checks must refuse: checked for equality, not timed."""
    def base(**over):
        d = {"context": {"system": "d365_sales", "organization": {"is_sop_integration_enabled": True}},
             "subject": {"is_integration_user": False},
             "resource": {"salesorder": {"statecode": "submitted"}}}
        for path, value in over.items():
            *head, last = path.split("__")
            node = d
            for k in head:
                node = node[k]
            if value is _DROP:
                node.pop(last)
            else:
                node[last] = value
        return d
    out = []
    for action in ("salesorder.update", "quote.create", "salesorder.submit", "invoice_line.delete",
                   "salesorder.create_invoice", "salesorder_line.recalculate"):
        out += [
            (action, base(context__organization__is_sop_integration_enabled=_DROP)),
            (action, base(context__organization__is_sop_integration_enabled="true")),
            (action, base(context__organization__is_sop_integration_enabled=1)),
            (action, base(context__organization=_DROP)),
            (action, base(context__organization=[True])),
            (action, base(subject__is_integration_user=None)),
            (action, base(subject=_DROP)),
            (action, base(subject="admin")),
            (action, base(resource__salesorder__statecode=_DROP)),
            (action, base(resource__salesorder__statecode="Submitted")),
            (action, base(resource__salesorder__statecode=3)),
            (action, base(resource__salesorder__created_by_integration_user="no")),
            (action, base(resource__salesorder__submitted_by_integration_user=None)),
            (action, base(resource__salesorder=_DROP)),
            (action, base(resource="x")),
            (action, base(context__system=_DROP)),
            (action, base(context__system=7)),
            (action, base(context__system="qad_erp_x")),
            (action, base(context=_DROP)),
        ]
    for action in ("salesorder.Update", "salesorder", "order.price", "salesorder.approve", "", None, 5):
        out.append((action, base()))
    out.append(("quote.create", "not an object"))
    return out


_DROP = object()
