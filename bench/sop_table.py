"""The Dynamics 365 price-computation table (domain spec 5.1) as plain data: the oracle.

Every benchmark checks its engines against `oracle()` before timing them. The table here is a
cell-by-cell copy of the spec, written separately from rules/pricing.yaml and from every peer's
encoding, so that a disagreement points at an encoding, not at a shared mistake.
"""
from __future__ import annotations

import itertools

ENTITIES = ("opportunity", "quote", "salesorder", "invoice",
            "opportunity_line", "quote_line", "salesorder_line", "invoice_line")
OPERATIONS = ("create", "update", "delete", "recalculate")

# cell: "calculate", "n/a", or the set of words of "skip when A or B" (each word implies SOP).
_C, _NA = "calculate", "n/a"
TABLE = {
    "opportunity":      (_C, _C, _NA, _C),
    "quote":            (_C, _C, _NA, _C),
    "salesorder":       ({"integ"}, {"submitted", "integ"}, _NA, {"submitted"}),
    "invoice":          ({"integ"}, {"integ"}, _NA, {"integ"}),
    "opportunity_line": (_C, _C, _C, _NA),
    "quote_line":       (_C, _C, _C, _NA),
    "salesorder_line":  ({"integ", "submitted"}, {"integ", "submitted"}, {"integ"}, _NA),
    "invoice_line":     ({"integ"}, {"integ"}, {"integ"}, _NA),
}


def oracle(entity: str, operation: str, sop: bool, integ: bool, submitted: bool) -> str:
    cell = TABLE[entity][OPERATIONS.index(operation)]
    if cell == _NA:
        return "not_applicable"
    if cell == _C:
        return "calculate"
    flags = {"integ": integ, "submitted": submitted}
    return "skip" if sop and any(flags[w] for w in cell) else "calculate"


def all_inputs() -> list[tuple[str, str, bool, bool, bool]]:
    """The 256 combinations: 8 entities x 4 operations x SOP x integration user x submitted."""
    return [(e, o, sop, integ, sub) for e in ENTITIES for o in OPERATIONS
            for sop, integ, sub in itertools.product((False, True), repeat=3)]


def request(entity: str, operation: str, sop: bool, integ: bool, submitted: bool) -> tuple[str, dict]:
    """The ordergate request a Dynamics 365 plug-in would send for this combination."""
    return f"{entity}.{operation}", {
        "context": {"system": "d365_sales", "organization": {"is_sop_integration_enabled": sop}},
        "subject": {"is_integration_user": integ},
        "resource": {"salesorder": {"statecode": "submitted" if submitted else "active"}},
    }


def outcome_of(decision: dict) -> str:
    """The table outcome a decision dict stands for (ordergate's and the hand-written one's).

    allow with `skip_price_calculation` -> skip, with `compute_price` -> calculate, with no price
    obligation but its row cited -> not_applicable. Anything else is a wrong answer.
    """
    if decision["error"] is not None or not decision["allow"]:
        raise AssertionError(f"expected an allow, got {decision}")
    names = {o["name"] for o in decision["obligations"]}
    if "skip_price_calculation" in names:
        return "skip"
    if "compute_price" in names:
        return "calculate"
    if not decision["rules"]:
        raise AssertionError(f"no rule cited: {decision}")
    return "not_applicable"
