"""Hand-written Python for the d365_sales pricing rules: what the engine is measured against.

`decide_pricing(action, input)` does by hand what ordergate does for the 34 d365_sales actions of
rules/pricing.yaml (domain spec 5): it checks the system and the action, reads and type-checks the
facts the action reads (missing -> missing_fact, wrong type or value -> invalid_fact), applies the
price-computation table and the guards PRC-09 ... PRC-15 with deny-overrides, and returns the same
decision dict as `Decision.to_dict()` (without policy_version).

`decide_price_table(action, input)` is the same with the table only (PRC-01 ... PRC-08, no edit
guards, no PRC-15): the policy the peer engines encode (bench/peers.py).

Written from the spec, not from the engine: the benchmarks first check that both give the same
decision as ordergate on every input they time.
"""
from __future__ import annotations

SOP = "context.organization.is_sop_integration_enabled"
INTEG = "subject.is_integration_user"
STATE = "resource.salesorder.statecode"
CBI = "resource.salesorder.created_by_integration_user"
SBI = "resource.salesorder.submitted_by_integration_user"
STATES = ("active", "submitted", "canceled", "fulfilled", "invoiced")
_STATES = frozenset(STATES)

COMPUTE = {"name": "compute_price", "params": {}}
SKIP = {"name": "skip_price_calculation", "params": {}}
READ_ONLY = {"name": "set_order_read_only", "params": {}}


def _error(code: str, field: str | None, message: str) -> dict:
    return {"allow": False, "obligations": [], "rules": [], "error": {"code": code, "field": field, "message": message}}


def _allow(obligations: list, rules: list) -> dict:
    return {"allow": True, "obligations": obligations, "rules": rules, "error": None}


def _deny(rules: list) -> dict:
    return {"allow": False, "obligations": [], "rules": rules, "error": None}


def _missing(path: str) -> dict:
    return _error("missing_fact", path, f"`{path}` is required")


def _invalid(path: str, expected: str) -> dict:
    return _error("invalid_fact", path, f"`{path}` must be {expected}")


# --- the price-computation table (spec 5.1): per action, its row's rule and the cell ----------
CALC, NA, INTEG_SKIPS, SUBMITTED_SKIPS, EITHER_SKIPS = "calculate", "n/a", "integ", "submitted", "either"
_ROWS = {
    "opportunity": ("PRC-01", (CALC, CALC, NA, CALC)),
    "quote": ("PRC-02", (CALC, CALC, NA, CALC)),
    "salesorder": ("PRC-03", (INTEG_SKIPS, EITHER_SKIPS, NA, SUBMITTED_SKIPS)),
    "invoice": ("PRC-04", (INTEG_SKIPS, INTEG_SKIPS, NA, INTEG_SKIPS)),
    "opportunity_line": ("PRC-05", (CALC, CALC, CALC, NA)),
    "quote_line": ("PRC-06", (CALC, CALC, CALC, NA)),
    "salesorder_line": ("PRC-07", (EITHER_SKIPS, EITHER_SKIPS, INTEG_SKIPS, NA)),
    "invoice_line": ("PRC-08", (INTEG_SKIPS, INTEG_SKIPS, INTEG_SKIPS, NA)),
}
CELLS = {f"{entity}.{op}": (rule, cell)
         for entity, (rule, cells) in _ROWS.items()
         for op, cell in zip(("create", "update", "delete", "recalculate"), cells, strict=False)}
# Actions whose facts include the sales order (rules/pricing.yaml `actions`).
ORDER_ACTIONS = frozenset(
    ["salesorder.update", "salesorder.delete", "salesorder.recalculate", "salesorder.create_invoice",
     "salesorder.submit"] + [f"salesorder_line.{op}" for op in ("create", "update", "delete", "recalculate")])
EDITS = frozenset(["salesorder.update", "salesorder_line.create", "salesorder_line.update", "salesorder_line.delete"])
PRICING_ACTIONS = frozenset(CELLS) | {"salesorder.submit", "salesorder.create_invoice"}
TABLE_ACTIONS = frozenset(CELLS)
_EXPECTED_STATE = "one of " + ", ".join(f"`{s}`" for s in STATES)
_BOOL = "`true` or `false`"


def _decide(action, input, catalogue, full: bool) -> dict:
    # system and action (spec 2.3 steps 1-2)
    if type(input) is not dict:
        return _error("invalid_fact", None, "the input must be an object")
    context = input.get("context")
    if context is None:
        return _error("missing_fact", "context.system", "`context.system` is required")
    if type(context) is not dict:
        return _error("invalid_fact", "context", "`context` must be an object")
    system = context.get("system")
    if system is None:
        return _error("missing_fact", "context.system", "`context.system` is required")
    if type(system) is not str:
        return _error("invalid_fact", "context.system", "`context.system` must be text")
    if system != "d365_sales":
        return _error("unknown_system", "context.system", f"unknown system `{system}`")
    if type(action) is not str or action not in catalogue:
        return _error("unknown_action", None, f"action `{action}` is not in the catalogue of `{system}`")

    # the facts the action reads (step 3): absent or null -> missing, wrong type -> invalid
    org = context.get("organization")
    if org is not None and type(org) is not dict:
        return _invalid("context.organization", "an object")
    sop = org.get("is_sop_integration_enabled") if org is not None else None
    if sop is None:
        return _missing(SOP)
    if sop is not True and sop is not False:
        return _invalid(SOP, _BOOL)
    subject = input.get("subject")
    if subject is not None and type(subject) is not dict:
        return _invalid("subject", "an object")
    integ = subject.get("is_integration_user") if subject is not None else None
    if integ is None:
        return _missing(INTEG)
    if integ is not True and integ is not False:
        return _invalid(INTEG, _BOOL)
    state, cbi, sbi = None, False, False
    if action in ORDER_ACTIONS:
        resource = input.get("resource")
        if resource is not None and type(resource) is not dict:
            return _invalid("resource", "an object")
        so = resource.get("salesorder") if resource is not None else None
        if so is not None and type(so) is not dict:
            return _invalid("resource.salesorder", "an object")
        if so is None:
            return _missing(STATE)
        state = so.get("statecode")
        if state is None:
            return _missing(STATE)
        if type(state) is not str or state not in _STATES:
            return _invalid(STATE, _EXPECTED_STATE)
        cbi = so.get("created_by_integration_user")
        if cbi is None:
            cbi = False
        elif cbi is not True and cbi is not False:
            return _invalid(CBI, _BOOL)
        sbi = so.get("submitted_by_integration_user")
        if sbi is None:
            sbi = False
        elif sbi is not True and sbi is not False:
            return _invalid(SBI, _BOOL)

    # the rules (step 4-5: guards deny, effects allow, deny overrides)
    if full:
        if action == "salesorder.submit":
            denied = []
            if not sop:
                denied.append("PRC-10")
            if state != "active":
                denied.append("PRC-11")
            if denied:
                return _deny(denied)
            obligations = [{"name": "set_order_state",
                            "params": {"statecode": "submitted", "statuscode": "in_progress",
                                       "submitted_by_integration_user": integ}}]
            if not integ and not cbi:
                obligations.append(READ_ONLY)
            return _allow(obligations, ["PRC-12"])
        if action == "salesorder.create_invoice":
            return _deny(["PRC-13"]) if sop else _allow([], [])
        if action in EDITS:
            denied = []
            if sop and state == "submitted" and not integ and not cbi and not sbi:
                denied.append("PRC-09")
            if state in ("canceled", "fulfilled", "invoiced") or (state == "submitted" and not sop):
                denied.append("PRC-14")
            if denied:
                return _deny(denied)
    rule, cell = CELLS[action]
    if cell == CALC:
        skip = False
    elif cell == NA:
        return _allow([], [rule])
    elif cell == INTEG_SKIPS:
        skip = sop and integ
    elif cell == SUBMITTED_SKIPS:
        skip = sop and state == "submitted"
    else:
        skip = sop and (integ or state == "submitted")
    if full and action == "salesorder.recalculate":
        editable = state == "active" or (state == "submitted" and sop and (integ or cbi or sbi))
        if not editable:  # PRC-15 skips; that overrides PRC-03's compute_price, which is then not cited
            return _allow([SKIP], ["PRC-03", "PRC-15"] if skip else ["PRC-15"])
    return _allow([SKIP] if skip else [COMPUTE], [rule])


def decide_pricing(action, input) -> dict:
    """All 34 d365_sales actions of rules/pricing.yaml."""
    return _decide(action, input, PRICING_ACTIONS, True)


def decide_price_table(action, input) -> dict:
    """The 32 table actions, table rules only (the policy of bench/peers.py)."""
    return _decide(action, input, TABLE_ACTIONS, False)


def comparable(decision: dict) -> tuple:
    """The contract fields of a decision dict, order-free where the contract is (spec 2.2-2.6)."""
    err = decision["error"]
    return (decision["allow"],
            sorted((o["name"], sorted(o["params"].items())) for o in decision["obligations"]),
            sorted(decision["rules"]),
            None if err is None else (err["code"], err["field"]))
