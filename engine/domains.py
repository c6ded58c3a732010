"""The declared domain of every fact an action reads: the values a what-if or an exhaustive
comparison tries.

This module is the one adapter between the evidence modules (``whatif``, ``impact``,
``semdiff``) and the compiled plans: it reads a plan's fact reads and the condition trees of its
rules, and nothing else does.

A domain is *finite* when a small set of values stands for every value the rules can tell apart:
booleans and enums (scales included) are finite as declared; an integer is cut at the literals
the rules compare it with (each literal, one below and one above, and the declared bounds), so
one value of each interval stands for the whole interval; text compared only with literals is
the literals plus one value none of them equals. Lists, maps and text compared with other facts
have no finite domain.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import ir

#: a text value no rule names; stands for "any other text" in exhaustive comparisons
OTHER_TEXT = "(any other value)"


@dataclass(frozen=True)
class FactDomain:
    """One fact an action reads, with the values worth trying."""

    name: str
    path: tuple[str, ...]
    says: str
    kind: str
    mode: str                 # required | optional | conditional
    default: Any
    values: tuple[Any, ...]   # candidate values (every equivalence class when ``finite``)
    finite: bool

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def action_plan(policy_set: Any, system: str, action: str) -> ir.ActionPlan | None:
    plan: ir.ActionPlan | None = policy_set.ir.plan(system, action)
    return plan


def actions(policy_set: Any) -> Iterator[tuple[str, str]]:
    """Every ``(system, action)`` of a policy set, sorted."""
    for system in sorted(policy_set.catalogue):
        for action in policy_set.catalogue[system]:
            yield system, action


def _use_conditions(uses: tuple[ir.ObligationUse, ...]) -> Iterator[ir.Condition]:
    yield from (u.when for u in uses if u.when is not None)


def _unit_conditions(unit: ir.Unit) -> Iterator[ir.Condition]:
    if unit.when is not None:
        yield unit.when
    if isinstance(unit, ir.Guard):
        yield unit.deny
    elif isinstance(unit, ir.Effect):
        for case in unit.cases:
            yield case.condition
            yield from _use_conditions(case.obligations)
        yield from _use_conditions(unit.otherwise)
    else:
        for row in unit.rows:
            yield from (c for c in row.cells if isinstance(c, ir.FactCondition))
            yield from _use_conditions(row.obligations)


def _walk(cond: ir.Condition, seen: dict[str, ir.Fact], literals: dict[str, set[Any]], opaque: set[str]) -> None:
    """Record every fact a condition tests and the literals it compares the fact with."""
    if isinstance(cond, (ir.AllOf, ir.AnyOf)):
        for sub in cond.parts:
            _walk(sub, seen, literals, opaque)
    elif isinstance(cond, ir.Not):
        _walk(cond.inner, seen, literals, opaque)
    elif isinstance(cond, ir.FactCondition):
        seen.setdefault(cond.fact.dotted, cond.fact)
        _test_literals(cond.fact, cond.test, literals.setdefault(cond.fact.dotted, set()), opaque)
    elif isinstance(cond, ir.Move):
        src, dst = cond.source, cond.target
        for f in (src, dst):
            seen.setdefault(f.dotted, f)
        if isinstance(cond.graph, ir.Fact):
            opaque.update((src.dotted, dst.dotted))
        else:
            for stage, nexts in cond.graph.next:
                literals.setdefault(src.dotted, set()).add(stage)
                literals.setdefault(dst.dotted, set()).update(nexts)
                literals.setdefault(dst.dotted, set()).add(stage)
                literals.setdefault(src.dotted, set()).update(nexts)


def _test_literals(fact: ir.Fact, test: ir.Test, out: set[Any], opaque: set[str]) -> None:
    if isinstance(test, ir.Compare):
        if test.scale is None:
            out.add(test.value)
    elif isinstance(test, ir.Member):
        out.update(test.values)
    elif isinstance(test, ir.Both):
        for sub in test.tests:
            _test_literals(fact, sub, out, opaque)
    elif not (isinstance(test, ir.Flag) and test.op == "entered"):
        opaque.add(fact.dotted)


def _integers(fact_type: ir.IntegerType, literals: set[Any], extra: tuple[Any, ...]) -> tuple[int, ...]:
    """Each literal, one below and one above, and the bounds: one value per interval the rules tell apart."""
    lo, hi = fact_type.min, fact_type.max
    points = {p for n in literals if type(n) is int for p in (n - 1, n, n + 1)}
    points.update(b for b in (lo, hi) if b is not None)
    if not points:
        points = {lo if lo is not None else 0}
    points.update(x for x in extra if type(x) is int)
    return tuple(sorted(p for p in points if (lo is None or p >= lo) and (hi is None or p <= hi)))


def _values(fact_type: Any, literals: set[Any], default: Any, mode: str,
            opaque: bool) -> tuple[tuple[Any, ...], bool]:
    extra = (default,) if mode == "optional" and default is not None else ()
    if isinstance(fact_type, ir.BooleanType):
        return (False, True), True
    if isinstance(fact_type, ir.EnumType):
        return tuple(fact_type.values), True
    if isinstance(fact_type, ir.IntegerType):
        return _integers(fact_type, literals, extra), not opaque
    if isinstance(fact_type, ir.StringType):
        texts = sorted({v for v in literals if type(v) is str} | {x for x in extra if type(x) is str})
        return tuple(t for t in texts if t or fact_type.allow_empty) + (OTHER_TEXT,), not opaque
    return (), False


def fact_domains(policy_set: Any, system: str, action: str) -> tuple[FactDomain, ...] | None:
    """The facts ``action`` of ``system`` reads, in the order the action validates them;
    ``None`` when the system or action is unknown."""
    plan = action_plan(policy_set, system, action)
    if plan is None:
        return None
    seen: dict[str, Any] = {}
    literals: dict[str, set[Any]] = {}
    opaque: set[str] = set()
    for unit in plan.units:
        for cond in _unit_conditions(unit):
            _walk(cond, seen, literals, opaque)
    for read in plan.reads:
        if read.required_when is not None:
            _walk(read.required_when, seen, literals, opaque)
    out = []
    for read in plan.reads:
        dotted = read.fact.dotted
        fact = seen.get(dotted)
        name = fact.name if fact is not None else read.fact.path[-1]
        says = (fact.says if fact is not None else "") or name
        values, finite = _values(read.fact.type, literals.get(dotted, set()), read.default, read.mode,
                                 dotted in opaque)
        out.append(FactDomain(name, tuple(read.fact.path), says, read.fact.type.kind, read.mode, read.default,
                              values, finite))
    return tuple(out)


def read_value(data: Any, path: tuple[str, ...], missing: Any = None) -> Any:
    """The value at ``path`` in a request input, or ``missing``."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return missing
        data = data[key]
    return data


def with_value(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``value`` at ``path``; only the mappings along the path are copied."""
    out = dict(data)
    node = out
    for key in path[:-1]:
        child = node.get(key)
        child = dict(child) if isinstance(child, dict) else {}
        node[key] = child
        node = child
    node[path[-1]] = value
    return out
