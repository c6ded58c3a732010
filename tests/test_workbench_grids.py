"""The grid model of the workbench and the analyst's round trip (sheet out, sheet in), on the o2c
and corpus fixtures: grids read like their YAML, an unchanged sheet is an empty change, an edited
cell is exactly one changed cell in the rule file, and a bad sheet is refused naming its cell."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

import engine
from api.workbench import grids, roundtrip, sheets

openpyxl = pytest.importorskip("openpyxl")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def o2c() -> dict[str, str]:
    return engine.read_folder(FIXTURES / "o2c")


@pytest.fixture(scope="module")
def corpus() -> dict[str, str]:
    return engine.read_folder(FIXTURES / "corpus" / "policy")


def _table(text: str, table_id: str) -> dict:
    for doc in yaml.safe_load_all(text):
        for rule in (doc or {}).get("rules") or ():
            if rule.get("id") == table_id:
                return rule
    raise AssertionError(f"no table {table_id}")


def _price(files: dict[str, str]) -> grids.Grid:
    grid = grids.find(grids.grids(files), "d365_sales", "price-computation")
    assert grid is not None
    return grid


def edited_xlsx(data: bytes, **cells: object) -> bytes:
    """An exported workbook with ``cells`` (``D4="calculate"``) typed into its sheet."""
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data))
    for name, value in cells.items():
        book.active[name] = value
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _xlsx_with(grid: grids.Grid, **cells: object) -> bytes:
    return edited_xlsx(sheets.to_xlsx(grid), **cells)


def test_price_grid_is_the_yaml_table_cell_by_cell(o2c):
    grid = _price(o2c)
    written = _table(o2c["pricing.yaml"], "price-computation")
    assert grid.layout == "action_matrix" and grid.hit == "unique" and grid.otherwise == written["otherwise"]
    assert list(grid.header) == written["header"]
    assert [r.labels[1].text for r in grid.rows] == [row[1] for row in written["body"]]   # entities as rows
    assert grid.header[2:] == ("create", "update", "delete", "recalculate")               # operations as columns
    assert grid.sheet() == [written["header"]] + [[str(c) for c in row] for row in written["body"]]
    cell = grid.row("PRC-03").cell("update")
    assert cell.text == "skip when submitted or integ"
    line = o2c["pricing.yaml"].splitlines()[cell.span.line - 1]
    assert line[cell.span.column - 1:].startswith("skip when submitted or integ")
    assert dict(grid.words)["integ"] == "{sop: true, integ: true}"


def test_row_table_cells_read_as_written(corpus):
    grid = grids.find(grids.grids(corpus), "desk", "discounts")
    assert grid is not None and grid.layout == "rows" and grid.hit == "first" and grid.no_match is None
    d2 = grid.row("D-2")
    assert [c.text for c in d2.all_cells] == ["D-2", "retail", "{at_least: 100, below: 1000}", "{in: [EUR, USD]}", "d5"]
    assert d2.cell("total").value == {"at_least": 100, "below": 1000}
    assert grid.row("D-1").cell("currency").text == "-"
    reviews = grids.find(grids.grids(corpus), "desk", "reviews")
    assert reviews.when == "{urgent: false}" and reviews.actions == ("order.book",)


def test_no_match_is_part_of_the_grid():
    files = engine.read_folder(FIXTURES / "no_match")
    found = {g.id: g.no_match_words() for g in grids.grids(files)}
    assert "deny" in found.values() and "an evaluation error" in found.values()
    assert any(v.startswith("nothing") for v in found.values())


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_export_reads_back_as_the_grid_and_an_unchanged_sheet_is_no_change(o2c, corpus, kind):
    for files in (o2c, corpus):
        for grid in grids.grids(files):
            data = sheets.to_csv(grid) if kind == "csv" else sheets.to_xlsx(grid)
            assert sheets.read(data, kind, grid) == grid.sheet()
            result = roundtrip.preview(files, grid.system, grid.id, data, kind)
            assert result.empty and result.diff == "" and result.files == files


def test_one_edited_cell_is_one_changed_cell_and_is_checked(o2c):
    grid = _price(o2c)
    result = roundtrip.preview(o2c, "d365_sales", "price-computation", _xlsx_with(grid, E7="skip when integ"), "xlsx")
    assert [(e.cell, e.row, e.column, e.before, e.after) for e in result.edits] == [
        ("E7", "PRC-06", "delete", "calculate", "skip when integ")]
    removed = [ln for ln in result.diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    added = [ln for ln in result.diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    assert len(removed) == len(added) == 1 and "PRC-06" in added[0] and "skip when integ, n/a]" in added[0]
    before, after = o2c["pricing.yaml"], result.files["pricing.yaml"]
    assert [a for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b] == [removed[0][1:]]
    new_grid = _price(result.files)
    assert new_grid.sheet()[6][4] == "skip when integ"
    assert [r for r in new_grid.sheet() if r[0] != "PRC-06"] == [r for r in grid.sheet() if r[0] != "PRC-06"]
    assert result.checked and not result.passed       # the YAML tests of PRC-06 expect a computed price
    assert any("PRC-06" in p.message for p in result.problems)


def test_an_edit_the_tests_accept_passes_the_gate(o2c):
    grid = _price(o2c)
    sheet = _xlsx_with(grid, D4="skip when integ or submitted")     # the same words in another order
    result = roundtrip.preview(o2c, "d365_sales", "price-computation", sheet, "xlsx")
    assert [(e.cell, e.before) for e in result.edits] == [("D4", "skip when submitted or integ")]
    assert result.checked and result.passed, result.problems
    again = roundtrip.preview(o2c, "d365_sales", "price-computation", sheet, "xlsx")
    assert again.digest == result.digest != roundtrip.preview(o2c, "d365_sales", "price-computation",
                                                              sheets.to_xlsx(grid), "xlsx").digest


def test_unknown_cell_value_names_the_cell(o2c):
    grid = _price(o2c)
    result = roundtrip.preview(o2c, "d365_sales", "price-computation", _xlsx_with(grid, F4="skip when integr"),
                               "xlsx")
    assert not result.passed
    assert any(p.cell == "F4" and "integr" in p.message for p in result.problems), result.problems


@pytest.mark.parametrize(("cells", "cell", "words"), [
    ({"C1": "creat"}, "C1", "header"),
    ({"B3": "quotes"}, "B3", "row name"),
    ({"D5": "=A1"}, "D5", "formula"),
    ({"A20": "PRC-99"}, "A20", "row the table does not have"),
    ({"H2": "x"}, "H2", "column the table does not have"),
])
def test_a_bad_sheet_is_refused_naming_the_cell(o2c, cells, cell, words):
    grid = _price(o2c)
    with pytest.raises(sheets.SheetError) as raised:
        roundtrip.preview(o2c, "d365_sales", "price-computation", _xlsx_with(grid, **cells), "xlsx")
    assert raised.value.cell == cell and words in str(raised.value)


def test_a_date_in_a_cell_is_refused(o2c):
    from datetime import datetime

    grid = _price(o2c)
    with pytest.raises(sheets.SheetError, match="^C2: .*date"):
        sheets.read(_xlsx_with(grid, C2=datetime(2026, 1, 1)), "xlsx", grid)


def test_csv_formula_and_size_and_bytes_are_refused(o2c):
    grid = _price(o2c)
    text = sheets.to_csv(grid).decode("utf-8-sig").replace("PRC-02,quote,calculate", "PRC-02,quote,=1+1", 1)
    with pytest.raises(sheets.SheetError, match="^C3: .*formula"):
        sheets.read(text.encode(), "csv", grid)
    with pytest.raises(sheets.SheetError, match="more than"):
        sheets.read(b"x" * (sheets.MAX_SHEET_BYTES + 1), "csv", grid)
    with pytest.raises(sheets.SheetError, match="UTF-8"):
        sheets.read(b"rule,entity\xff", "csv", grid)
    with pytest.raises(sheets.SheetError, match="not an XLSX"):
        sheets.read(b"PK not a zip", "xlsx", grid)


def test_a_zip_bomb_is_not_unpacked(o2c):
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/sharedStrings.xml", b"\0" * (sheets.MAX_UNPACKED_BYTES + 1))
    assert len(out.getvalue()) < sheets.MAX_SHEET_BYTES
    with pytest.raises(sheets.SheetError, match="unpacks to"):
        sheets.read(out.getvalue(), "xlsx", _price(o2c))


def test_row_table_edits_keep_the_file_and_its_comments(corpus):
    grid = grids.find(grids.grids(corpus), "desk", "discounts")
    data = sheets.to_csv(grid).decode("utf-8-sig")
    data = data.replace("D-1,retail,{below: 100},-,none", "D-1,retail,{below: 200},-,none")
    data = data.replace("D-4,staff,-,EUR,d10", "D-4,staff,-,-,d10")
    result = roundtrip.preview(corpus, "desk", "discounts", data.encode(), "csv")
    assert [e.cell for e in result.edits] == ["C2", "D5"]
    after = result.files["desk.yaml"]
    assert "[D-1, retail,                  {below: 200},                 \"-\"," in after
    assert "[D-4, staff,                   \"-\",                          \"-\",                  d10]" in after
    new = grids.find(grids.grids(result.files), "desk", "discounts")
    assert new.row("D-1").cell("total").value == {"below": 200}
    assert new.row("D-4").cell("currency").value == "-"
    comments = [ln for ln in corpus["desk.yaml"].splitlines() if ln.lstrip().startswith("#")]
    assert comments == [ln for ln in after.splitlines() if ln.lstrip().startswith("#")]


def test_fragment_quotes_what_yaml_would_read_otherwise():
    assert sheets._fragment("skip when integ") == "skip when integ"
    assert sheets._fragment("{at_least: 100}") == "{at_least: 100}"
    assert sheets._fragment("-") == '"-"'
    assert sheets._fragment("a, b") == '"a, b"'
    assert sheets._fragment("") == '""'
    assert sheets._fragment("x # y") == '"x # y"'


def test_the_cli_pair_round_trips_a_table(tmp_path):
    import shutil

    from click.testing import CliRunner

    from cli import main

    rules = tmp_path / "rules"
    shutil.copytree(FIXTURES / "o2c", rules)
    runner = CliRunner()
    sheet = tmp_path / "price.xlsx"
    done = runner.invoke(main, ["export-table", "price-computation", "--rules", str(rules), "--out", str(sheet)])
    assert done.exit_code == 0, done.output
    same = runner.invoke(main, ["import-table", "price-computation", str(sheet), "--rules", str(rules)])
    assert same.exit_code == 0 and "the diff is empty" in same.output
    sheet.write_bytes(edited_xlsx(sheet.read_bytes(), E7="skip when integ"))
    failing = runner.invoke(main, ["import-table", "price-computation", str(sheet), "--rules", str(rules), "--write"])
    assert failing.exit_code == 1 and "E7 PRC-06 / delete: calculate -> skip when integ" in failing.output
    assert (rules / "pricing.yaml").read_text() == (FIXTURES / "o2c" / "pricing.yaml").read_text()
    sheet.write_bytes(edited_xlsx(sheet.read_bytes(), C1="creat"))
    refused = runner.invoke(main, ["import-table", "price-computation", str(sheet), "--rules", str(rules)])
    assert refused.exit_code == 1 and "C1: the header reads `creat`" in refused.output
    for command in ("export-table", "import-table"):
        assert "Example:" in runner.invoke(main, [command, "--help"]).output


def test_grid_diff_marks_changed_cells_added_and_removed_rows_and_settings(o2c):
    from api.workbench import griddiff

    text = o2c["pricing.yaml"]
    lines = text.splitlines(keepends=True)
    first = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("- [PRC-01,"))
    reordered = "".join(lines[:first] + [lines[first + 1], lines[first]] + lines[first + 2:])
    same = griddiff.diff(grids.sections(o2c), grids.sections(dict(o2c, **{"pricing.yaml": reordered})))
    assert [t.status for t in same] == ["same"] and same[0].changed_cells == 0

    changed = text.replace("      - [PRC-02, quote,            calculate,                calculate,"
                           "                    n/a,             calculate]\n", "")
    changed = changed.replace("[PRC-04, invoice,          skip when integ,",
                              "[PRC-04, invoice,          calculate,").replace("hit: unique", "hit: first")
    changed = changed.replace("      - [PRC-08,", "      - [PRC-09X, order_x, calculate, calculate, n/a, n/a]\n"
                                                 "      - [PRC-08,")
    [table] = griddiff.diff(grids.sections(o2c), grids.sections(dict(o2c, **{"pricing.yaml": changed})))
    assert table.status == "changed" and ("hit", "unique", "first") in table.settings
    assert table.row("PRC-04").changed == {"create": ("skip when integ", "calculate")}
    assert table.row("PRC-02").status == "removed" and table.row("PRC-09X").status == "added"
    assert {r.key for r in table.rows if r.status == "same"} == {"PRC-01", "PRC-03", "PRC-05", "PRC-06", "PRC-07",
                                                                  "PRC-08"}


def test_a_table_without_a_recorded_place_refuses_the_file(o2c, monkeypatch):
    """A grid is never drawn at a guessed place: with no extent for its table, the file is refused
    by name (an error the workbench shows), whatever Python's optimisation level."""
    path = next(p for p in sorted(o2c) if grids.file_sections(p, o2c[p]) and any(
        s.grids for s in grids.file_sections(p, o2c[p])))
    original = engine.load.SourceMap.written_at

    def no_table_place(self, where):
        return None if len(where) == 3 and where[1] == "rules" else original(self, where)

    monkeypatch.setattr(engine.load.SourceMap, "written_at", no_table_place)
    with pytest.raises(grids.UnreadableFile, match=rf"{path}: table `[^`]+` has no recorded place"):
        grids.file_sections(path, o2c[path])
