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


class _Fault(Exception):
    def __init__(self, code: str, field: str, message: str):
        self.decision = _error(code, field, message)


def _boolean(parent: dict, key: str, dotted: str, default=None) -> bool:
    v = parent.get(key)
    if v is None:
        if default is None:
            raise _Fault("missing_fact", dotted, f"`{dotted}` is required")
        return default
    if v is True or v is False:
        return v
    raise _Fault("invalid_fact", dotted, f"`{dotted}` must be `true` or `false`")


def _object(parent: dict, key: str, dotted: str, leaf: str) -> dict | None:
    """An intermediate object on a fact's path; None when absent (the fact is then absent)."""
    v = parent.get(key)
    if v is None:
        return None
    if type(v) is not dict:
        raise _Fault("invalid_fact", dotted, f"`{dotted}` must be an object")
    return v


def _read(input: dict, context: dict, order: bool) -> tuple:
    """sop, integ and, for order actions, statecode, created_by_..., submitted_by_... (in that order)."""
    org = _object(context, "organization", "context.organization", SOP)
    if org is None:
        raise _Fault("missing_fact", SOP, f"`{SOP}` is required")
    sop = _boolean(org, "is_sop_integration_enabled", SOP)
    subject = _object(input, "subject", "subject", INTEG)
    if subject is None:
        raise _Fault("missing_fact", INTEG, f"`{INTEG}` is required")
    integ = _boolean(subject, "is_integration_user", INTEG)
    if not order:
        return sop, integ, None, False, False
    resource = _object(input, "resource", "resource", STATE)
    so = _object(resource, "salesorder", "resource.salesorder", STATE) if resource is not None else None
    if so is None:
        raise _Fault("missing_fact", STATE, f"`{STATE}` is required")
    state = so.get("statecode")
    if state is None:
        raise _Fault("missing_fact", STATE, f"`{STATE}` is required")
    if type(state) is not str or state not in _STATES:
        raise _Fault("invalid_fact", STATE, f"`{STATE}` must be one of " + ", ".join(f"`{s}`" for s in STATES))
    cbi = _boolean(so, "created_by_integration_user", CBI, default=False)
    sbi = _boolean(so, "submitted_by_integration_user", SBI, default=False)
    return sop, integ, state, cbi, sbi


# --- the price-computation table (spec 5.1): one function per row, by operation --------------
def _calc(rule):
    return lambda sop, integ, state: ([COMPUTE], rule)


def _na(rule):
    return lambda sop, integ, state: ([], rule)


def _skip_integ(rule):
    return lambda sop, integ, state: ([SKIP] if sop and integ else [COMPUTE], rule)


def _skip_submitted(rule):
    return lambda sop, integ, state: ([SKIP] if sop and state == "submitted" else [COMPUTE], rule)


def _skip_either(rule):
    return lambda sop, integ, state: ([SKIP] if sop and (integ or state == "submitted") else [COMPUTE], rule)


_ROWS = {
    "opportunity": ("PRC-01", (_calc, _calc, _na, _calc)),
    "quote": ("PRC-02", (_calc, _calc, _na, _calc)),
    "salesorder": ("PRC-03", (_skip_integ, _skip_either, _na, _skip_submitted)),
    "invoice": ("PRC-04", (_skip_integ, _skip_integ, _na, _skip_integ)),
    "opportunity_line": ("PRC-05", (_calc, _calc, _calc, _na)),
    "quote_line": ("PRC-06", (_calc, _calc, _calc, _na)),
    "salesorder_line": ("PRC-07", (_skip_either, _skip_either, _skip_integ, _na)),
    "invoice_line": ("PRC-08", (_skip_integ, _skip_integ, _skip_integ, _na)),
}
CELLS = {f"{entity}.{op}": make(rule)
         for entity, (rule, makers) in _ROWS.items()
         for op, make in zip(("create", "update", "delete", "recalculate"), makers)}
# Actions whose facts include the sales order (rules/pricing.yaml `actions`).
ORDER_ACTIONS = frozenset(
    ["salesorder.update", "salesorder.delete", "salesorder.recalculate", "salesorder.create_invoice",
     "salesorder.submit"] + [f"salesorder_line.{op}" for op in ("create", "update", "delete", "recalculate")])
EDITS = frozenset(["salesorder.update", "salesorder_line.create", "salesorder_line.update", "salesorder_line.delete"])


def _table_only(action, sop, integ, state, cbi, sbi) -> dict:
    obligations, rule = CELLS[action](sop, integ, state)
    return _allow(obligations, [rule])


def _pricing(action, sop, integ, state, cbi, sbi) -> dict:
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
    obligations, rule = CELLS[action](sop, integ, state)
    if action == "salesorder.recalculate":
        editable = state == "active" or (state == "submitted" and sop and (integ or cbi or sbi))
        if not editable:  # PRC-15: skip; it overrides compute_price, and PRC-03 is then cited only if it skips too
            return _allow([SKIP], ["PRC-03", "PRC-15"] if obligations == [SKIP] else ["PRC-15"])
    return _allow(obligations, [rule])


def _decide(action, input, catalogue, rules) -> dict:
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
    try:
        sop, integ, state, cbi, sbi = _read(input, context, action in ORDER_ACTIONS)
    except _Fault as fault:
        return fault.decision
    return rules(action, sop, integ, state, cbi, sbi)


PRICING_ACTIONS = frozenset(CELLS) | {"salesorder.submit", "salesorder.create_invoice"}
TABLE_ACTIONS = frozenset(CELLS)


def decide_pricing(action, input) -> dict:
    """All 34 d365_sales actions of rules/pricing.yaml."""
    return _decide(action, input, PRICING_ACTIONS, _pricing)


def decide_price_table(action, input) -> dict:
    """The 32 table actions, table rules only (the policy of bench/peers.py)."""
    return _decide(action, input, TABLE_ACTIONS, _table_only)


def comparable(decision: dict) -> tuple:
    """The contract fields of a decision dict, order-free where the contract is (spec 2.2-2.6)."""
    err = decision["error"]
    return (decision["allow"],
            sorted((o["name"], sorted(o["params"].items())) for o in decision["obligations"]),
            sorted(decision["rules"]),
            None if err is None else (err["code"], err["field"]))
