"""Stage 4, decide: a compiled PolicySet answers ``decide(action, input)``.

The order is fixed by the decision contract: system, then action catalogue, then the facts the
action reads, then every rule of the action; guards can only deny, effects can only allow, and
deny overrides. Any error — including an exception raised while evaluating — is
``allow: false`` with an error code (fail closed); ``decide`` never raises.
"""
from __future__ import annotations

import json
from typing import Any, Callable, NamedTuple

from .conditions import ABSENT, Cond, MissingFact



class Obligation(NamedTuple):
    name: str
    params: dict

    def to_dict(self) -> dict:
        return {"name": self.name, "params": self.params}


class DecisionError(NamedTuple):
    code: str
    field: str | None
    message: str

    def to_dict(self) -> dict:
        return {"code": self.code, "field": self.field, "message": self.message}


class Decision(NamedTuple):
    """The answer to one request. Immutable."""

    allow: bool
    obligations: tuple
    rules: tuple
    error: DecisionError | None
    policy_version: str
    trace: tuple | None = None

    def to_dict(self) -> dict:
        out = {
            "allow": self.allow,
            "obligations": [{"name": o.name, "params": o.params} for o in self.obligations],
            "rules": list(self.rules),
            "error": self.error.to_dict() if self.error else None,
            "policy_version": self.policy_version,
        }
        if self.trace is not None:
            out["trace"] = list(self.trace)
        return out


class RuleInfo(NamedTuple):
    """What an auditor needs to know about one rule."""

    id: str
    kind: str            # guard | effect | table row
    says: str
    sources: tuple
    system: str
    actions: tuple
    file: str
    line: int
    definition: dict     # the rule as written (for rule-level diffs)


def freeze(value: Any) -> Any:
    """A hashable image of a JSON value, for de-duplicating obligations."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return (type(value).__name__, value)


class ObligationUse:
    """One obligation a rule asks for: static, or with parameters read from facts."""

    __slots__ = ("name", "static", "key", "params_fn", "when")

    def __init__(self, name: str, params: dict | None, params_fn: Callable | None, when: Cond | None):
        self.name = name
        self.when = when
        self.params_fn = params_fn
        self.static = Obligation(name, params) if params_fn is None else None
        self.key = (name, freeze(params)) if params_fn is None else None

    def make(self, vals: list) -> tuple[Obligation, tuple]:
        if self.static is not None:
            return self.static, self.key
        params = self.params_fn(vals)
        return Obligation(self.name, params), (self.name, freeze(params))


def _collect(uses: tuple, vals: list, tr) -> list:
    """The obligations of a matched table row (rows are evaluated by closures, see RowTable)."""
    out = []
    for use in uses:
        if use.when is None or use.when(vals, tr):
            out.append(use.make(vals))
    return out


class Guard:
    kind = "guard"
    __slots__ = ("id", "says", "when", "deny")

    def __init__(self, id: str, says: str, when: Cond | None, deny: Cond):
        self.id, self.says, self.when, self.deny = id, says, when, deny


class Effect:
    """An effect rule (or one cell of an action matrix): fires with obligations."""

    kind = "effect"
    __slots__ = ("id", "says", "when", "cases", "otherwise")

    def __init__(self, id: str, says: str, when: Cond | None, cases: tuple, otherwise: tuple):
        # cases: ((condition, uses), ...) tried in order; otherwise: uses when none holds
        self.id, self.says, self.when, self.cases, self.otherwise = id, says, when, cases, otherwise


class RowTable:
    """A decision table whose rows test facts; an index narrows the rows to try."""

    kind = "table"
    __slots__ = ("id", "says", "hit", "when", "rows", "index_slot", "buckets", "wildcards")

    def __init__(self, id, says, hit, when, rows, index_slot, buckets, wildcards):
        # rows: ((rule_id, says, tests, uses), ...), every test must hold;
        # buckets: value -> row indexes (sorted), wildcards: rows to try for any other value
        self.id, self.says, self.hit, self.when, self.rows = id, says, hit, when, rows
        self.index_slot, self.buckets, self.wildcards = index_slot, buckets, wildcards

    def candidates(self, vals):
        if self.index_slot is None:
            return range(len(self.rows))
        v = vals[self.index_slot]
        if v is ABSENT:
            return range(len(self.rows))
        try:
            return self.buckets.get(v, self.wildcards)
        except TypeError:  # unhashable value: try every row
            return range(len(self.rows))

    def run(self, vals, tr, denied, fired):
        sub = [] if tr is not None else None
        if self.when is not None and not self.when(vals, sub):
            if tr is not None:
                tr.append({"rule": self.id, "kind": "table", "says": self.says,
                           "outcome": "not applicable", "conditions": sub})
            return
        matched = []
        for i in self.candidates(vals):
            rid, says, tests, uses = self.rows[i]
            row_sub = [] if tr is not None else None
            for test in tests:
                if not test(vals, row_sub):
                    break
            else:
                matched.append(i)
                fired.append((rid, _collect(uses, vals, row_sub)))
                if tr is not None:
                    tr.append({"rule": rid, "kind": "table row", "table": self.id, "says": says,
                               "outcome": "fired", "conditions": row_sub})
                if self.hit == "first":
                    break
                continue
            if tr is not None:
                tr.append({"rule": rid, "kind": "table row", "table": self.id, "says": says,
                           "outcome": "not matched", "conditions": row_sub})
        if self.hit == "unique" and len(matched) > 1:
            ids = ", ".join(self.rows[i][0] for i in matched)
            raise EvaluationError(f"table `{self.id}` has hit policy unique but rows {ids} all match")


class EvaluationError(Exception):
    pass


class FactRead(NamedTuple):
    slot: int
    path: tuple
    dotted: str
    check: Callable
    mode: str                 # required | optional | conditional
    default: Any
    condition: Cond | None
    expected: str
    ftype: Any = None


class ActionPlan(NamedTuple):
    action: str
    size: int
    reads: tuple          # FactRead, in validation order
    units: tuple          # guards first, then effects and tables
    overrides: dict       # obligation name -> names it overrides (only those that override)
    fn: Callable | None = None   # the generated decide function (codegen.generate)


def _err(code: str, field: str | None, message: str, version: str, trace=None) -> Decision:
    return Decision(False, (), (), DecisionError(code, field, message), version, trace)


class PolicySet:
    """An immutable, compiled set of policies: compile once, decide many times."""

    def __init__(self, version: str, systems: dict, rules: tuple, catalogue: dict):
        self.version = version
        self._systems = systems              # system -> {action: ActionPlan}
        self.rules = rules                   # RuleInfo, in file order
        self.catalogue = catalogue           # system -> sorted actions

    def __repr__(self) -> str:
        return f"<PolicySet {self.version[:19]} {len(self.rules)} rules>"

    def rule(self, rule_id: str) -> RuleInfo | None:
        for r in self.rules:
            if r.id == rule_id:
                return r
        return None

    def decide(self, action: Any, input: Any, *, explain: bool = False) -> Decision:
        """Decide one request. Never raises: every failure is a denial with an error."""
        try:
            return self._decide(action, input, [] if explain else None)
        except Exception as exc:  # fail closed, and say so
            return _err("evaluation_error", None, f"evaluation failed: {type(exc).__name__}: {exc}",
                        self.version, () if explain else None)

    def _decide(self, action, input, tr) -> Decision:
        version = self.version
        if type(input) is not dict:
            return _err("invalid_fact", None, "the input must be an object", version, _t(tr))
        context = input.get("context")
        if context is None:
            return _err("missing_fact", "context.system", "`context.system` is required", version, _t(tr))
        if type(context) is not dict:
            return _err("invalid_fact", "context", "`context` must be an object", version, _t(tr))
        system = context.get("system")
        if system is None:
            return _err("missing_fact", "context.system", "`context.system` is required", version, _t(tr))
        if type(system) is not str:
            return _err("invalid_fact", "context.system", "`context.system` must be text", version, _t(tr))
        plans = self._systems.get(system)
        if plans is None:
            return _err("unknown_system", "context.system", f"unknown system `{system}`", version, _t(tr))
        plan = plans.get(action) if type(action) is str else None
        if plan is None:
            return _err("unknown_action", None, f"action `{action}` is not in the catalogue of `{system}`",
                        version, _t(tr))

        try:
            return plan[5](input, tr)  # ActionPlan.fn
        except MissingFact as missing:
            return _err("missing_fact", missing.path, f"`{missing.path}` is required", version, _t(tr))


def _t(tr):
    return tuple(tr) if tr is not None else None


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
