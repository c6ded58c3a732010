"""Decision tables as boxes: overlaps, gaps, shadowed rows and values no row mentions.

A row is a box: one set per column (see :mod:`.domain`); an input matches the row when each of its
values lies in the row's set for that column. The analyses never compare every pair of rows with
every other: they cut the input space one column at a time into atoms on which each row either
holds or not (:meth:`Domain.split`), and recurse only into the rows that hold on an atom. Rows
that take any value of a column (`-`) follow every atom without being split. A leaf of that walk
is a box of inputs matched by exactly the rows that reached it, so a witness is any point of it.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import Location
from .domain import Domain, Finite

PAIRWISE = 8          # groups this small are compared pair by pair
Found = dict[tuple[int, int], dict[str, Any]]   # (row, later row) -> an input both match


@dataclass(frozen=True)
class Column:
    name: str
    domain: Domain
    location: Location


@dataclass(frozen=True)
class Row:
    id: str
    cells: tuple[Any, ...]          # one set per column
    location: Location


@dataclass(frozen=True)
class Table:
    id: str
    hit: str              # unique | first | collect
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    location: Location
    no_match: str | None  # what the table says when no row matches; None when it says nothing
    scope: tuple[tuple[Any, ...], ...]   # boxes of inputs where the table applies (its `when`); one full box without


@dataclass(frozen=True)
class Overlap:
    first: int
    second: int
    witness: dict[str, Any]


@dataclass(frozen=True)
class Gap:
    witness: dict[str, Any]
    row: dict[str, Any]             # the suggested row: column -> cell as written in a rule file


@dataclass(frozen=True)
class Shadowed:
    row: int
    by: tuple[int, ...]
    witness: dict[str, Any]


class _Space:
    """The rows of a table restricted to one scope box, ready to be walked."""

    def __init__(self, table: Table, box: tuple[Any, ...]):
        self.doms = [c.domain for c in table.columns]
        self.names = [c.name for c in table.columns]
        self.box = box
        self.cells: list[tuple[Any, ...]] = []
        self.ids: list[int] = []              # index into table.rows
        self.full: list[int] = []             # per kept row: bit mask of columns where it takes the whole box
        self.dropped: list[int] = []          # rows that match nothing in the box
        whole = all(d.is_full(b) for d, b in zip(self.doms, box, strict=False))
        for i, row in enumerate(table.rows):
            cut = row.cells if whole else tuple(
                d.inter(c, b) for d, c, b in zip(self.doms, row.cells, box, strict=False))
            if any(d.is_empty(c) for d, c in zip(self.doms, cut, strict=False)):
                self.dropped.append(i)
                continue
            self.ids.append(i)
            self.cells.append(cut)
            self.full.append(sum(1 << k for k, (c, b) in enumerate(zip(cut, box, strict=False)) if c == b))

    def point(self, region: list[Any]) -> dict[str, Any]:
        return {n: d.pick(r) for n, d, r in zip(self.names, self.doms, region, strict=False)}

    def choose(self, rows: list[int], cols: int) -> int:
        """The remaining column on which the fewest of ``rows`` take the whole box."""
        best, best_count = -1, None
        for k in range(len(self.doms)):
            if cols >> k & 1:
                count = sum(self.full[r] >> k & 1 for r in rows)
                if best_count is None or count < best_count:
                    best, best_count = k, count
        return best

    def atoms(self, rows: list[int], k: int, region: list[Any]) -> list[tuple[Any, list[int]]]:
        wide = [r for r in rows if self.full[r] >> k & 1]
        narrow = [r for r in rows if not self.full[r] >> k & 1]
        parts = self.doms[k].split(region[k], [self.cells[r][k] for r in narrow])
        return [(atom, sorted([narrow[j] for j in held] + wide)) for atom, held in parts]

    # -- overlaps -------------------------------------------------------------------------------
    def overlaps(self, found: Found) -> None:
        self._overlaps(list(range(len(self.cells))), (1 << len(self.doms)) - 1, list(self.box), found)

    def _overlaps(self, rows: list[int], cols: int, region: list[Any], found: Found) -> None:
        if len(rows) < 2:
            return
        if len(rows) <= PAIRWISE or not cols:
            for x in range(len(rows)):
                for y in range(x + 1, len(rows)):
                    a, b = rows[x], rows[y]
                    key = (self.ids[a], self.ids[b])
                    if key in found:
                        continue
                    meet = [d.inter(d.inter(ca, cb), r)
                            for d, ca, cb, r in zip(self.doms, self.cells[a], self.cells[b], region, strict=False)]
                    if not any(d.is_empty(m) for d, m in zip(self.doms, meet, strict=False)):
                        found[key] = self.point(meet)
            return
        k = self.choose(rows, cols)
        for atom, held in self.atoms(rows, k, region):
            if len(held) >= 2:
                sub = list(region)
                sub[k] = atom
                self._overlaps(held, cols & ~(1 << k), sub, found)

    # -- gaps -------------------------------------------------------------------------------------
    def gaps(self, rows: list[int], region: list[Any], limit: int) -> list[list[Any]]:
        out: list[list[Any]] = []
        self._gaps(rows, (1 << len(self.doms)) - 1, list(region), out, limit)
        return out

    def _gaps(self, rows: list[int], cols: int, region: list[Any], out: list[Any], limit: int) -> None:
        if len(out) >= limit:
            return
        if not rows:
            out.append(list(region))
            return
        if not cols or any(self.full[r] & cols == cols for r in rows):
            return
        k = self.choose(rows, cols)
        for atom, held in self.atoms(rows, k, region):
            sub = list(region)
            sub[k] = atom
            self._gaps(held, cols & ~(1 << k), sub, out, limit)
            if len(out) >= limit:
                return


class Analysis:
    """The analyses of one table, sharing the walk's set-up."""

    def __init__(self, table: Table):
        self.table = table
        self.spaces = [_Space(table, box) for box in table.scope]

    def overlaps(self) -> list[Overlap]:
        """Every pair of rows that some input of the table's scope matches both, with one such input."""
        found: dict[tuple[int, int], dict[str, Any]] = {}
        for space in self.spaces:
            space.overlaps(found)
        return [Overlap(a, b, w) for (a, b), w in sorted(found.items())]

    def gaps(self, limit: int = 3) -> list[Gap]:
        """Up to ``limit`` regions of inputs in scope that no row matches, each as a row to add."""
        out: list[Gap] = []
        for space in self.spaces:
            for region in space.gaps(list(range(len(space.cells))), list(space.box), limit - len(out)):
                region = [d.narrow(r) for d, r in zip(space.doms, region, strict=False)]
                row = {n: d.cell(r) for n, d, r in zip(space.names, space.doms, region, strict=False)}
                out.append(Gap(space.point(region), row))
            if len(out) >= limit:
                break
        return out

    def empty_rows(self) -> list[int]:
        """Rows that match no input of the table's scope (e.g. `{below: 0}` on a fact with `min: 0`)."""
        return sorted(set.intersection(*(set(s.dropped) for s in self.spaces))) if self.spaces else []

    def shadowed(self, pairs: list[Overlap]) -> list[Shadowed]:
        """Rows whose every input is matched by earlier rows (what `hit: first` never reaches)."""
        table = self.table
        doms = [c.domain for c in table.columns]
        earlier: dict[int, set[int]] = {}
        for o in pairs:
            earlier.setdefault(o.second, set()).add(o.first)
        out = []
        for i, before in sorted(earlier.items()):
            row = table.rows[i]
            sub = Table(table.id, table.hit, table.columns, tuple(table.rows[j] for j in sorted(before)),
                        table.location, table.no_match, ())
            covered, witness = True, None
            for box in table.scope:
                piece = tuple(d.inter(c, b) for d, c, b in zip(doms, row.cells, box, strict=False))
                if any(d.is_empty(p) for d, p in zip(doms, piece, strict=False)):
                    continue
                space = _Space(sub, piece)
                if space.gaps(list(range(len(space.cells))), list(piece), 1):
                    covered = False
                    break
                witness = witness or space.point(list(piece))
            if covered and witness is not None:
                out.append(Shadowed(i, tuple(sorted(before)), witness))
        return out


def unmentioned(table: Table) -> Iterator[tuple[Column, list[Any]]]:
    """Per enum column, the values that no row names (they reach rows only through `-`)."""
    for k, col in enumerate(table.columns):
        dom = col.domain
        if not isinstance(dom, Finite) or all(type(v) is bool for v in dom.values):
            continue
        named = dom.empty
        for row in table.rows:
            if not dom.is_full(row.cells[k]):
                named = dom.union(named, row.cells[k])
        missing = dom.values_of(dom.complement(named))
        if missing and named != dom.empty:
            yield col, missing

