"""The analyst's round trip: an edited sheet of one table becomes a candidate change of the rule
files, checked and tested the way a publish is, and shown as a diff before anything is written.

``preview`` changes nothing anywhere: it returns the candidate files, the cells that changed, the
unified diff of the rule file and the result of ``check`` and the YAML tests (the publish gate,
:func:`store.publish.compile_and_test`). Errors located in a cell of the table are named by their
sheet cell. The web pages and ``ordergate import-table`` both call it.
"""
from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import grids, sheets


@dataclass(frozen=True)
class Problem:
    message: str
    where: str | None = None     # file:line:column
    cell: str | None = None      # the sheet cell, when the problem is in one

    def __str__(self) -> str:
        prefix = f"{self.cell}: " if self.cell else (f"{self.where}: " if self.where else "")
        return prefix + self.message


@dataclass(frozen=True)
class Preview:
    grid: grids.Grid
    edits: tuple[sheets.Edit, ...]
    files: dict[str, str]                 # the candidate: every file of the base, one rewritten
    diff: str                             # unified diff of the rule file ("" when nothing changed)
    problems: tuple[Problem, ...] = ()    # check errors and failing or missing YAML tests
    checked: bool = field(default=False)  # check and the tests ran (there was a change)

    @property
    def passed(self) -> bool:
        return self.checked and not self.problems

    @property
    def empty(self) -> bool:
        return not self.edits

    @property
    def digest(self) -> str:
        """A hash of the candidate: the confirm step publishes only what was previewed."""
        text = "\0".join(f"{p}\0{t}" for p, t in sorted(self.files.items()))
        return hashlib.sha256(text.encode()).hexdigest()


def table(files: Mapping[str, str], system: str, table_id: str) -> grids.Grid:
    grid = grids.find(grids.grids(files), system, table_id)
    if grid is None:
        raise sheets.SheetError(f"the version has no table `{table_id}` in system `{system}`")
    return grid


def unified(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 fromfile=f"a/{path}", tofile=f"b/{path}", n=2)
    return "".join(lines)


def _cells_at(files: Mapping[str, str], grid: grids.Grid) -> dict[str, str]:
    """file:line:column of each cell of ``grid`` as it reads in ``files`` -> its sheet cell."""
    again = grids.find(grids.grids({grid.file: files[grid.file]}), grid.system, grid.id)
    if again is None:
        return {}
    return {cell.span.where: sheets.ref(r, c)
            for r, row in enumerate(again.rows, start=1) for c, cell in enumerate(row.all_cells)}


def check(files: dict[str, str], grid: grids.Grid) -> tuple[Problem, ...]:
    """``check`` and the YAML tests of the candidate, as publishing runs them."""
    from store.errors import PublishRejected
    from store.publish import compile_and_test

    try:
        compile_and_test(files)
    except PublishRejected as exc:
        cells = _cells_at(files, grid)
        found = [Problem(e.get("message", ""), e.get("location"), cells.get(e.get("location") or ""))
                 for e in exc.errors]
        found += [Problem(_failure(t), t.get("location")) for t in exc.test_failures]
        return tuple(found)
    return ()


def _failure(test: dict[str, Any]) -> str:
    if test.get("kind") == "uncovered":
        return str(test.get("message"))
    problems = "; ".join(test.get("problems") or ())
    return f"test `{test.get('name')}` fails: {problems}"


def preview(files: Mapping[str, str], system: str, table_id: str, data: bytes, kind: str) -> Preview:
    """The change an edited sheet of table ``table_id`` makes to ``files``; raises SheetError for
    a sheet that cannot be read as that table (nothing is changed)."""
    grid = table(files, system, table_id)
    sheet = sheets.read(data, kind, grid)
    changes = sheets.edits(grid, sheet)
    candidate = dict(files)
    if not changes:
        return Preview(grid, (), candidate, "")
    before = files[grid.file]
    candidate[grid.file] = sheets.apply(before, grid, changes)
    return Preview(grid, tuple(changes), candidate, unified(grid.file, before, candidate[grid.file]),
                   check(candidate, grid), checked=True)
