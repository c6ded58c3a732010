"""Two versions' grids side by side: which tables, rows and cells changed.

Cells are matched by (table, rule id, column) and compared by the value the YAML writes, so a
reordered row or a re-aligned line is no change; a changed cell keeps its text before and after
(``skip when integ`` -> ``calculate``). The HTML diff page reads this; which decisions the change
affects comes from the semantic diff and the impact replay, not from here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .grids import Grid, GridRow, Section

#: a table's settings compared besides its cells: (label, how to read it from a grid)
SETTINGS = ("hit", "no_match", "otherwise", "when", "words", "outcomes", "header", "actions")


@dataclass(frozen=True)
class RowDiff:
    key: str
    status: str                                   # same | changed | added | removed
    row: GridRow                                  # the row as the newer version has it (or had, if removed)
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)   # column -> (before, after)


@dataclass(frozen=True)
class TableDiff:
    system: str
    id: str
    status: str                                   # same | changed | added | removed
    grid: Grid                                    # the newer table (the older one when removed)
    rows: tuple[RowDiff, ...]
    settings: tuple[tuple[str, str, str], ...]    # (setting, before, after)

    @property
    def changed_cells(self) -> int:
        return sum(len(r.changed) for r in self.rows)

    def row(self, key: str) -> RowDiff | None:
        return next((r for r in self.rows if r.key == key), None)


def _setting(grid: Grid, name: str) -> str:
    value = getattr(grid, name)
    if isinstance(value, tuple):
        return ", ".join(f"{v[0]}: {v[1]}" if isinstance(v, tuple) else str(v) for v in value)
    return "" if value is None else str(value)


def _row(old: GridRow, new: GridRow) -> RowDiff:
    changed = {}
    for cell in new.all_cells:
        before = old.cell(cell.column)
        if before is None:
            changed[cell.column] = ("", cell.text)
        elif before.value != cell.value:
            changed[cell.column] = (before.text, cell.text)
    for cell in old.all_cells:
        if new.cell(cell.column) is None:
            changed[cell.column] = (cell.text, "")
    return RowDiff(new.key, "changed" if changed else "same", new, changed)


def table_diff(old: Grid | None, new: Grid | None) -> TableDiff:
    if old is None or new is None:
        grid = new or old
        assert grid is not None
        status = "added" if old is None else "removed"
        return TableDiff(grid.system, grid.id, status, grid, tuple(RowDiff(r.key, status, r) for r in grid.rows), ())
    rows = []
    for row in new.rows:
        before = old.row(row.key)
        rows.append(RowDiff(row.key, "added", row) if before is None else _row(before, row))
    rows += [RowDiff(r.key, "removed", r) for r in old.rows if new.row(r.key) is None]
    settings = tuple((name, _setting(old, name), _setting(new, name)) for name in SETTINGS
                     if _setting(old, name) != _setting(new, name))
    status = "changed" if settings or any(r.status != "same" for r in rows) else "same"
    return TableDiff(new.system, new.id, status, new, tuple(rows), settings)


def diff(old: tuple[Section, ...], new: tuple[Section, ...]) -> tuple[TableDiff, ...]:
    """Every table of either version, compared: the newer version's order, removed tables last."""
    before = {g.key: g for s in old for g in s.grids}
    after = {g.key: g for s in new for g in s.grids}
    out = [table_diff(before.get(k), g) for k, g in after.items()]
    out += [table_diff(g, None) for k, g in before.items() if k not in after]
    return tuple(out)
