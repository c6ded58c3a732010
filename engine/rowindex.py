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
import operator
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate, chain, compress
from operator import itemgetter
from typing import Any, NamedTuple

from . import ir

#: how many (row, rest) entries an index may hold in all, per row of the table plus a constant:
#: rows with `-` are repeated under every value of a split column; past this the node is a leaf
ENTRIES_PER_ROW = 6
ENTRIES_EXTRA = 4096
#: a node of this many rows or fewer is a leaf: testing their rest costs less than another level
LEAF_ROWS = 3

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
        return tuple(dict.fromkeys(values))     # each value once
    except TypeError:
        return None


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


def _columns(table: ir.RowTable) -> list[tuple[ir.RowCell, ...]]:
    """The cells of each column, row by row."""
    return list(zip(*[row.cells for row in table.rows], strict=True)) or [() for _ in table.columns]


def _per_row(cells: tuple[ir.RowCell, ...], read: Callable[[ir.RowCell], Any]) -> list[Any]:
    """``read`` of each cell of a column, once per distinct cell (compile shares equal cells)."""
    ids = list(map(id, cells))
    made = {i: read(cell) for i, cell in dict(zip(ids, cells, strict=True)).items()}
    return list(map(made.__getitem__, ids))


Split = tuple[int, int, Callable[[], Node]]       # largest branch, entries in all, the node it makes
#: a node made: it, the row numbers it was made of, the budget it used, its tightest split's budget
#: to spare, and the budget when it was made
Shape = tuple[Node, list[int], int, float, int]
#: nodes of up to this many rows are looked up by their shape (``_Builder.node``)
SHAPE_ROWS = 64


def _renumbered(node: Node, numbers: dict[int, int]) -> Node:
    """``node`` with its row numbers replaced (its nodes made without their Python-level constructors:
    a large table copies thousands)."""
    if type(node) is Exact:
        return tuple.__new__(Exact, (node.slot, {v: _renumbered(b, numbers) for v, b in node.branches.items()},
                                     _renumbered(node.other, numbers)))
    if type(node) is Band:
        return tuple.__new__(Band, (node.slot, node.bounds, tuple([_renumbered(b, numbers) for b in node.branches])))
    return tuple([(numbers[r], rest) for r, rest in node])


Exacts = list[list[tuple[Any, ...] | None] | None]   # per column (None: not scalar), per row: _exact_values


def _exacts(table: ir.RowTable, columns: list[tuple[ir.RowCell, ...]]) -> Exacts:
    return [_per_row(columns[c], _exact_values) if fact.type.kind in ir.SCALAR_KINDS else None
            for c, fact in enumerate(table.columns)]


class _Builder:
    def __init__(self, table: ir.RowTable, cell_of: CellOf, columns: list[tuple[ir.RowCell, ...]],
                 exacts: Exacts):
        self.cell_of = cell_of
        self.made: dict[int, Any] = {}          # id of a cell -> cell_of of it (compile shares equal cells)
        self.rests: dict[tuple[int, ...], tuple[Any, ...]] = {}     # equal rests shared, by their cells' ids
        self.cells = [row.cells for row in table.rows]
        self.slots = [fact.slot for fact in table.columns]
        # per column, per row: the values of an exact cell, the band of an integer cell (None: not one)
        self.values = exacts
        self.bands = [_per_row(columns[c], _band) if isinstance(fact.type, ir.IntegerType) else None
                      for c, fact in enumerate(table.columns)]
        self.budget = ENTRIES_PER_ROW * len(table.rows) + ENTRIES_EXTRA
        self.bounds: dict[tuple[int, ...], tuple[int, ...]] = {}     # equal bounds shared
        self.shapes: dict[tuple[Any, ...], Shape] = {}   # rows' open cells (by id) -> the node they made
        self.slack = math.inf          # the least budget to spare of a split admitted while making a node
        self.getters: dict[frozenset[int], Callable[[tuple[ir.RowCell, ...]], Any]] = {}   # open columns' cells

    def leaf(self, rows: Sequence[int], open_columns: frozenset[int]) -> tuple[Entry, ...]:
        self.budget -= len(rows)
        columns = sorted(open_columns)
        made, rests, every = self.made, self.rests, self.cells
        out = []
        for r in rows:
            cells = every[r]
            key = tuple([id(cells[c]) for c in columns if not isinstance(cells[c], ir.Wildcard)])
            rest = rests.get(key)
            if rest is None:
                rest = rests[key] = tuple([made[id(cells[c])] if id(cells[c]) in made else self.lowered(r, c)
                                           for c in columns if not isinstance(cells[c], ir.Wildcard)])
            out.append((r, rest))
        return tuple(out)

    def lowered(self, r: int, c: int) -> Any:
        """``cell_of`` of a cell, asked once per distinct cell."""
        made = self.made[id(self.cells[r][c])] = self.cell_of(r, c)
        return made

    def node(self, rows: list[int], open_columns: frozenset[int]) -> Node:
        if len(rows) <= LEAF_ROWS or len(rows) > SHAPE_ROWS or not open_columns:
            return self.made_node(rows, open_columns)
        # rows whose open cells are the same objects as those of rows seen before (a large table
        # repeats one pattern under each value of its first column) make the same node but for
        # their numbers: it is copied, when the budget left still admits every split it made
        every = map(self.cells.__getitem__, rows)
        cells_of = self.getters.get(open_columns)
        if cells_of is None:
            cells_of = self.getters[open_columns] = itemgetter(*open_columns)
        if len(open_columns) == 1:
            key = (open_columns, tuple(map(id, map(cells_of, every))))
        else:
            key = (open_columns, tuple(map(id, chain.from_iterable(map(cells_of, every)))))
        known = self.shapes.get(key)
        if known is not None and self.shape_slack(known) >= 0:
            template, numbers, used, slack, budget = known
            self.slack = min(self.slack, self.shape_slack(known))
            self.budget -= used
            return _renumbered(template, dict(zip(numbers, rows, strict=True)))
        outer, self.slack = self.slack, math.inf
        before = self.budget
        made = self.made_node(rows, open_columns)
        self.shapes[key] = (made, rows, before - self.budget, self.slack, before)
        self.slack = min(outer, self.slack)
        return made

    def shape_slack(self, known: Shape) -> float:
        """How far under its budget the tightest split of a known node would be, made again now."""
        _, _, _, slack, budget = known
        return slack - (budget - self.budget)

    def made_node(self, rows: list[int], open_columns: frozenset[int]) -> Node:
        best: Split | None = None
        if len(rows) > LEAF_ROWS:
            for c in open_columns:
                split = self.split(rows, c, open_columns - {c})
                if split is not None and split[0] < len(rows) and split[1] <= self.budget:
                    self.slack = min(self.slack, self.budget - split[1])
                    if best is None or split[:2] < best[:2]:
                        best = split
        return self.leaf(rows, open_columns) if best is None else best[2]()

    def split(self, rows: list[int], c: int, rest: frozenset[int]) -> Split | None:
        """How column ``c`` splits ``rows`` (exact values first, else bands); None when it cannot."""
        values = self.values[c]
        made = self.split_exact(rows, c, values, rest) if values is not None else None
        bands = self.bands[c]
        if made is None and bands is not None:
            made = self.split_band(rows, c, bands, rest)
        return made

    def split_exact(self, rows: list[int], c: int, values: list[tuple[Any, ...] | None],
                    rest: frozenset[int]) -> Split | None:
        each = list(map(values.__getitem__, rows))     # (counted in C: the first node has every row)
        if None in each:
            return None
        counts = Counter(chain.from_iterable(each))  # type: ignore[arg-type]  # value -> rows listing it, in first-written order
        if not counts:
            return None
        wild = each.count(())

        def make() -> Node:
            branches: dict[Any, list[int]] = {v: [] for v in counts}
            other = []
            for r in rows:
                listed = values[r]
                if listed:
                    for v in listed:
                        branches[v].append(r)
                else:
                    for b in branches.values():
                        b.append(r)
                    other.append(r)
            return Exact(self.slots[c], {v: self.node(b, rest) for v, b in branches.items()}, self.node(other, rest))

        return max(counts.values()) + wild, sum(counts.values()) + wild * (len(counts) + 1), make

    def split_band(self, rows: list[int], c: int, bands: list[tuple[float, float] | None],
                   rest: frozenset[int]) -> Split | None:
        each = list(map(bands.__getitem__, rows))
        if None in each:
            return None
        bounds = sorted(set(chain.from_iterable(each)) - {-math.inf, math.inf})   # type: ignore[arg-type]
        if not bounds:
            return None
        at = {b: i + 1 for i, b in enumerate(bounds)} | {-math.inf: 0, math.inf: len(bounds) + 1}
        spans = [(r, at[band[0]], at[band[1]]) for r, band in zip(rows, each, strict=True)]  # type: ignore[index]
        sizes = [0] * (len(bounds) + 2)          # branch i holds the rows whose span covers it
        for _, lo, hi in spans:
            sizes[lo] += 1
            sizes[hi] -= 1
        covering = list(accumulate(sizes[:-1]))

        def make() -> Node:
            branches: list[list[int]] = [[] for _ in covering]
            for r, lo, hi in spans:
                for i in range(lo, hi):
                    branches[i].append(r)
            edges = tuple(int(b) for b in bounds)
            children = tuple(self.node(b, rest) for b in branches)
            return Band(self.slots[c], self.bounds.setdefault(edges, edges), children)

        return max(covering), sum(covering), make


def build(table: ir.RowTable, cell_of: CellOf) -> Node:
    """The index of a row table (see the module's docstring); ``cell_of`` gives the test of one cell
    as the entries carry it."""
    return index(table, cell_of)[0]


def index(table: ir.RowTable, cell_of: CellOf) -> tuple[Node, Scan]:
    """``build`` and ``scan`` of a table, its cells read once for both."""
    columns = _columns(table)
    exacts = _exacts(table, columns)
    builder = _Builder(table, cell_of, columns, exacts)
    tree = builder.node(list(range(len(table.rows))), frozenset(range(len(table.columns))))
    return tree, _scan(table, exacts)


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


def _best_column(exacts: Exacts) -> tuple[int, list[tuple[Any, ...] | None]] | None:
    """The scalar column whose cells are all literals, `in:` lists or `-`, with the most distinct
    values, and those cells' values."""
    best: tuple[int, int, list[tuple[Any, ...] | None]] | None = None
    for c, column in enumerate(exacts):
        if column is None or None in column:      # (an item is a tuple or None: `in` tells them apart)
            continue
        distinct = len(set(chain.from_iterable(column)))  # type: ignore[arg-type]
        if distinct > 1 and (best is None or distinct > best[1]):
            best = (c, distinct, column)
    return None if best is None else (best[0], best[2])


def scan(table: ir.RowTable) -> Scan:
    """What an explained decision tries: the rows listing the request's value in the scalar column
    whose literal cells best split the rows, with the `-` rows of that column (value -> rows)."""
    return _scan(table, _exacts(table, _columns(table)))


def _scan(table: ir.RowTable, exacts: Exacts) -> Scan:
    best = _best_column(exacts)
    if best is None:
        return None, {}, ()
    c, cells = best
    wildcards = tuple(compress(range(len(cells)), map(operator.not_, cells)))
    lists: dict[Any, list[int]] = {}
    for i, k in enumerate(cells):
        if k:
            for v in k:
                lists.setdefault(v, []).append(i)
    # a value's rows and the `-` rows are apart, each in order: sorting their concatenation merges them
    buckets = {v: tuple(sorted(rows + list(wildcards))) for v, rows in lists.items()}
    return table.columns[c].slot, buckets, wildcards
