"""The one place that reads the compiled policy (``engine.ir``) into the verifier's model.

Input: one ``ir.SystemIR``. Output: the domain of every fact (:mod:`.domain`), conditions as
:mod:`.logic` conditions, and each row table as a :class:`~.tables.Table` of sets. Nothing else in
the verifier imports the IR.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import ir
from ..domains import _unit_conditions  # every condition of a rule or table, shared with what-if
from .domain import Domain, Finite, Interval, Opaque, Unsupported
from .graphs import Graph
from .logic import TRUE, And, Atom, Cond, Logic, Neg, Or, Unknown
from .rules import Emit, Rule
from .tables import Column, Row, Table


def domain_of(ftype: ir.FactType) -> Domain | None:
    """The verifier's domain for a fact type; ``None`` for lists, maps and objects."""
    if isinstance(ftype, ir.BooleanType):
        return Finite((False, True))
    if isinstance(ftype, ir.IntegerType):
        return Interval(ftype.min, ftype.max)
    if isinstance(ftype, ir.StringType):
        return Opaque(() if ftype.allow_empty else ("",))
    if isinstance(ftype, ir.EnumType):
        return Finite(ftype.values, dict(ftype.scale.rank) if ftype.scale is not None else None)
    return None


def test_set(domain: Domain, test: ir.Test) -> Any:
    """The set of values of ``domain`` that pass ``test``."""
    if isinstance(test, ir.Compare):
        if test.op == "is":
            return domain.literal(test.value)
        if test.op == "is_not":
            return domain.complement(domain.literal(test.value))
        return domain.compare(test.op, test.value)
    if isinstance(test, ir.Member):
        s = domain.members(test.values)
        return s if test.op == "in" else domain.complement(s)
    if isinstance(test, ir.Flag) and test.op == "entered":
        return domain.entered(test.value)
    if isinstance(test, ir.Both):
        out = domain.full
        for t in test.tests:
            out = domain.inter(out, test_set(domain, t))
        return out
    raise Unsupported(f"the verifier does not reason about `{test.op}`")


class Section:
    """One system of the compiled policy, in the verifier's terms."""

    def __init__(self, system: ir.SystemIR):
        self.ir = system
        self.domains: dict[str, Domain] = {}
        for fact in system.facts:
            dom = domain_of(fact.type) if fact.name != "action" else Finite(tuple(system.plans))
            if dom is not None:
                self.domains[fact.name] = dom

    def logic(self) -> Logic:
        return Logic(self.domains)

    def condition(self, cond: ir.Condition | None) -> Cond:
        if cond is None or isinstance(cond, ir.Always):
            return TRUE
        if isinstance(cond, ir.AllOf):
            return And(tuple(self.condition(c) for c in cond.parts))
        if isinstance(cond, ir.AnyOf):
            return Or(tuple(self.condition(c) for c in cond.parts))
        if isinstance(cond, ir.Not):
            return Neg(self.condition(cond.inner))
        if isinstance(cond, ir.Move):
            return self._move(cond)
        dom = self.domains.get(cond.fact.name)
        if dom is None:
            return Unknown(f"fact `{cond.fact.name}` is {cond.fact.type.describe()}")
        try:
            return Atom(cond.fact.name, test_set(dom, cond.test))
        except Unsupported as exc:
            return Unknown(str(exc))

    def _move(self, move: ir.Move) -> Cond:
        src, dst = self.domains.get(move.source.name), self.domains.get(move.target.name)
        if not isinstance(move.graph, ir.StageGraph) or src is None or dst is None:
            return Unknown("the stage graph is given by a fact")
        a, b = move.source.name, move.target.name
        edges: list[Cond] = [And((Atom(a, src.literal(stage)), Atom(b, dst.members(nexts))))
                 for stage, nexts in move.graph.next if nexts]
        if move.unlisted_allowed:
            edges.append(Atom(a, src.complement(src.members(s for s, _ in move.graph.next))))
        return Or(tuple(edges))

    def row_tables(self) -> Iterator[Table | tuple[str, ir.Location, str]]:
        """Each row table as a :class:`Table`, or ``(table id, location, reason)`` when a cell or
        its `when` is beyond what the verifier reasons about."""
        for table in self.ir.tables:
            if isinstance(table, ir.RowTable):
                try:
                    yield self._table(table)
                except _Cannot as exc:
                    yield (table.id, exc.location, exc.reason)

    def _table(self, table: ir.RowTable) -> Table:
        names, positions = self._columns(table)
        scope: list[dict[str, Any]] = [{}]
        if table.when is not None:
            logic = self.logic()
            scope = logic.under(self.condition(table.when))
            if not logic.exact:
                raise _Cannot(table.when.location, "its `when` has tests the verifier does not reason about")
            names += sorted({n for box in scope for n in box} - set(names))
        columns = [Column(name, self.domains[name], table.location) for name in names]
        memo: dict[tuple[int, int], Any] = {}
        rows = [Row(row.id, tuple(self._cell(row, k, positions, col, memo) for k, col in enumerate(columns)),
                    row.location) for row in table.rows]
        boxes = tuple(tuple(box.get(col.name, col.domain.full) for col in columns) for box in scope)
        no_match = table.no_match.outcome if table.no_match is not None else None
        return Table(table.id, table.hit, tuple(columns), tuple(rows), table.location, no_match, boxes)

    def _columns(self, table: ir.RowTable) -> tuple[list[str], list[int]]:
        """The columns the verifier reasons about, and their positions in the rows; a column whose
        fact has no domain is left out when it is `-` in every row (it constrains nothing)."""
        names, positions = [], []
        for k, fact in enumerate(table.columns):
            tested = [r.cells[k] for r in table.rows if isinstance(r.cells[k], ir.FactCondition)]
            if fact.name not in self.domains and tested:
                raise _Cannot(tested[0].location, f"fact `{fact.name}` is {fact.type.describe()}")
            if fact.name in self.domains:
                names.append(fact.name)
                positions.append(k)
        return names, positions

    @staticmethod
    def _cell(row: ir.Row, k: int, positions: list[int], col: Column, memo: dict[tuple[int, int], Any]) -> Any:
        cell = row.cells[positions[k]] if k < len(positions) else None
        if not isinstance(cell, ir.FactCondition):
            return col.domain.full
        key = (k, id(cell.test))         # compile shares the test of equal cells
        if key not in memo:
            try:
                memo[key] = test_set(col.domain, cell.test)
            except Unsupported as exc:
                raise _Cannot(cell.location, str(exc)) from exc
        return memo[key]

    # -- rules, graphs, declarations ----------------------------------------------------------------
    def rules(self) -> list[Rule]:
        """Every guard and effect rule once per action it serves (row tables are not among them)."""
        out = []
        for action, plan in self.ir.plans.items():
            act = Atom("action", self.domains["action"].literal(action))
            for unit in plan.units:
                if isinstance(unit, ir.Guard):
                    fires = And((act, self.condition(unit.when), self.condition(unit.deny)))
                    out.append(Rule(unit.id, "guard", action, fires, (), unit.location))
                elif isinstance(unit, ir.Effect):
                    when = And((act, self.condition(unit.when)))
                    out.append(Rule(unit.id, "effect", action, when, self._emits(unit, when), unit.location))
        return out

    def _emits(self, effect: ir.Effect, when: Cond) -> tuple[Emit, ...]:
        emits: list[Emit] = []
        before: list[Cond] = []
        for case in effect.cases:
            cond = self.condition(case.condition)
            here = And((when, cond, *(Neg(b) for b in before)))
            emits += [Emit(u.name, And((here, self.condition(u.when))), u.location) for u in case.obligations]
            before.append(cond)
        rest = And((when, *(Neg(b) for b in before)))
        emits += [Emit(u.name, And((rest, self.condition(u.when))), u.location) for u in effect.otherwise]
        return tuple(emits)

    def overrides(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """action -> obligation -> the obligations it overrides."""
        return {action: dict(plan.overrides) for action, plan in self.ir.plans.items()}

    def graphs(self) -> list[Graph]:
        """Each stage graph written inline in a `move`, with the rule and actions it serves."""
        found: dict[tuple[str, ir.Location], tuple[str, ir.Move, ir.StageGraph, list[str]]] = {}
        for action, plan in self.ir.plans.items():
            for unit in plan.units:
                for cond in _unit_conditions(unit):
                    for move in _moves(cond):
                        ends = {move.source.name, move.target.name}
                        if isinstance(move.graph, ir.StageGraph) and ends <= set(self.domains):
                            key = (unit.id, move.location)
                            found.setdefault(key, (unit.id, move, move.graph, []))[3].append(action)
        return [Graph(rid, tuple(actions), m.source.name, m.target.name, g.next, m.unlisted_allowed,
                      g.start, g.final, g.location)
                for rid, m, g, actions in found.values()]

    def declared_facts(self) -> list[ir.Fact]:
        return [f for f in self.ir.facts if f.name != "action"]

    def declared_obligations(self) -> tuple[ir.ObligationDecl, ...]:
        return self.ir.obligations

    def facts_read(self) -> set[str]:
        """Every fact an action reads (and so checks), or a rule, table, obligation parameter or
        `required_when` tests."""
        out: set[str] = set()
        for plan in self.ir.plans.values():
            for read in plan.reads:
                out.add(read.fact.name)
                if read.required_when is not None:
                    out |= _facts_of(read.required_when)
            for unit in plan.units:
                for cond in _unit_conditions(unit):
                    out |= _facts_of(cond)
                for use in _unit_uses(unit):
                    for p in use.params:
                        if isinstance(p, ir.FactParam):
                            out.add(p.fact.name)
                        elif isinstance(p, ir.FirstEnteredParam):
                            out.update(f.name for f in p.facts)
                if isinstance(unit, ir.RowTable):
                    out.update(f.name for f in unit.columns)
        return out

    def obligations_emitted(self) -> set[str]:
        return {use.name for plan in self.ir.plans.values() for unit in plan.units for use in _unit_uses(unit)}


def _unit_uses(unit: ir.Unit) -> Iterator[ir.ObligationUse]:
    if isinstance(unit, ir.Effect):
        for case in unit.cases:
            yield from case.obligations
        yield from unit.otherwise
    elif isinstance(unit, ir.RowTable):
        for row in unit.rows:
            yield from row.obligations
        if unit.no_match is not None:
            yield from unit.no_match.obligations


def _children(cond: ir.Condition) -> tuple[Any, ...]:
    if isinstance(cond, (ir.AllOf, ir.AnyOf)):
        return cond.parts
    if isinstance(cond, ir.Not):
        return (cond.inner,)
    return ()


def _moves(cond: ir.Condition) -> Iterator[ir.Move]:
    if isinstance(cond, ir.Move):
        yield cond
    for c in _children(cond):
        yield from _moves(c)


def _facts_of(cond: ir.Condition) -> set[str]:
    if isinstance(cond, ir.FactCondition):
        return {cond.fact.name} | _test_facts(cond.test)
    if isinstance(cond, ir.Move):
        graph = {cond.graph.name} if isinstance(cond.graph, ir.Fact) else set()
        return {cond.source.name, cond.target.name} | graph
    return set().union(*(_facts_of(c) for c in _children(cond)))


def _test_facts(test: ir.Test) -> set[str]:
    if isinstance(test, ir.SameAs):
        return {test.other.name}
    if isinstance(test, ir.Each):
        return _test_facts(test.test)
    if isinstance(test, ir.Both):
        return set().union(*(_test_facts(t) for t in test.tests))
    return set()


class _Cannot(Exception):
    def __init__(self, location: ir.Location, reason: str):
        super().__init__(reason)
        self.location, self.reason = location, reason
