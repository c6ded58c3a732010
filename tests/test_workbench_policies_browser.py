"""The policy pages in a real browser (Debian's chromium through Playwright, tests/browser.py):
the price-computation grid reads like its YAML, tables export, an edited sheet goes through
preview and publish, the diff highlights the changed cell, every POST form refuses a request
without its CSRF token, and reading works without JavaScript. Screenshots go to var/screenshots."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from test_workbench_grids import edited_xlsx

pytest_plugins = ("browser",)  # its fixtures: served, browser, visit, visit_no_js

pytestmark = pytest.mark.slow

O2C = Path(__file__).parent / "fixtures" / "o2c"
PRICE = "/ui/versions/active/tables/d365_sales/price-computation"
GRID = "table[data-table='price-computation']"


FLOW = {"flow.yaml": """\
system: flow
title: a life cycle drawn as a graph
sources:
  doc: {kind: seed, title: the flow manual}
facts:
  stage: {path: resource.stage, type: string, says: the current stage}
  target: {path: resource.target, type: string, says: the next stage}
actions:
  - names: [item.move]
    reads: [stage, target]
rules:
  - id: F-1
    kind: guard
    says: an item moves along its life cycle only
    source: [doc]
    actions: [item.move]
    deny_when:
      not:
        move: {from: stage, to: target, graph: {new: [open], open: [won, lost]}, start: [new], final: [won, lost]}
  - id: F-2
    kind: effect
    says: a permitted move is done
    source: [doc]
    actions: [item.move]
    obligations: []
""", "tests/flow.yaml": """\
base:
  context: {system: flow}
tests:
  - name: F-1 a skipped stage is refused
    action: item.move
    input: {resource: {stage: new, target: won}}
    expect: {allow: false, rules: [F-1]}
  - name: F-2 a listed move is done
    action: item.move
    input: {resource: {stage: new, target: open}}
    expect: {allow: true, rules: [F-2]}
"""}


def _written() -> dict[tuple[str, str], str]:
    table = next(r for r in yaml.safe_load((O2C / "pricing.yaml").read_text(encoding="utf-8"))["rules"]
                 if r.get("id") == "price-computation")
    return {(row[0], table["header"][c]): str(v) for row in table["body"] for c, v in enumerate(row)}


def _shown(page, grid: str = GRID) -> dict[tuple[str, str], str]:
    cells = page.locator(f"{grid} [data-row][data-column]")
    return {(c.get_attribute("data-row"), c.get_attribute("data-column")): c.inner_text().strip()
            for c in cells.all()}


def _upload_edited(visit, tmp_path: Path, role: str, **cells: str) -> None:
    """Sign in as ``role``, export the price grid, type ``cells`` into it and choose it for upload."""
    visit.sign_in(role)
    visit.go(PRICE)
    path = tmp_path / "price-computation.xlsx"
    path.write_bytes(edited_xlsx(_download(visit, "Export XLSX"), **cells))
    visit.go(PRICE + "/import")
    visit.page.get_by_label("Edited sheet (.csv or .xlsx)").set_input_files(str(path))


def _download(visit, name: str) -> bytes:
    with visit.page.expect_download() as download:
        visit.page.get_by_role("link", name=name).first.click()
    return Path(download.value.path()).read_bytes()


def test_the_price_grid_in_the_browser_is_the_yaml_table(visit):
    visit.sign_in()
    visit.go("/ui/policies")
    assert _shown(visit.page) == _written()
    headers = [h.inner_text().strip() for h in visit.page.locator(f"{GRID} thead th").all()]
    assert headers == ["rule", "entity", "create", "update", "delete", "recalculate"]
    rows = [r.inner_text().strip() for r in visit.page.locator(f"{GRID} tbody th[data-column=entity]").all()]
    assert rows[:3] == ["opportunity", "quote", "salesorder"]
    rule = visit.page.locator("#rule-PRC-09")
    assert "Denies" in rule.inner_text() and rule.get_by_role("link", name="seed-002").count() == 1


def test_a_table_exports_as_csv_and_xlsx(visit):
    import openpyxl

    visit.sign_in()
    visit.go(PRICE)
    text = _download(visit, "Export CSV").decode("utf-8-sig")
    assert text.splitlines()[0] == "rule,entity,create,update,delete,recalculate"
    book = openpyxl.load_workbook(io.BytesIO(_download(visit, "Export XLSX")))
    shown = {(row[0].value, book.active.cell(1, c + 1).value): cell.value
             for row in book.active.iter_rows(min_row=2) for c, cell in enumerate(row)}
    assert shown == _written()


def test_an_edited_sheet_is_previewed_published_and_diffed(visit, tmp_path):
    _upload_edited(visit, tmp_path, "admin", D4="skip when integ or submitted")
    visit.submit()
    assert "check found no error" in visit.page.inner_text("main")
    changed = visit.page.locator(f"{GRID} .cell-changed")
    assert changed.count() == 1 and changed.get_attribute("data-row") == "PRC-03"
    assert "skip when integ or submitted" in changed.inner_text()
    visit.page.get_by_label("Why (kept with the version)").fill("PRC-03 update: the same words in another order")
    visit.submit("main form button[type=submit]")
    assert "/ui/versions/sha256:" in visit.page.url
    new = visit.page.url.rsplit("/", 1)[1]
    visit.go(f"/ui/diff?to={new}")      # from: the version it was published on
    cell = visit.page.locator(f"{GRID} .cell-changed")
    assert cell.count() == 1 and cell.get_attribute("data-column") == "update"
    assert cell.locator("del").inner_text() == "skip when submitted or integ"
    assert cell.locator("ins").inner_text() == "skip when integ or submitted"
    assert "No combination of declared fact values decides differently" in visit.page.inner_text("main")


def test_an_auditor_may_preview_only(visit, tmp_path):
    _upload_edited(visit, tmp_path, "audit", F4="skip when nobody")
    visit.submit()
    assert "F4: unknown" in visit.page.inner_text("main")
    assert visit.page.locator("form button:has-text('Publish')").count() == 0


@pytest.mark.parametrize("form", ["upload", "publish"])
def test_a_form_posted_without_its_csrf_token_is_refused(visit, tmp_path, form):
    _upload_edited(visit, tmp_path, "admin", D4="skip when integ or submitted")
    if form == "publish":
        visit.submit()
        visit.page.get_by_label("Why (kept with the version)").fill("never published")
    visit.page.eval_on_selector("main form input[name=csrf_token]", "field => field.remove()")
    visit.submit("main form button[type=submit]", expect=400)
    assert "security token" in visit.page.inner_text("main")


def test_reading_and_diffing_work_without_javascript(visit_no_js, served):
    visit = visit_no_js
    status, body = served.api("GET", "/v1/versions")
    assert status == 200
    visit.sign_in()
    visit.go("/ui/policies")
    assert _shown(visit.page) == _written() or len(body["versions"]) > 1   # another test may have published
    visit.go("/ui/diff")
    visit.submit("main form.pick button[type=submit]")
    assert "From" in visit.page.inner_text("#summary")
    for field in visit.page.locator("main input:not([type=hidden]), main select").all():
        name = field.get_attribute("id")
        assert name and visit.page.locator(f"label[for='{name}']").count() == 1, name


def test_a_stage_graph_is_drawn_as_svg(visit, served):
    status, body = served.api("POST", "/v1/versions", {"files": FLOW, "message": "stage graph", "activate": False})
    assert status == 201, body
    visit.sign_in()
    visit.go(f"/ui/policies?version={body['id']}")
    figure = visit.page.locator("#rule-F-1 figure.stage-graph")
    assert figure.locator("svg").count() == 1
    assert {t.text_content() for t in figure.locator("svg text").all()} >= {"new", "open", "won", "lost"}
