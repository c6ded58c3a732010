"""A direct interpreter of the IR: the reference the generated code is tested against.

It walks an ``ir.ActionPlan`` the plain way (every row of a table, no constants folded, no
index) and must give the decision the generated function gives. Decisions use it only in tests
(``tests/test_engine_interpreter.py``); it is kept small so that it is obviously right.
"""
from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from . import ir, runtime
from .decision import Decision, DecisionError, Obligation
from .runtime import ABSENT, EvaluationError, MissingFact, Trace

_ORDER: dict[str, Callable[[Any, Any], bool]] = {"at_least": operator.ge, "above": operator.gt,
                                                 "at_most": operator.le, "below": operator.lt}


class _Failed(Exception):
    """Reading the facts ended the decision early (a missing or invalid fact)."""

    def __init__(self, decision: Decision):
        super().__init__(decision.error)
        self.decision = decision


class Interpreter:
    def __init__(self, plan: ir.ActionPlan, version: str, tr: Trace):
        self.plan, self.version, self.tr = plan, version, tr
        self.vals: list[Any] = [ABSENT] * (plan.slots - 1) + [plan.action]

    def error(self, code: str, field: str, message: str) -> _Failed:
        return _Failed(Decision(False, (), (), DecisionError(code, field, message), self.version,
                                runtime.frozen_trace(self.tr)))

    # -- facts ------------------------------------------------------------------------------------
    def read_facts(self, data: dict[str, Any]) -> None:
        checked: set[tuple[str, ...]] = set()
        for read in self.plan.reads:
            node: Any = data
            path = read.fact.path
            for n, key in enumerate(path[:-1], start=1):
                node = node.get(key) if node is not None else None
                if path[:n] not in checked:
                    checked.add(path[:n])
                    if node is not None and type(node) is not dict:
                        dotted = ".".join(path[:n])
                        raise self.error("invalid_fact", dotted, f"`{dotted}` must be an object")
            self.vals[read.fact.slot] = self.value_of(read, node.get(path[-1]) if node is not None else None)

    def value_of(self, read: ir.FactRead, v: Any) -> Any:
        fact = read.fact
        if v is None:
            if read.mode == "required" or (read.required_when is not None and self.cond(read.required_when, None)):
                raise self.error("missing_fact", fact.dotted, f"`{fact.dotted}` is required")
            return read.default if read.mode == "optional" else ABSENT
        if not fact.type.accepts(v):
            shown = "an object" if isinstance(v, dict) else "a list" if isinstance(v, list) else ir.show(v)
            raise self.error("invalid_fact", fact.dotted,
                             f"`{fact.dotted}` must be {fact.type.describe()}, not {shown}")
        return v

    def value(self, fact: ir.Fact) -> Any:
        v = self.vals[fact.slot]
        if v is ABSENT:
            raise MissingFact(fact.dotted)
        return v

    # -- conditions -----------------------------------------------------------------------------------
    def test(self, test: ir.Test, v: Any) -> bool:
        if isinstance(test, ir.Compare):
            if test.op in ("is", "is_not"):
                return bool(v == test.value) == (test.op == "is")
            if test.scale is not None:
                return _ORDER[test.op](test.scale.rank[v], test.scale.rank[test.value])
            return _ORDER[test.op](v, test.value)
        if isinstance(test, ir.Member):
            return (v in test.values) == (test.op == "in")
        if isinstance(test, ir.Contains):
            return (test.value in v) == (test.op == "contains")
        if isinstance(test, ir.Each):
            return (any if test.op == "some" else all)(self.test(test.test, x) for x in v)
        if isinstance(test, ir.Flag):
            return (len(v) == 0 if test.op == "empty" else runtime.entered(v)) == test.value
        if isinstance(test, ir.SameAs):
            other = self.value(test.other)
            return v == other if test.op == "equals_fact" else v in other
        return all(self.test(t, v) for t in test.tests)

    def cond(self, c: ir.Condition, t: Trace) -> bool:
        if isinstance(c, ir.FactCondition):
            v = self.value(c.fact)
            held = self.test(c.test, v)
            return held if t is None else runtime.leaf(t, _leaf(c), v, held)
        if isinstance(c, ir.AllOf):
            return all(self.cond(p, t) for p in c.parts)
        if isinstance(c, ir.AnyOf):
            return any(self.cond(p, t) for p in c.parts)
        if isinstance(c, ir.Not):
            return not self.cond(c.inner, t)
        if isinstance(c, ir.Always):
            return True if t is None else runtime.always(t)
        graph = self.value(c.graph) if isinstance(c.graph, ir.Fact) else c.graph.edges
        meta = runtime.MoveCheck(c.source.name, c.source.dotted, c.unlisted_allowed)
        return runtime.move(t, meta, graph, self.value(c.source), self.value(c.target))

    # -- rules -----------------------------------------------------------------------------------------
    def obligations(self, uses: tuple[ir.ObligationUse, ...], t: Trace) -> list[tuple[Obligation, Any]]:
        out = []
        for use in uses:
            if use.when is None or self.cond(use.when, t):
                params = {p.name: self.param(p) for p in use.params}
                out.append(runtime.obligation(use.name, params))
        return out

    def param(self, p: ir.Param) -> Any:
        if isinstance(p, ir.StaticParam):
            return p.value
        if isinstance(p, ir.FactParam):
            return self.value(p.fact)
        return next((v for v in (self.value(f) for f in p.facts) if runtime.entered(v)), None)

    def record(self, entry: dict[str, Any]) -> None:
        if self.tr is not None:
            self.tr.append(entry)

    def guard(self, g: ir.Guard, denied: list[str]) -> None:
        t: Trace = None if self.tr is None else []
        applies = g.when is None or self.cond(g.when, t)
        deny = applies and self.cond(g.deny, t)
        if deny:
            denied.append(g.id)
        self.record({"rule": g.id, "kind": "guard", "says": g.says,
                     "outcome": "denied" if deny else ("passed" if applies else "not applicable"), "conditions": t})

    def effect(self, e: ir.Effect, fired: runtime.Fired) -> None:
        t: Trace = None if self.tr is None else []
        applies = e.when is None or self.cond(e.when, t)
        made: list[tuple[Obligation, Any]] = []
        if applies:
            case = next((c for c in e.cases if self.cond(c.condition, t)), None)
            made = self.obligations(case.obligations if case is not None else e.otherwise, t)
            fired.append((e.id, made))
        self.record({"rule": e.id, "kind": "effect", "says": e.says,
                     "outcome": "fired" if applies else "not applicable",
                     "obligations": [o.to_dict() for o, _ in made], "conditions": t})

    def table(self, table: ir.RowTable, fired: runtime.Fired, denied: list[str]) -> Decision | None:
        sub: Trace = None if self.tr is None else []
        if table.when is not None and not self.cond(table.when, sub):
            self.record({"rule": table.id, "kind": "table", "says": table.says, "outcome": "not applicable",
                         "conditions": sub})
            return None
        matched = []
        for row in table.rows:
            t: Trace = None if self.tr is None else []
            if all(self.cond(c, t) for c in row.cells if isinstance(c, ir.FactCondition)):
                matched.append(row.id)
                fired.append((row.id, self.obligations(row.obligations, t)))
                self.record({"rule": row.id, "kind": "table row", "table": table.id, "says": row.says,
                             "outcome": "fired", "conditions": t})
                if table.hit == "first":
                    break
            else:
                self.record({"rule": row.id, "kind": "table row", "table": table.id, "says": row.says,
                             "outcome": "not matched", "conditions": t})
        if table.hit == "unique" and len(matched) > 1:
            raise EvaluationError(f"table `{table.id}` has hit policy unique but rows {', '.join(matched)} all match")
        if matched or table.no_match is None:
            return None
        nm = table.no_match
        made = self.obligations(nm.obligations, self.tr) if nm.outcome not in ("deny", "error") else None
        return runtime.no_row_matched(table.id, nm.outcome, made, self.version, self.tr, fired, denied)

    def run(self, data: dict[str, Any]) -> Decision:
        try:
            self.read_facts(data)
        except _Failed as failed:
            return failed.decision
        denied: list[str] = []
        fired: runtime.Fired = []
        guards_passed = False
        for unit in self.plan.units:
            if isinstance(unit, ir.Guard):
                self.guard(unit, denied)
                continue
            if denied and not guards_passed:
                break
            guards_passed = True
            if isinstance(unit, ir.Effect):
                self.effect(unit, fired)
            else:
                stop = self.table(unit, fired, denied)
                if stop is not None:
                    return stop
        if denied:
            return Decision(False, (), tuple(denied), None, self.version, runtime.frozen_trace(self.tr))
        return runtime.finish(self.plan.overrides, fired, self.version, self.tr)


def _leaf(c: ir.FactCondition) -> runtime.Leaf:
    return runtime.Leaf(c.fact.name, c.fact.dotted, c.words, c.fact.label)


def interpret(plan: ir.ActionPlan, version: str, data: dict[str, Any], tr: Trace) -> Decision:
    """Decide one request of ``plan``'s action by walking the IR (``data`` is the request input)."""
    return Interpreter(plan, version, tr).run(data)
