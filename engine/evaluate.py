"""Stage 4, decide: a compiled PolicySet answers ``decide(action, input)``.

The order is fixed by the decision contract: system, then action catalogue, then the facts the
action reads, then every rule of the action; guards can only deny, effects can only allow, and
deny overrides. Any error — including an exception raised while evaluating — is
``allow: false`` with an error code (fail closed); ``decide`` never raises.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple

from .decision import Decision, DecisionError, DecideFn
from .runtime import MissingFact

if TYPE_CHECKING:
    from .ir import PolicyIR

__all__ = ["Decision", "DecisionError", "PolicySet", "RuleInfo", "canonical_json"]


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


def _err(code: str, field: str | None, message: str, version: str, trace=None) -> Decision:
    return Decision(False, (), (), DecisionError(code, field, message), version, trace)


class PolicySet:
    """An immutable, compiled set of policies: compile once, decide many times."""

    def __init__(self, policy_ir: PolicyIR, functions: Mapping[str, Mapping[str, DecideFn]], rules: tuple[RuleInfo, ...]):
        self.ir = policy_ir                  # the typed IR every decision was generated from
        self.version = policy_ir.version
        self._systems = functions            # system -> {action: generated decide function}
        self.rules = rules                   # RuleInfo, in file order
        self.catalogue = {name: tuple(sorted(s.plans)) for name, s in policy_ir.systems.items()}

    def function(self, system: str, action: str) -> DecideFn | None:
        """The generated decide function of an action (see ``codegen.source_of``)."""
        return self._systems.get(system, {}).get(action)

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
        fn = plans.get(action) if type(action) is str else None
        if fn is None:
            return _err("unknown_action", None, f"action `{action}` is not in the catalogue of `{system}`",
                        version, _t(tr))
        try:
            return fn(input, tr)
        except MissingFact as missing:
            return _err("missing_fact", missing.path, f"`{missing.path}` is required", version, _t(tr))


def _t(tr):
    return tuple(tr) if tr is not None else None


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
