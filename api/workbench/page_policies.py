"""Policies rendered like their sources: a version's decision tables as the grids their rule files
write (api/workbench/grids.py), its guards and effects as sentences, its stage graphs drawn; each
table exported as CSV or XLSX and an edited sheet imported back as a previewed, checked change
that an admin publishes as a new version (api/workbench/roundtrip.py)."""
from __future__ import annotations

import re
import threading
import typing as t
from collections import OrderedDict
from dataclasses import dataclass

from flask import Response, g, redirect, request, url_for
from markupsafe import Markup, escape

from api.workbench import grids, roundtrip, sentences, sheets
from api.workbench.core import PageError, bp, call, render, requires_role, resolve, runtime, section, store


@dataclass(frozen=True)
class View:
    """What the policy pages show of one version, built once per version id."""

    version_id: str
    files: dict[str, str]
    sections: tuple[grids.Section, ...]
    rules: tuple[sentences.RuleSentence, ...]

    def grid(self, system: str, table_id: str) -> grids.Grid:
        found = grids.find(tuple(gr for s in self.sections for gr in s.grids), system, table_id)
        if found is None:
            raise PageError(404, "No such table", f"This version has no table `{table_id}` in system `{system}`.")
        return found


_VIEWS: OrderedDict[str, View] = OrderedDict()
_LOCK = threading.Lock()


def view(version_id: str) -> View:
    """The view of a stored version (cached by id: a stored version never changes)."""
    with _LOCK:
        found = _VIEWS.get(version_id)
        if found is not None:
            _VIEWS.move_to_end(version_id)
            return found
    files = dict(call(store().get_version, version_id).files or {})
    policy_set = call(store().policy_set, version_id)
    read = grids.version_sections(version_id, files)
    made = View(version_id, files, read, sentences.sentences(policy_set, read))
    with _LOCK:
        _VIEWS[version_id] = made
        while len(_VIEWS) > 16:
            _VIEWS.popitem(last=False)
    return made


_TICKS = re.compile(r"`([^`]*)`")


@bp.app_template_filter("ticks")
def ticks(text: str | None) -> Markup:
    """Text with `names` shown as code: escaped first, so only the <code> tags are markup."""
    return Markup(_TICKS.sub(r"<code>\1</code>", str(escape(text or ""))))


def _version_ref() -> str:
    return resolve(request.args.get("version") or "active")


@bp.get("/policies")
@requires_role("audit")
def policies() -> t.Any:
    version_id = _version_ref()
    shown = view(version_id)
    return render("policies.html", title="Policies", view=shown, active=call(store().active_version_id),
                  versions=call(store().list_versions))


@bp.get("/versions/<ref>/tables/<system>/<table_id>")
@requires_role("audit")
def table(ref: str, system: str, table_id: str) -> t.Any:
    version_id = resolve(ref)
    shown = view(version_id)
    grid = shown.grid(system, table_id)
    return render("table.html", title=f"Table {table_id}", view=shown, grid=grid,
                  rules={r.id: r for r in shown.rules})


@bp.get("/versions/<ref>/tables/<system>/<table_id>/export.<any(csv, xlsx):kind>")
@requires_role("audit")
def table_export(ref: str, system: str, table_id: str, kind: str) -> Response:
    version_id = resolve(ref)
    grid = view(version_id).grid(system, table_id)
    body = sheets.to_csv(grid) if kind == "csv" else sheets.to_xlsx(grid, version_id)
    response = Response(body, mimetype=sheets.MEDIA[kind])
    response.headers["Content-Disposition"] = f'attachment; filename="{sheets.filename(grid, kind)}"'
    return response


# -- import: upload, preview, publish ----------------------------------------------------------------
def _upload() -> tuple[bytes, str]:
    upload = request.files.get("sheet")
    if upload is None or not upload.filename:
        raise sheets.SheetError("choose the edited sheet (.csv or .xlsx) to upload")
    name = upload.filename.lower()
    kind = "xlsx" if name.endswith(".xlsx") else "csv" if name.endswith(".csv") else None
    if kind is None:
        raise sheets.SheetError(f"`{upload.filename}` is neither a .csv nor an .xlsx file")
    data = upload.stream.read(sheets.MAX_SHEET_BYTES + 1)
    return data, kind


def _import_page(shown: View, grid: grids.Grid, *, status: int = 200, error: str | None = None,
                 preview: roundtrip.Preview | None = None) -> t.Any:
    return render("table_import.html", status, title=f"Import into {grid.id}", view=shown, grid=grid,
                  error=error, preview=preview, can_publish="admin" in g.user.roles,
                  active=call(store().active_version_id),
                  changed={(e.row, e.column): e for e in (preview.edits if preview else ())})


@bp.get("/versions/<ref>/tables/<system>/<table_id>/import")
@requires_role("audit")
def table_import_form(ref: str, system: str, table_id: str) -> t.Any:
    shown = view(resolve(ref))
    return _import_page(shown, shown.grid(system, table_id))


@bp.post("/versions/<ref>/tables/<system>/<table_id>/import")
@requires_role("audit")
def table_import(ref: str, system: str, table_id: str) -> t.Any:
    """Preview only: the change, its diff and its check; nothing is written (audit may do this)."""
    shown = view(resolve(ref))
    grid = shown.grid(system, table_id)
    try:
        data, kind = _upload()
        found = roundtrip.preview(shown.files, system, table_id, data, kind)
    except sheets.SheetError as exc:
        return _import_page(shown, grid, status=400, error=str(exc))
    return _import_page(shown, grid, preview=found)


def _edited_sheet(grid: grids.Grid) -> list[list[str]]:
    """The sheet the preview showed, rebuilt from the confirm form's cells (``cell`` + ``value``)."""
    sheet = grid.sheet()
    names = {sheets.ref(r, c): (r, c) for r in range(len(sheet)) for c in range(len(sheet[0]))}
    for name, value in zip(request.form.getlist("cell"), request.form.getlist("value"), strict=False):
        if name not in names:
            raise sheets.SheetError("the confirmed change names a cell the table does not have", name)
        r, c = names[name]
        sheet[r][c] = value
    return sheet


@bp.post("/versions/<ref>/tables/<system>/<table_id>/publish")
@requires_role("admin")
def table_publish(ref: str, system: str, table_id: str) -> t.Any:
    """Publish the previewed change as a new version (checked and tested again by publishing)."""
    shown = view(resolve(ref))
    grid = shown.grid(system, table_id)
    message = request.form.get("message", "").strip()
    try:
        changes = sheets.edits(grid, _edited_sheet(grid))
        if not changes:
            raise sheets.SheetError("the sheet changes no cell; there is nothing to publish")
        candidate = dict(shown.files)
        candidate[grid.file] = sheets.apply(shown.files[grid.file], grid, changes)
        if roundtrip.Preview(grid, tuple(changes), candidate, "").digest != request.form.get("digest"):
            raise sheets.SheetError("the change differs from the one previewed; upload the sheet again")
        if not message:
            raise sheets.SheetError("say why in the message: it is kept with the version")
    except sheets.SheetError as exc:
        return _import_page(shown, grid, status=400, error=str(exc))
    version, rejected = call(_publish, candidate, g.user.name, message, request.form.get("activate") == "on")
    if rejected is not None:
        return _import_page(shown, grid, status=400, error=f"publishing refused the change: {rejected}")
    return redirect(url_for("workbench.version", ref=version.id), 303)


def _publish(files: dict[str, str], author: str, message: str, activate: bool) -> tuple[t.Any, t.Any]:
    """``(version, None)``, or ``(None, PublishRejected)`` when checking or testing refuses it."""
    from api.admin import publish_candidate, serve_everywhere_of
    from store import PublishRejected

    try:
        version = publish_candidate(runtime(), files, author, message, activate)
    except PublishRejected as exc:
        return None, exc
    if activate:
        serve_everywhere_of(runtime(), version.id)
    return version, None


section("workbench.policies", "workbench.table", "workbench.table_import_form", "workbench.table_import")
