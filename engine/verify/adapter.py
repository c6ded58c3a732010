"""The one place that reads a compiled system section into the verifier's model.

Input: one system section of a rule file that compiled without errors (its document and the
source map that says where each value was written). Output: the domain of every fact and each
row table as a :class:`~.tables.Table` of sets. Nothing else in the verifier looks at rule-file
documents.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import Location
from ..load import SourceMap
from .domain import Domain, Finite, Interval, Opaque, Unsupported, leaf_set
from .logic import Logic
from .tables import Column, Row, Table


def domain_of(spec: dict, scales: dict) -> Domain | None:
    """The verifier's domain for a declared fact type; ``None`` for lists, maps and objects."""
    kind = spec["type"]
    if kind == "boolean":
        return Finite((False, True))
    if kind == "integer":
        return Interval(spec.get("min"), spec.get("max"))
    if kind == "string":
        return Opaque(() if spec.get("allow_empty") else ("",))
    if kind == "enum" and "scale" in spec:
        rank: dict = {}
        for r, step in enumerate(scales.get(spec["scale"]) or ()):
            for value in step if isinstance(step, list) else [step]:
                rank.setdefault(value, r)
        return Finite(tuple(rank), rank)
    if kind == "enum":
        return Finite(tuple(spec["values"]))
    return None


@dataclass
class Section:
    """One system section of a rule file, with its facts' domains."""

    doc: dict
    prefix: tuple
    source: SourceMap

    def __post_init__(self):
        scales = self.doc.get("scales") or {}
        self.domains: dict[str, Domain | None] = {
            name: domain_of(spec, scales) for name, spec in self.doc["facts"].items()}

    @property
    def system(self) -> str:
        return self.doc["system"]

    def loc(self, *path, key: bool = False) -> Location:
        return self.source.at(self.prefix + tuple(path), key=key)

    def logic(self, actions=()) -> Logic:
        """Conditions of this section; ``actions`` is the domain of the built-in fact `action`."""
        domains = dict(self.domains)
        domains["action"] = Finite(tuple(actions), None) if actions else None
        return Logic(domains)

    def row_tables(self):
        """Each row table as a :class:`Table`, or ``(table id, location, reason)`` when a cell is
        beyond what the verifier reasons about."""
        for r, rule in enumerate(self.doc["rules"]):
            if rule.get("kind") == "table" and rule.get("layout") == "rows":
                try:
                    yield self._table(rule, ("rules", r))
                except _Cannot as exc:
                    yield (rule["id"], exc.location, exc.reason)

    def _table(self, rule: dict, path: tuple) -> Table:
        header = rule["header"]
        names = list(header[1:-1])
        scope = [{}]
        if rule.get("when") is not None:
            logic = self.logic()
            scope = logic.under(rule["when"])
            if not logic.exact:
                raise _Cannot(self.loc(*path, "when"), "its `when` has tests the verifier does not reason about")
            names += sorted({n for box in scope for n in box} - set(names))
        columns = []
        for c, name in enumerate(names):
            dom = self.domains.get(name)
            where = self.loc(*path, "header", c + 1) if c + 1 < len(header) - 1 else self.loc(*path, "when")
            if dom is None:
                raise _Cannot(where, f"fact `{name}` is a list, a mapping or an object")
            columns.append(Column(name, dom, where))
        memo: dict[tuple, Any] = {}
        rows = []
        width = len(header) - 2
        for i, row in enumerate(rule["body"]):
            cells = []
            for c, col in enumerate(columns):
                if c >= width:
                    cells.append(col.domain.full)
                    continue
                cell = row[c + 1]
                key = (c, json.dumps(cell, sort_keys=True, default=str))
                if key not in memo:
                    try:
                        memo[key] = leaf_set(col.domain, cell)
                    except Unsupported as exc:
                        raise _Cannot(self.loc(*path, "body", i, c + 1), str(exc))
                cells.append(memo[key])
            rows.append(Row(str(row[0]), tuple(cells), self.loc(*path, "body", i)))
        boxes = tuple(tuple(box.get(col.name, col.domain.full) for col in columns) for box in scope)
        return Table(rule["id"], rule["hit"], tuple(columns), tuple(rows), self.loc(*path, "id"),
                     rule.get("no_match"), boxes)


class _Cannot(Exception):
    def __init__(self, location: Location, reason: str):
        super().__init__(reason)
        self.location, self.reason = location, reason
