"""The one place that reads the compiled policy (``engine.ir``) into the verifier's model.

Input: one ``ir.SystemIR``. Output: the domain of every fact (:mod:`.domain`), conditions as
:mod:`.logic` conditions, and each row table as a :class:`~.tables.Table` of sets. Nothing else in
the verifier imports the IR.
"""
from __future__ import annotations

from typing import Any, Iterator

from .. import ir
from .domain import Domain, Finite, Interval, Opaque, Unsupported
from .logic import TRUE, And, Atom, Cond, Logic, Neg, Or, Unknown
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
        edges = [And((Atom(a, src.literal(stage)), Atom(b, dst.members(nexts))))
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
        names, positions = [], []
        for k, fact in enumerate(table.columns):       # a column of `-` only constrains nothing
            tested = [r.cells[k] for r in table.rows if isinstance(r.cells[k], ir.FactCondition)]
            if fact.name not in self.domains and tested:
                raise _Cannot(tested[0].location, f"fact `{fact.name}` is {fact.type.describe()}")
            if fact.name in self.domains:
                names.append(fact.name)
                positions.append(k)
        scope: list[dict] = [{}]
        if table.when is not None:
            logic = self.logic()
            scope = logic.under(self.condition(table.when))
            if not logic.exact:
                raise _Cannot(table.when.location, "its `when` has tests the verifier does not reason about")
            names += sorted({n for box in scope for n in box} - set(names))
        columns = [Column(name, self.domains[name], table.location) for name in names]
        memo: dict[tuple, Any] = {}
        rows = []
        for row in table.rows:
            cells = []
            for k, col in enumerate(columns):
                cell = row.cells[positions[k]] if k < len(positions) else None
                if not isinstance(cell, ir.FactCondition):
                    cells.append(col.domain.full)
                    continue
                key = (k, id(cell.test))         # compile shares the test of equal cells
                if key not in memo:
                    try:
                        memo[key] = test_set(col.domain, cell.test)
                    except Unsupported as exc:
                        raise _Cannot(cell.location, str(exc))
                cells.append(memo[key])
            rows.append(Row(row.id, tuple(cells), row.location))
        boxes = tuple(tuple(box.get(col.name, col.domain.full) for col in columns) for box in scope)
        no_match = table.no_match.outcome if table.no_match is not None else None
        return Table(table.id, table.hit, tuple(columns), tuple(rows), table.location, no_match, boxes)


class _Cannot(Exception):
    def __init__(self, location: ir.Location, reason: str):
        super().__init__(reason)
        self.location, self.reason = location, reason
