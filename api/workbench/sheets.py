"""A decision table as a spreadsheet and back: CSV and XLSX export of a grid exactly as it is shown,
and an edited sheet read back into the smallest change of the rule file.

Reading a sheet never trusts it: it is bounded in bytes (and, for XLSX, in what its archive
unpacks to), its header and row names must be the table's, a formula or a date is refused, and
each problem names the sheet cell (``B7``). Writing a change replaces only the characters of the
cells that changed, in place, so every comment, blank line, quote style and the order of the file
stay as they were; the file is then read again and must differ from the original in exactly
those cells (anything else is refused, nothing is changed).
"""
from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import yaml

from .grids import Grid, file_sections

#: the largest sheet read, in bytes (a 10,000-row table exports to well under 1 MB)
MAX_SHEET_BYTES = 4 * 1024 * 1024
#: the most an XLSX archive may unpack to, in bytes (an archive is a zip: it could unpack to gigabytes)
MAX_UNPACKED_BYTES = 64 * 1024 * 1024
#: empty rows and columns past the table a sheet may carry (spreadsheets keep formatted blank cells)
SLACK = 50

MEDIA = {"csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


class SheetError(ValueError):
    """An edited sheet that cannot become a change; ``cell`` names the sheet cell (``B7``) if any."""

    def __init__(self, message: str, cell: str | None = None):
        super().__init__(f"{cell}: {message}" if cell else message)
        self.cell = cell
        self.message = message


def column_letter(index: int) -> str:
    """``0`` -> ``A``, ``26`` -> ``AA``: the column names of a spreadsheet."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def ref(row: int, column: int) -> str:
    """The name of the sheet cell at 0-based ``row`` (0 is the header) and ``column``."""
    return f"{column_letter(column)}{row + 1}"


def filename(grid: Grid, kind: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{grid.system}-{grid.id}")
    return f"{safe}.{kind}"


# -- export ---------------------------------------------------------------------------------------
#: how a spreadsheet opening a CSV file tells a formula: its first character (after any quote marks)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN = re.compile(r"-|[-+]?[0-9]+(\.[0-9]+)?")


def _runs(text: str) -> bool:
    """Whether a spreadsheet would run ``text`` (after the quote marks ``'`` that guard it) as a formula."""
    core = text.lstrip("'")
    return core.startswith(_FORMULA_START) and not _PLAIN.fullmatch(core)


def guarded(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: ``=cmd|...`` is written ``'=cmd|...`` (the spreadsheet
    convention for a text cell); ``unguarded`` reads it back, so the round trip is exact."""
    return "'" + text if _runs(text) else text


def unguarded(text: str) -> str:
    return text[1:] if text.startswith("'") and _runs(text[1:]) else text


def to_csv(grid: Grid) -> bytes:
    """The grid as CSV (UTF-8 with a byte-order mark, so spreadsheets read its accents); a cell that
    a spreadsheet would run as a formula is guarded by a leading ``'`` (see ``guarded``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([guarded(text) for text in row] for row in grid.sheet())
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def sheet_title(grid: Grid) -> str:
    bad = set("[]:*?/\\")
    return "".join("_" if ch in bad else ch for ch in grid.id)[:31] or "table"


def to_xlsx(grid: Grid, version: str = "") -> bytes:
    """The grid as an XLSX workbook of one sheet; every cell is stored as text (never a formula)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = sheet_title(grid)
    for r, values in enumerate(grid.sheet(), start=1):
        for c, text in enumerate(values, start=1):
            cell = sheet.cell(row=r, column=c)
            cell.value = text
            cell.data_type = "s"          # a cell reading `=...` stays text
            if r == 1 or c <= grid.label_count:
                cell.font = Font(bold=True)
    for c, _ in enumerate(grid.header, start=1):
        width = max(len(row[c - 1]) for row in grid.sheet())
        sheet.column_dimensions[column_letter(c - 1)].width = min(max(width + 2, 8), 60)
    sheet.freeze_panes = sheet.cell(row=2, column=grid.label_count + 1)
    book.properties.title = f"{grid.system} / {grid.id}"
    book.properties.description = f"ordergate table {grid.id} of system {grid.system}, version {version}".strip()
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# -- reading a sheet ------------------------------------------------------------------------------
def _xlsx_text(value: Any, cell: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (datetime, date, time)):
        raise SheetError("the cell holds a date or time; type the cell as text", cell)
    return str(value)


def _check_archive(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(i.file_size for i in archive.infolist())
    except zipfile.BadZipFile:
        raise SheetError("the file is not an XLSX workbook") from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise SheetError(f"the workbook unpacks to {unpacked:,} bytes, more than the "
                         f"{MAX_UNPACKED_BYTES:,} a table needs; it is not read")


def read_xlsx(data: bytes, max_rows: int, max_columns: int, title: str | None = None) -> list[list[str]]:
    """The text of the first sheet (or the one named ``title``), at most ``max_rows`` x ``max_columns``;
    a non-empty cell beyond those bounds is an error naming it."""
    from openpyxl import load_workbook

    _check_archive(data)
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as exc:   # openpyxl raises many kinds for a broken archive
        raise SheetError(f"the file is not a readable XLSX workbook ({type(exc).__name__})") from None
    try:
        rows = _xlsx_rows(book, title, max_rows, max_columns)
    except SheetError:
        raise
    except Exception as exc:  # read-only sheets are parsed while iterated: XML errors, entities refused
        raise SheetError(f"the sheet cannot be read as a workbook's sheet ({type(exc).__name__}); save it again "
                         "from the spreadsheet as .xlsx") from None
    finally:
        book.close()
    return _bounded(rows, max_rows, max_columns)


def _xlsx_rows(book: Any, title: str | None, max_rows: int, max_columns: int) -> list[list[str]]:
    sheet = book[title] if title and title in book.sheetnames else book.worksheets[0]
    rows: list[list[str]] = []
    for r, cells in enumerate(sheet.iter_rows(max_row=max_rows + SLACK)):
        row = []
        for c, cell in enumerate(cells[:max_columns + SLACK]):
            name = ref(r, c)
            if getattr(cell, "data_type", None) == "f":
                raise SheetError("the cell holds a formula; a table cell is text, type its value", name)
            row.append(_xlsx_text(cell.value, name))
        rows.append(row)
    return rows


def read_csv(data: bytes, max_rows: int, max_columns: int) -> list[list[str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SheetError(f"the CSV file is not UTF-8 text (byte {exc.start + 1}); save it as CSV UTF-8") from None
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        rows = [row for _, row in zip(range(max_rows + SLACK + 1), reader, strict=False)]
    except csv.Error as exc:
        raise SheetError(f"the CSV file cannot be read: {exc}") from None
    for r, row in enumerate(rows):
        for c, value in enumerate(row[:max_columns + SLACK]):
            if value.startswith("="):
                raise SheetError("the cell holds a formula; a table cell is text, type its value", ref(r, c))
    return _bounded([[unguarded(value) for value in row] for row in rows], max_rows, max_columns)


def _bounded(rows: list[list[str]], max_rows: int, max_columns: int) -> list[list[str]]:
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value.strip() and (r >= max_rows or c >= max_columns):
                what = "row" if r >= max_rows else "column"
                raise SheetError(f"the sheet has a {what} the table does not have; the sheet edits the cells of "
                                 "the table, add rows or columns in the rule file", ref(r, c))
    return [(row + [""] * max_columns)[:max_columns] for row in rows[:max_rows]]


def read(data: bytes, kind: str, grid: Grid) -> list[list[str]]:
    """The sheet's cells as text, the size of ``grid`` (missing cells are empty)."""
    if len(data) > MAX_SHEET_BYTES:
        raise SheetError(f"the file has {len(data):,} bytes, more than the {MAX_SHEET_BYTES:,} a sheet may have; "
                         "it is not read")
    rows, columns = len(grid.rows) + 1, len(grid.header)
    if kind == "xlsx":
        found = read_xlsx(data, rows, columns, sheet_title(grid))
    elif kind == "csv":
        found = read_csv(data, rows, columns)
    else:
        raise SheetError(f"unknown sheet kind `{kind}`; send a .csv or .xlsx file")
    return found + [[""] * columns for _ in range(rows - len(found))]


# -- from a sheet to a change of the rule file ----------------------------------------------------
@dataclass(frozen=True)
class Edit:
    cell: str         # the sheet cell, e.g. C4
    row: str          # the rule id
    column: str
    before: str
    after: str


def edits(grid: Grid, sheet: list[list[str]]) -> list[Edit]:
    """The cells ``sheet`` changes; the header and each row's name must be the table's."""
    for c, name in enumerate(grid.header):
        found = sheet[0][c].strip()
        if found != name:
            raise SheetError(f"the header reads `{found}` where the table's column is `{name}`; the header "
                             f"must be the table's: {', '.join(grid.header)}", ref(0, c))
    out = []
    for r, row in enumerate(grid.rows, start=1):
        for c, cell in enumerate(row.all_cells):
            found = sheet[r][c].strip()
            if found == cell.text:
                continue
            if c < grid.label_count:
                raise SheetError(f"the row name reads `{found}` where the table has `{cell.text}`; a sheet keeps "
                                 "its rows in the table's order and names (rename or add rows in the rule file)",
                                 ref(r, c))
            out.append(Edit(ref(r, c), row.key, cell.column, cell.text, found))
    return out


def _fragment(text: str) -> str:
    """How ``text`` is written into the file: as typed when it starts like a word or a flow value and
    YAML reads it back as the same cell (``calculate``, ``{at_least: 100}``, ``42``), else as a quoted
    text (``"-"``)."""
    if text and text == text.strip() and (text[0].isalnum() or text[0] in "{[_"):
        try:
            items = yaml.safe_load(f"[{text}]")
        except yaml.YAMLError:
            items = None
        if isinstance(items, list) and len(items) == 1:
            value = items[0]
            if isinstance(value, str) and value == text:
                return text
            if not isinstance(value, str) and value is not None and " ".join(text.split()) == text:
                return text
    return json.dumps(text, ensure_ascii=False)


def _aligned(source: str, start: int, end: int, text: str) -> tuple[int, int, str]:
    """Replace ``source[start:end]`` by ``text``; in an aligned flow row (``a,      b``) the spaces
    after the comma grow or shrink so the next cell stays in its column."""
    if source[end:end + 1] != ",":
        return start, end, text
    gap = len(source[end + 1:]) - len(source[end + 1:].lstrip(" "))
    if not gap or source[end + 1 + gap:end + 2 + gap] in ("\n", ""):
        return start, end, text
    pad = max(1, gap + (end - start) - len(text))
    return start, end + 1 + gap, text + "," + " " * pad


def apply(source: str, grid: Grid, changes: list[Edit]) -> str:
    """The rule file ``source`` (which holds ``grid``) with the changed cells rewritten in place."""
    spans = []
    for e in changes:
        row = grid.row(e.row)
        cell = row.cell(e.column) if row is not None else None
        if cell is None:
            raise SheetError(f"the table has no cell {e.row} / {e.column}", e.cell)
        spans.append(_aligned(source, cell.span.start, cell.span.end, _fragment(e.after)))
    out = source
    for start, end, text in sorted(spans, reverse=True):
        out = out[:start] + text + out[end:]
    _same_but(source, out, grid, changes)
    return out


def _without_table(text: str, table_id: str) -> list[Any]:
    """The documents of a rule file with the body of table ``table_id`` left out."""
    docs = list(yaml.safe_load_all(text))
    for doc in docs:
        for rule in (doc.get("rules") or () if isinstance(doc, dict) else ()):
            if isinstance(rule, dict) and rule.get("kind") == "table" and rule.get("id") == table_id:
                rule["body"] = None
    return docs


def _same_but(before: str, after: str, grid: Grid, changes: list[Edit]) -> None:
    """Refuse a rewrite that reads back as anything but the table with ``changes`` made."""
    wanted = {(e.row, e.column): e.after for e in changes}
    expected = [[wanted.get((row.key, cell.column), cell.text) for cell in row.all_cells] for row in grid.rows]
    try:
        target = next((g for s in file_sections(grid.file, after) for g in s.grids if g.key == grid.key), None)
        same_rest = _without_table(before, grid.id) == _without_table(after, grid.id)
    except yaml.YAMLError as exc:
        raise SheetError(f"the edited file would not read back as YAML ({exc}); nothing changed") from None
    if target is None or not same_rest or target.sheet()[1:] != expected:
        raise SheetError("the edited file would read back differently from the sheet; nothing changed")
