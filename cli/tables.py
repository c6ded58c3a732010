"""``ordergate export-table`` and ``import-table``: the analyst's spreadsheet round trip from files.

The same model and checks as the workbench's pages (api/workbench/grids.py, sheets.py,
roundtrip.py): a table is exported exactly as its grid shows it; an edited sheet is read back
into the smallest change of its rule file, shown as a diff with the result of ``check`` and the
YAML tests, and written only with ``--write`` and only when it passes.
"""
from __future__ import annotations

from pathlib import Path

import click

from cli.folders import HELP, rules_folder


def _folder_files(directory: str | None) -> tuple[Path, dict[str, str]]:
    import engine

    folder = rules_folder(directory)
    try:
        return folder, engine.read_folder(folder)
    except engine.PolicyErrors as exc:
        for err in exc.errors:
            click.echo(err.render(), err=True)
        raise SystemExit(1) from None


def _system_of(files: dict[str, str], table_id: str, system: str | None) -> str:
    from api.workbench import grids

    found = [g for g in grids.grids(files) if g.id == table_id and (system is None or g.system == system)]
    if not found:
        known = ", ".join(f"{g.system}/{g.id}" for g in grids.grids(files)) or "none"
        raise click.BadParameter(f"no table `{table_id}`{f' in system `{system}`' if system else ''} "
                                 f"(tables: {known})", param_hint="TABLE")
    if len(found) > 1:
        raise click.BadParameter(f"`{table_id}` is a table of several systems; choose one with --system",
                                 param_hint="TABLE")
    return found[0].system


@click.command("export-table")
@click.argument("table")
@click.option("--rules", "directory", type=click.Path(file_okay=False), help=HELP)
@click.option("--system", help="The system of the table, when several systems have one with that id.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The file to write; .csv or .xlsx says the format.")
def export_table(table: str, directory: str | None, system: str | None, out: Path) -> None:
    """Write decision table TABLE as a spreadsheet, exactly as the workbench shows its grid.

    \b
    Example:
      ordergate export-table price-computation --rules rules/ --out price-computation.xlsx
    """
    from api.workbench import roundtrip, sheets

    kind = out.suffix.lower().lstrip(".")
    if kind not in sheets.MEDIA:
        raise click.BadParameter("the file must end in .csv or .xlsx", param_hint="--out")
    _, files = _folder_files(directory)
    grid = roundtrip.table(files, _system_of(files, table, system), table)
    out.write_bytes(sheets.to_csv(grid) if kind == "csv" else sheets.to_xlsx(grid))
    click.echo(f"wrote {out}: table {grid.id} of {grid.system}, {len(grid.rows)} rows x {len(grid.header)} columns")


@click.command("import-table")
@click.argument("table")
@click.argument("sheet", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--rules", "directory", type=click.Path(file_okay=False), help=HELP)
@click.option("--system", help="The system of the table, when several systems have one with that id.")
@click.option("--write", is_flag=True, help="Write the change into the rule file (only when check and the tests pass).")
def import_table(table: str, sheet: Path, directory: str | None, system: str | None, write: bool) -> None:
    """Read an edited SHEET of decision table TABLE back into its rule file.

    Prints the cells that changed, the diff of the rule file and what `check` and the YAML tests
    say. Nothing is written without --write; a sheet with a wrong header or row name, a formula or
    a date, or too large a file is refused naming the sheet cell (exit 1).

    \b
    Example:
      ordergate import-table price-computation price-computation.xlsx --rules rules/
    """
    from api.workbench import roundtrip, sheets

    folder, files = _folder_files(directory)
    kind = sheet.suffix.lower().lstrip(".")
    try:
        with sheet.open("rb") as stream:
            data = stream.read(sheets.MAX_SHEET_BYTES + 1)
        found = roundtrip.preview(files, _system_of(files, table, system), table, data, kind)
    except sheets.SheetError as exc:
        click.echo(f"{sheet}: {exc}; nothing changed", err=True)
        raise SystemExit(1) from None
    if found.empty:
        click.echo("the sheet changes nothing: the diff is empty")
        return
    for edit in found.edits:
        click.echo(f"{edit.cell} {edit.row} / {edit.column}: {edit.before} -> {edit.after}")
    click.echo(found.diff, nl=False)
    for problem in found.problems:
        where = f"{folder.as_posix().rstrip('/')}/{problem.where}: " if problem.where and not problem.cell else ""
        click.echo(f"problem: {where}{problem if not where else problem.message}", err=True)
    if not found.passed:
        click.echo("the change does not pass check and the YAML tests; nothing written", err=True)
        raise SystemExit(1)
    click.echo("check and the YAML tests pass")
    if write:
        (folder / found.grid.file).write_text(found.files[found.grid.file], encoding="utf-8")
        click.echo(f"wrote {folder / found.grid.file}")


def register(group: click.Group) -> None:
    group.add_command(export_table)
    group.add_command(import_table)
