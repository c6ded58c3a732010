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

from dataclasses import dataclass
from typing import Any, Iterator

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
    values: tuple             # candidate values (every equivalence class when ``finite``)
    finite: bool

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def action_plan(policy_set: Any, system: str, action: str) -> Any | None:
    return policy_set._systems.get(system, {}).get(action)


def actions(policy_set: Any) -> Iterator[tuple[str, str]]:
    """Every ``(system, action)`` of a policy set, sorted."""
    for system in sorted(policy_set.catalogue):
        for action in policy_set.catalogue[system]:
            yield system, action


def _unit_conditions(unit: Any) -> Iterator[Any]:
    for cond in (getattr(unit, "when", None), getattr(unit, "deny", None)):
        if cond is not None:
            yield cond
    for cond, uses in getattr(unit, "cases", ()):
        yield cond
        yield from (u.when for u in uses if u.when is not None)
    for use in getattr(unit, "otherwise", ()):
        if use.when is not None:
            yield use.when
    for _rid, _says, tests, uses in getattr(unit, "rows", ()):
        yield from tests
        yield from (u.when for u in uses if u.when is not None)


def _walk(ir: tuple, seen: dict, literals: dict, opaque: set) -> None:
    """Record every fact a condition tree tests and the literals it compares the fact with."""
    tag = ir[0]
    if tag in ("all", "any"):
        for sub in ir[1]:
            _walk(sub, seen, literals, opaque)
    elif tag == "not":
        _walk(ir[1], seen, literals, opaque)
    elif tag == "leaf":
        fact, test = ir[1], ir[2]
        seen.setdefault(fact.dotted, fact)
        _test_literals(fact, test, literals.setdefault(fact.dotted, set()), opaque)
    elif tag == "move":
        src, dst, gfact, inline = ir[1], ir[2], ir[3], ir[4]
        for f in (src, dst):
            seen.setdefault(f.dotted, f)
        if gfact is not None or inline is None:
            opaque.update((src.dotted, dst.dotted))
        else:
            for stage, nexts in inline.items():
                literals.setdefault(src.dotted, set()).add(stage)
                literals.setdefault(dst.dotted, set()).update(nexts)
                literals.setdefault(dst.dotted, set()).add(stage)
                literals.setdefault(src.dotted, set()).update(nexts)


def _test_literals(fact: Any, test: tuple, out: set, opaque: set) -> None:
    tag = test[0]
    if tag in ("eq", "ne"):
        out.add(test[1])
    elif tag in ("in", "nin"):
        out.update(test[1])
    elif tag == "cmp":
        out.add(test[2])
    elif tag == "and":
        for sub in test[1]:
            _test_literals(fact, sub, out, opaque)
    elif tag in ("eqfact", "infact", "some", "every", "contains", "lacks", "empty"):
        opaque.add(fact.dotted)


def _values(fact_type: Any, literals: set, default: Any, mode: str, opaque: bool) -> tuple[tuple, bool]:
    kind = fact_type.kind
    extra = (default,) if mode == "optional" and default is not None else ()
    if kind == "boolean":
        return (False, True), True
    if kind == "enum":
        return tuple(fact_type.values), True
    if kind == "integer":
        lo, hi = fact_type.min, fact_type.max
        points = {p for n in literals if type(n) is int for p in (n - 1, n, n + 1)}
        points.update(b for b in (lo, hi) if b is not None)
        if not points:
            points = {lo if lo is not None else 0}
        points.update(x for x in extra if type(x) is int)
        inside = sorted(p for p in points if (lo is None or p >= lo) and (hi is None or p <= hi))
        return tuple(inside), not opaque
    if kind == "string":
        texts = sorted({v for v in literals if type(v) is str} | {x for x in extra if type(x) is str})
        if not fact_type.allow_empty:
            texts = [t for t in texts if t]
        return tuple(texts) + (OTHER_TEXT,), not opaque
    return (), False


def fact_domains(policy_set: Any, system: str, action: str) -> tuple[FactDomain, ...] | None:
    """The facts ``action`` of ``system`` reads, in the order the action validates them;
    ``None`` when the system or action is unknown."""
    plan = action_plan(policy_set, system, action)
    if plan is None:
        return None
    seen: dict[str, Any] = {}
    literals: dict[str, set] = {}
    opaque: set[str] = set()
    for unit in plan.units:
        for cond in _unit_conditions(unit):
            _walk(cond.ir, seen, literals, opaque)
    for read in plan.reads:
        if read.condition is not None:
            _walk(read.condition.ir, seen, literals, opaque)
    out = []
    for read in plan.reads:
        fact = seen.get(read.dotted)
        name = fact.name if fact is not None else read.path[-1]
        says = (fact.says if fact is not None else "") or name
        values, finite = _values(read.ftype, literals.get(read.dotted, set()), read.default, read.mode,
                                 read.dotted in opaque)
        out.append(FactDomain(name, tuple(read.path), says, read.ftype.kind, read.mode, read.default,
                              values, finite))
    return tuple(out)


def read_value(data: Any, path: tuple[str, ...], missing: Any = None) -> Any:
    """The value at ``path`` in a request input, or ``missing``."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return missing
        data = data[key]
    return data


def with_value(data: dict, path: tuple[str, ...], value: Any) -> dict:
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
