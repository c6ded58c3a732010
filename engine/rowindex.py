"""The index of a row table: which rows a request can match, found without testing the others.

Built once from the IR: a small decision tree over the table's columns. An *exact* node splits on a
column whose cells are all literals, ``in:`` lists or ``-`` (one dict lookup: the rows listing the
value, plus the ``-`` rows); a *band* node splits on an integer column whose cells are all bounds
(``at_least`` / ``above`` / ``at_most`` / ``below``, alone or together, or one number) or ``-`` (one ``bisect``:
the rows whose band holds the value). Each node takes the column that leaves the fewest rows in its
largest branch; a node with nothing left to split is a leaf: the rows that can still match, in
table order, each with the cells its path has not already decided (the *rest*).

A leaf keeps table order, so first-hit, unique and collect read the same rows a full scan would
find matching. A request whose value does not fit a node (not hashable, not a whole number), or
an explained decision, uses ``scan`` instead: one column's value narrows the rows, whose every cell
is then tested (and recorded in the trace).
"""
from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from typing import Any, NamedTuple

from . import ir

#: how many (row, rest) entries an index may hold in all, per row of the table plus a constant:
#: rows with `-` are repeated under every value of a split column; past this the node is a leaf
ENTRIES_PER_ROW = 6
ENTRIES_EXTRA = 4096

Entry = tuple[int, tuple[Any, ...]]          # row number, the cells still to test (from ``cell_of``)
CellOf = Callable[[int, int], Any]           # (row number, column number) -> that cell as the caller tests it


class Exact(NamedTuple):
    slot: int
    branches: Mapping[Any, Node]
    other: Node                # a value no cell lists: the rows with `-`


class Band(NamedTuple):
    slot: int
    bounds: tuple[int, ...]      # sorted; branch i holds bounds[i-1] <= value < bounds[i]
    branches: tuple[Node, ...]


Node = Exact | Band | tuple[Entry, ...]


def _exact_values(cell: ir.RowCell) -> tuple[Any, ...] | None:
    """The values an exact cell matches (``()`` for `-`), or None when it is not exact."""
    if isinstance(cell, ir.Wildcard):
        return ()
    test = cell.test
    if isinstance(test, ir.Compare) and test.op == "is":
        values: tuple[Any, ...] = (test.value,)
    elif isinstance(test, ir.Member) and test.op == "in":
        values = test.values
    else:
        return None
    try:
        hash(values)
    except TypeError:
        return None
    return values


_LOW = {"at_least": 0, "above": 1}
_HIGH = {"below": 0, "at_most": 1}


def _band(cell: ir.RowCell) -> tuple[float, float] | None:
    """The half-open band ``[low, high)`` of whole numbers an integer cell matches, or None."""
    if isinstance(cell, ir.Wildcard):
        return (-math.inf, math.inf)
    tests = cell.test.tests if isinstance(cell.test, ir.Both) else (cell.test,)
    low, high = -math.inf, math.inf
    for t in tests:
        if not isinstance(t, ir.Compare) or t.scale is not None or type(t.value) is not int:
            return None
        if t.op == "is":
            low, high = max(low, t.value), min(high, t.value + 1)
        elif t.op in _LOW:
            low = max(low, t.value + _LOW[t.op])
        elif t.op in _HIGH:
            high = min(high, t.value + _HIGH[t.op])
        else:
            return None
    return (low, high)


class _Builder:
    def __init__(self, table: ir.RowTable, cell_of: CellOf):
        self.cell_of = cell_of
        self.rests: dict[tuple[Any, ...], tuple[Any, ...]] = {}     # equal rests shared
        self.cells = [row.cells for row in table.rows]
        self.slots = [fact.slot for fact in table.columns]
        self.exact = [fact.type.kind in ir.SCALAR_KINDS for fact in table.columns]
        self.integer = [isinstance(fact.type, ir.IntegerType) for fact in table.columns]
        self.budget = ENTRIES_PER_ROW * len(table.rows) + ENTRIES_EXTRA

    def leaf(self, rows: Sequence[int], open_columns: frozenset[int]) -> tuple[Entry, ...]:
        self.budget -= len(rows)
        columns = sorted(open_columns)
        out = []
        for r in rows:
            rest = tuple(self.cell_of(r, c) for c in columns if not isinstance(self.cells[r][c], ir.Wildcard))
            out.append((r, self.rests.setdefault(rest, rest)))
        return tuple(out)

    def node(self, rows: tuple[int, ...], open_columns: frozenset[int]) -> Node:
        best: tuple[int, int, int, Any] | None = None    # (largest branch, total, column, split)
        if len(rows) > 1:
            for c in open_columns:
                split = self.split(rows, c)
                if split is None:
                    continue
                sizes = [len(b) for b in split[1]]
                largest, total = max(sizes), sum(sizes)
                if largest < len(rows) and total <= self.budget and (best is None or (largest, total) < best[:2]):
                    best = (largest, total, c, split)
        if best is None:
            return self.leaf(rows, open_columns)
        _, _, c, (keys, branches) = best
        rest = open_columns - {c}
        children = [self.node(b, rest) for b in branches]
        if keys is None:      # an exact split: the last branch is `other`
            return Exact(self.slots[c], dict(zip(keys_of(rows, c, self.cells), children[:-1], strict=True)),
                         children[-1])
        return Band(self.slots[c], keys, tuple(children))

    def split(self, rows: tuple[int, ...], c: int) -> tuple[tuple[int, ...] | None, list[tuple[int, ...]]] | None:
        """How column ``c`` splits ``rows``: (None, one branch per value then `other`) for an exact
        column, (bounds, one branch per band) for a band column; None when it cannot."""
        if self.exact[c]:
            made = self.split_exact(rows, c)
            if made is not None:
                return None, made
        if self.integer[c]:
            return self.split_band(rows, c)
        return None

    def split_exact(self, rows: tuple[int, ...], c: int) -> list[tuple[int, ...]] | None:
        cells = [_exact_values(self.cells[r][c]) for r in rows]
        if any(v is None for v in cells):
            return None
        values = keys_of(rows, c, self.cells)
        if not values:
            return None
        pairs = list(zip(rows, cells, strict=True))
        return [tuple(r for r, v in pairs if not v or k in v) for k in values] + [tuple(r for r, v in pairs if not v)]

    def split_band(self, rows: tuple[int, ...], c: int) -> tuple[tuple[int, ...], list[tuple[int, ...]]] | None:
        found = [_band(self.cells[r][c]) for r in rows]
        bands = [b for b in found if b is not None]
        if len(bands) < len(found):
            return None
        bounds = sorted({e for b in bands for e in b if not math.isinf(e)})
        if not bounds:
            return None
        edges = [-math.inf, *bounds, math.inf]
        pairs = list(zip(rows, bands, strict=True))
        return tuple(int(b) for b in bounds), [tuple(r for r, b in pairs if b[0] <= lo and hi <= b[1])
                                               for lo, hi in pairwise(edges)]


def keys_of(rows: tuple[int, ...], c: int, cells: list[tuple[ir.RowCell, ...]]) -> list[Any]:
    """The distinct values the exact cells of column ``c`` list, in first-written order."""
    seen: dict[Any, None] = {}
    for r in rows:
        for v in _exact_values(cells[r][c]) or ():
            seen.setdefault(v, None)
    return list(seen)


def build(table: ir.RowTable, cell_of: CellOf) -> Node:
    """The index of a row table (see the module's docstring); ``cell_of`` gives the test of one cell
    as the entries carry it."""
    builder = _Builder(table, cell_of)
    return builder.node(tuple(range(len(table.rows))), frozenset(range(len(table.columns))))


def lookup(node: Node, vals: list[Any]) -> tuple[Entry, ...] | None:
    """The entries a request can match (test only their rest), or None when a value does not fit
    a node (not hashable, not a whole number)."""
    while True:
        if type(node) is Exact:
            try:
                node = node.branches.get(vals[node.slot], node.other)
            except TypeError:
                return None
        elif type(node) is Band:
            v = vals[node.slot]
            if type(v) is not int:
                return None
            node = node.branches[bisect_right(node.bounds, v)]
        else:
            return node  # type: ignore[return-value]


Scan = tuple[int | None, Mapping[Any, tuple[int, ...]], tuple[int, ...]]


def _best_column(table: ir.RowTable) -> int | None:
    """The scalar column whose cells are all literals, `in:` lists or `-`, with the most distinct values."""
    best: tuple[int, int] | None = None
    for c, fact in enumerate(table.columns):
        if fact.type.kind not in ir.SCALAR_KINDS:
            continue
        column = [_exact_values(row.cells[c]) for row in table.rows]
        if any(k is None for k in column):
            continue
        distinct = len({v for k in column for v in k or ()})
        if distinct > 1 and (best is None or distinct > best[1]):
            best = (c, distinct)
    return None if best is None else best[0]


def scan(table: ir.RowTable) -> Scan:
    """What an explained decision tries: the rows listing the request's value in the scalar column
    whose literal cells best split the rows, with the `-` rows of that column (value -> rows)."""
    c = _best_column(table)
    if c is None:
        return None, {}, ()
    cells = [_exact_values(row.cells[c]) for row in table.rows]
    wildcards = tuple(i for i, k in enumerate(cells) if not k)
    lists: dict[Any, list[int]] = {}
    for i, k in enumerate(cells):
        for v in k or ():
            lists.setdefault(v, []).append(i)
    buckets = {v: tuple(sorted(set(rows) | set(wildcards))) for v, rows in lists.items()}
    return table.columns[c].slot, buckets, wildcards
