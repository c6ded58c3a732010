"""Each peer engine's encoding of the two benchmark policies, behind one adapter shape.

SOP table (domain spec 5.1): `sop_<engine>()` returns `decide((entity, operation, sop, integ,
submitted)) -> "calculate" | "skip" | "not_applicable"`. Each encoding is written by hand in the
engine's own language, cell by cell from the spec table: 2 not-applicable rules (header entities
on delete, line entities on recalculate), 6 skip rules (every skip needs SOP), `calculate` when
nothing else holds:

    S1 salesorder      create, update            integ
    S2 salesorder      update, recalculate       submitted
    S3 invoice         create, update, recalc.   integ
    S4 salesorder_line create, update, delete    integ
    S5 salesorder_line create, update            submitted
    S6 invoice_line    create, update, delete    integ

Scaled table (bench/rowtable.py): `scaled_<engine>(rows)` returns `decide(Query) -> outcome`,
generated from the rows.

Every adapter converts the Python values into what its engine takes (dicts, JSON) inside the
call, so that cost is counted: it is what a Python caller pays. A builder raises ImportError when
its engine is not installed.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable

import rowtable as rt

HEADERS = ("opportunity", "quote", "salesorder", "invoice")
LINES = ("opportunity_line", "quote_line", "salesorder_line", "invoice_line")
# (rule, entity, operations, flag that makes the cell skip, with SOP on)
SKIPS = (
    ("S1", "salesorder", ("create", "update"), "integ"),
    ("S2", "salesorder", ("update", "recalculate"), "submitted"),
    ("S3", "invoice", ("create", "update", "recalculate"), "integ"),
    ("S4", "salesorder_line", ("create", "update", "delete"), "integ"),
    ("S5", "salesorder_line", ("create", "update"), "submitted"),
    ("S6", "invoice_line", ("create", "update", "delete"), "integ"),
)


# --- zen-engine (GoRules JDM decision table) ------------------------------------------------
def _jdm(fields: list[str], rules: list[tuple[list[str], str]]) -> dict:
    """A JDM graph: input -> one first-hit decision table -> output."""
    return {
        "contentType": "application/vnd.gorules.decision",
        "nodes": [
            {"id": "in", "type": "inputNode", "name": "request", "position": {"x": 0, "y": 0}},
            {"id": "table", "type": "decisionTableNode", "name": "table", "position": {"x": 200, "y": 0},
             "content": {
                 "hitPolicy": "first",
                 "inputs": [{"id": f"i{k}", "name": f, "field": f} for k, f in enumerate(fields)],
                 "outputs": [{"id": "o", "name": "outcome", "field": "outcome"}],
                 "rules": [{"_id": f"r{n}", **{f"i{k}": c for k, c in enumerate(cells)}, "o": json.dumps(out)}
                           for n, (cells, out) in enumerate(rules)]}},
            {"id": "out", "type": "outputNode", "name": "response", "position": {"x": 400, "y": 0}},
        ],
        "edges": [{"id": "e1", "sourceId": "in", "targetId": "table", "type": "edge"},
                  {"id": "e2", "sourceId": "table", "targetId": "out", "type": "edge"}],
    }


def _zen_engine(content: dict) -> Callable[[dict], dict]:
    import zen
    engine = zen.ZenEngine({"loader": {"type": "static", "content": {"table": content}}})
    evaluate = engine.evaluate
    evaluate("table", {})  # compile now, not on the first timed call
    return lambda ctx: evaluate("table", ctx)["result"]


def _q(*values: str) -> str:
    return ", ".join(json.dumps(v) for v in values)


def sop_zen() -> Callable:
    # columns: entity, operation, sop, integ, submitted; "" = any
    rules = [([_q(*HEADERS), _q("delete"), "", "", ""], "not_applicable"),
             ([_q(*LINES), _q("recalculate"), "", "", ""], "not_applicable")]
    for _, entity, ops, flag in SKIPS:
        rules.append(([_q(entity), _q(*ops), "true", "true" if flag == "integ" else "",
                       "true" if flag == "submitted" else ""], "skip"))
    rules.append((["", "", "", "", ""], "calculate"))
    run = _zen_engine(_jdm(["entity", "operation", "sop", "integ", "submitted"], rules))

    def decide(x):
        return run({"entity": x[0], "operation": x[1], "sop": x[2], "integ": x[3], "submitted": x[4]})["outcome"]
    return decide


def scaled_zen(rows: list[rt.Row]) -> Callable:
    body = [([_q(r.group), _q(*r.currencies), f"[{r.lo}..{r.hi})", _q(*r.channels) if r.channels else ""], r.outcome)
            for r in rows]
    body.append((["", "", "", ""], "calculate"))
    run = _zen_engine(_jdm(["group", "currency", "total", "channel"], body))

    def decide(q):
        return run({"group": q.group, "currency": q.currency, "total": q.total, "channel": q.channel})["outcome"]
    return decide


# --- cedarpy (Cedar) --------------------------------------------------------------------------
CEDAR_TYPES = {"opportunity": "Opportunity", "quote": "Quote", "salesorder": "SalesOrder", "invoice": "Invoice",
               "opportunity_line": "OpportunityLine", "quote_line": "QuoteLine",
               "salesorder_line": "SalesOrderLine", "invoice_line": "InvoiceLine"}
PRINCIPAL = {"type": "User", "id": "caller"}


def _cedar(text: str):
    import cedarpy
    policies = cedarpy.PolicySet.from_str(text)
    entities = cedarpy.Entities.from_json_str("[]")
    is_authorized = cedarpy.is_authorized
    allow = cedarpy.Decision.Allow

    def run(request: dict):
        result = is_authorized(request, policies, entities)
        diagnostics = result.diagnostics
        if diagnostics.errors:
            raise RuntimeError(f"cedar: {diagnostics.errors}")
        return result.decision == allow, diagnostics
    return run


def sop_cedar() -> Callable:
    """Permit = skip; forbid = not applicable (forbid overrides permit, like the n/a rows first);
    Deny that no policy determined = calculate."""
    def any_of(entities):
        return " || ".join(f"resource is {CEDAR_TYPES[e]}" for e in entities)
    text = [
        f'@id("na-headers")\nforbid(principal, action == Action::"delete", resource) when {{ {any_of(HEADERS)} }};',
        f'@id("na-lines")\nforbid(principal, action == Action::"recalculate", resource) when {{ {any_of(LINES)} }};',
    ]
    for rule, entity, ops, flag in SKIPS:
        actions = ", ".join(f'Action::"{op}"' for op in ops)
        text.append(f'@id("{rule}")\npermit(principal, action in [{actions}], resource is {CEDAR_TYPES[entity]}) '
                    f'when {{ context.sop && context.{flag} }};')
    run = _cedar("\n".join(text))
    action_ids = {op: {"type": "Action", "id": op} for op in ("create", "update", "delete", "recalculate")}

    def decide(x):
        allowed, diagnostics = run({"principal": PRINCIPAL, "action": action_ids[x[1]],
                                    "resource": {"type": CEDAR_TYPES[x[0]], "id": "r"},
                                    "context": {"sop": x[2], "integ": x[3], "submitted": x[4]}})
        if allowed:
            return "skip"
        return "not_applicable" if diagnostics.reasons else "calculate"
    return decide


def scaled_cedar(rows: list[rt.Row]) -> Callable:
    """One permit per row; the outcome is looked up through the determining policy's @id."""
    def cond(r):
        parts = [f'context.group == "{r.group}"',
                 f'context.currency == "{r.currencies[0]}"' if len(r.currencies) == 1
                 else f"{json.dumps(list(r.currencies))}.contains(context.currency)",
                 f"context.total >= {r.lo}", f"context.total < {r.hi}"]
        if r.channels:
            parts.append(f"{json.dumps(list(r.channels))}.contains(context.channel)")
        return " && ".join(parts)
    run = _cedar("\n".join(f'@id("{r.id}") permit(principal, action, resource) when {{ {cond(r)} }};' for r in rows))
    outcome = {r.id: r.outcome for r in rows}
    action, resource = {"type": "Action", "id": "price"}, {"type": "Order", "id": "o"}

    def decide(q):
        allowed, diagnostics = run({"principal": PRINCIPAL, "action": action, "resource": resource,
                                    "context": {"group": q.group, "currency": q.currency, "total": q.total,
                                                "channel": q.channel}})
        if not allowed:
            return "calculate"
        (row_id,) = diagnostics.id_annotations_by_reason.values()
        return outcome[row_id]
    return decide


# --- regopy (Rego, rego-cpp) -----------------------------------------------------------------
def _rego(module: str):
    import regopy
    interpreter = regopy.Interpreter()  # stateful (set_input, then query): one per adapter and thread
    interpreter.add_module("policy", module)
    bundle = interpreter.build("x = data.bench.outcome")
    set_input, query = interpreter.set_input, interpreter.query_bundle

    def run(value: dict) -> str:
        set_input(value)
        out = query(bundle)
        if not out.results:
            raise RuntimeError(f"rego: {out}")
        return out.results[0].bindings["x"]
    return run


def _set(values) -> str:
    return "{" + ", ".join(json.dumps(v) for v in values) + "}"


def sop_rego() -> Callable:
    lines = ["package bench", "import rego.v1", "",
             f"not_applicable if {{ input.entity in {_set(HEADERS)}; input.operation == \"delete\" }}",
             f"not_applicable if {{ input.entity in {_set(LINES)}; input.operation == \"recalculate\" }}"]
    for _, entity, ops, flag in SKIPS:
        lines.append(
            f'skip if {{ input.sop; input.{flag}; input.entity == "{entity}"; input.operation in {_set(ops)} }}'
        )
    lines += ["", 'default outcome := "calculate"',
              'outcome := "not_applicable" if not_applicable', 'else := "skip" if skip']
    run = _rego("\n".join(lines))

    def decide(x):
        return run({"entity": x[0], "operation": x[1], "sop": x[2], "integ": x[3], "submitted": x[4]})
    return decide


def scaled_rego(rows: list[rt.Row]) -> Callable:
    """One complete rule per row (the rows do not overlap, so no two give different values)."""
    lines = ["package bench", "import rego.v1", 'default outcome := "calculate"']
    for r in rows:
        body = [
            f'input.group == "{r.group}"',
            f'input.currency == "{r.currencies[0]}"'
            if len(r.currencies) == 1
            else f"input.currency in {_set(r.currencies)}",
            f"input.total >= {r.lo}",
            f"input.total < {r.hi}",
        ]
        if r.channels:
            body.append(f"input.channel in {_set(r.channels)}")
        lines.append(f'outcome := "{r.outcome}" if {{ {"; ".join(body)} }}')
    run = _rego("\n".join(lines))

    def decide(q):
        return run({"group": q.group, "currency": q.currency, "total": q.total, "channel": q.channel})
    return decide


# --- rule-engine (zeroSteiner) ---------------------------------------------------------------
def _rule_engine(types: dict, rules: list[tuple[str, str]], default: str) -> Callable[[dict], str]:
    """Typed Rules tried in order; the first that matches gives the outcome (rule-engine has no hit policy)."""
    import rule_engine
    context = rule_engine.Context(type_resolver=rule_engine.type_resolver_from_dict(
        {k: getattr(rule_engine.DataType, t) for k, t in types.items()}))
    compiled = [(rule_engine.Rule(text, context=context).matches, outcome) for text, outcome in rules]

    def run(thing: dict) -> str:
        for matches, outcome in compiled:
            if matches(thing):
                return outcome
        return default
    return run


def _list(values) -> str:
    return "[" + ", ".join(repr(v) for v in values) + "]"


def sop_rule_engine() -> Callable:
    rules = [(f"entity in {_list(HEADERS)} and operation == 'delete'", "not_applicable"),
             (f"entity in {_list(LINES)} and operation == 'recalculate'", "not_applicable")]
    for _, entity, ops, flag in SKIPS:
        rules.append((f"sop and {flag} and entity == '{entity}' and operation in {_list(ops)}", "skip"))
    run = _rule_engine({"entity": "STRING", "operation": "STRING", "sop": "BOOLEAN", "integ": "BOOLEAN",
                        "submitted": "BOOLEAN"}, rules, "calculate")

    def decide(x):
        return run({"entity": x[0], "operation": x[1], "sop": x[2], "integ": x[3], "submitted": x[4]})
    return decide


def scaled_rule_engine(rows: list[rt.Row]) -> Callable:
    def text(r):
        parts = [f"group == '{r.group}'",
                 f"currency == '{r.currencies[0]}'" if len(r.currencies) == 1 else f"currency in {_list(r.currencies)}",
                 f"total >= {r.lo}", f"total < {r.hi}"]
        if r.channels:
            parts.append(f"channel in {_list(r.channels)}")
        return " and ".join(parts)
    run = _rule_engine({"group": "STRING", "currency": "STRING", "total": "FLOAT", "channel": "STRING"},
                       [(text(r), r.outcome) for r in rows], "calculate")

    def decide(q):
        return run({"group": q.group, "currency": q.currency, "total": q.total, "channel": q.channel})
    return decide


# --- durable_rules (Rete, JSON ruleset API) --------------------------------------------------
_durable_names = iter(range(1_000_000))


def _durable(rules: dict) -> Callable[[dict], str]:
    """Events posted to a Host subclass without dispatcher threads, one sid per thread.

    Each decision is an event; an event is consumed by exactly one action, the lowest `pri`
    first, which gives first-hit; the catch-all at `pri` 9 exists because an event that matches
    nothing raises. Each action writes `c.s.outcome`; `post` returns the sid's state.
    """
    from durable import engine

    def setter(value):  # a one-parameter action runs synchronously inside post()
        def action(c):
            c.s.outcome = value
        return action

    class Host(engine.Host):
        def _run(self):  # no dispatcher/timer threads: they can steal a pending action
            pass

        def get_action(self, name):
            return setter(name)

    host = Host()
    name = f"bench{next(_durable_names)}"
    host.set_rulesets({name: rules})
    post, local = host.post, threading.local()

    def run(message: dict) -> str:
        sid = getattr(local, "sid", None)
        if sid is None:
            sid = local.sid = f"t{threading.get_ident()}"
        message["sid"] = sid
        state = post(name, message)
        if state is None or "exception" in state:
            raise RuntimeError(f"durable_rules: {state}")
        return state["outcome"]
    return run


def _eq_any(field: str, values) -> dict:
    return {field: values[0]} if len(values) == 1 else {"$or": [{field: v} for v in values]}


def sop_durable() -> Callable:
    rules = {"na-headers": {"all": [{"m": {"$and": [_eq_any("entity", HEADERS), {"operation": "delete"}]}}],
                            "pri": 0, "run": "not_applicable"},
             "na-lines": {"all": [{"m": {"$and": [_eq_any("entity", LINES), {"operation": "recalculate"}]}}],
                          "pri": 0, "run": "not_applicable"},
             "otherwise": {"all": [{"m": {"$ex": {"entity": 1}}}], "pri": 9, "run": "calculate"}}
    for rule, entity, ops, flag in SKIPS:
        rules[rule] = {"all": [{"m": {"$and": [{"entity": entity}, _eq_any("operation", ops), {"sop": True},
                                                {flag: True}]}}], "pri": 1, "run": "skip"}
    run = _durable(rules)

    def decide(x):
        return run({"entity": x[0], "operation": x[1], "sop": x[2], "integ": x[3], "submitted": x[4]})
    return decide


def scaled_durable(rows: list[rt.Row]) -> Callable:
    rules = {"otherwise": {"all": [{"m": {"$ex": {"group": 1}}}], "pri": 9, "run": "calculate"}}
    for r in rows:
        tests = [{"group": r.group}, _eq_any("currency", r.currencies),
                 {"$gte": {"total": r.lo}}, {"$lt": {"total": r.hi}}]
        if r.channels:
            tests.append(_eq_any("channel", r.channels))
        rules[r.id] = {"all": [{"m": {"$and": tests}}], "pri": 1, "run": r.outcome}
    run = _durable(rules)

    def decide(q):
        return run({"group": q.group, "currency": q.currency, "total": q.total, "channel": q.channel})
    return decide


SOP = {"zen-engine": sop_zen, "cedarpy": sop_cedar, "regopy": sop_rego,
       "durable_rules": sop_durable, "rule-engine": sop_rule_engine}
SCALED = {"zen-engine": scaled_zen, "cedarpy": scaled_cedar, "regopy": scaled_rego,
          "durable_rules": scaled_durable, "rule-engine": scaled_rule_engine}
# The module each peer needs: a missing one means "not installed", reported and skipped.
MODULES = {"zen-engine": "zen", "cedarpy": "cedarpy", "regopy": "regopy", "durable_rules": "durable",
           "rule-engine": "rule_engine"}
