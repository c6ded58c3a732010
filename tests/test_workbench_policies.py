"""The policy pages through Flask's test client, on the o2c fixture: grids, sentences, stage graphs,
export, the import preview (audit) and publish (admin), and the diff between two versions."""
from __future__ import annotations

import html
import io
import re
import shutil
from pathlib import Path

import pytest
from test_workbench_grids import edited_xlsx

from api.app import create_app
from api.testing import test_config

openpyxl = pytest.importorskip("openpyxl")

FIXTURES = Path(__file__).parent / "fixtures"
AUDIT = "audit-6b2d9e4f1a7c3058d2b6"
ADMIN = "admin-1f8c3a6e9d2b5047c1f8"
TOKENS = {"audit": [f"alice:{AUDIT}"], "admin": [f"root:{ADMIN}"], "decide": []}
PRICE = "/ui/versions/active/tables/d365_sales/price-computation"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("policies")
    rules = folder / "rules"
    shutil.copytree(FIXTURES / "o2c", rules)
    config = test_config(f"sqlite:///{folder / 'db.sqlite'}", rules, tokens=TOKENS, watch_interval=0)
    return create_app(config)


DESK = {"desk.yaml": """\
system: desk
title: discounts by group and order total
sources:
  manual: {kind: seed, title: the discount manual, url: "https://example.org/discounts"}
facts:
  group: {path: resource.customer.group, type: enum, values: [retail, trade, staff], says: the customer group}
  total: {path: resource.order.total, type: integer, min: 0, says: the order total}
obligations:
  discount:
    says: give a discount
    params:
      percent: {type: integer}
actions:
  - names: [order.price]
    reads: [group, total]
rules:
  - kind: table
    id: discounts
    says: discounts by group and order total, first row wins
    source: [manual]
    layout: rows
    hit: first
    no_match: deny
    actions: [order.price]
    outcomes:
      d5: [{name: discount, params: {percent: 5}}]
      none: []
    header: [rule, group,  total,           outcome]
    body:
      - [D-1,  retail, {below: 100},    none]   # small orders
      - [D-2,  retail, {at_least: 100}, d5]
      - [D-3,  trade,  "-",             d5]
    rules:
      D-1: {says: small retail orders get no discount}
      D-2: {says: large retail orders get 5%}
      D-3: {says: trade customers get 5%}
""", "tests/desk.yaml": """\
base:
  context: {system: desk}
tests:
  - name: D-1 a small retail order
    action: order.price
    input: {resource: {customer: {group: retail}, order: {total: 10}}}
    expect: {allow: true, rules: [D-1]}
  - name: D-2 a large retail order
    action: order.price
    input: {resource: {customer: {group: retail}, order: {total: 500}}}
    expect: {allow: true, rules: [D-2], obligations: [{name: discount, params: {percent: 5}}]}
  - name: D-3 a trade order
    action: order.price
    input: {resource: {customer: {group: trade}, order: {total: 5}}}
    expect: {allow: true, rules: [D-3], obligations: [{name: discount, params: {percent: 5}}]}
  - name: staff match no row
    action: order.price
    input: {resource: {customer: {group: staff}, order: {total: 5}}}
    expect: {allow: false}
"""}


def csrf_of(text: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)


def client_as(app, secret: str):
    client = app.test_client()
    token = csrf_of(client.get("/ui/sign-in").text)
    response = client.post("/ui/sign-in", data={"token": secret, "csrf_token": token})
    assert response.status_code == 303
    return client


def cells(page: str, table: str) -> dict[tuple[str, str], str]:
    """(row, column) -> the text of each cell of ``table`` on the page (labels included)."""
    block = page[page.index(f'data-table="{table}"'):]
    block = block[:block.index("</table>")]
    found = re.findall(r'<t[hd][^>]*data-row="([^"]+)" data-column="([^"]+)"[^>]*>(.*?)</t[hd]>', block, re.S)
    return {(r, c): html.unescape(re.sub(r"<[^>]+>", "", text)).strip() for r, c, text in found}


def test_policies_page_shows_the_price_grid_as_the_yaml_writes_it(app):
    import yaml

    page = client_as(app, AUDIT).get("/ui/policies")
    assert page.status_code == 200
    shown = cells(page.text, "price-computation")
    written = next(r for r in yaml.safe_load((FIXTURES / "o2c" / "pricing.yaml").read_text())["rules"]
                   if r.get("id") == "price-computation")
    header = written["header"]
    assert {(row[0], header[c]): str(v) for row in written["body"] for c, v in enumerate(row)} == shown
    assert "unique: at most one row matches" in page.text
    assert 'id="rule-PRC-09"' in page.text and "Denies" in page.text
    assert 'href="https://learn.microsoft.com/en-us/dynamics365/sales/enable-sales-order-processing-integration"' \
        in page.text


def test_export_downloads_csv_and_xlsx_of_the_grid(app):
    client = client_as(app, AUDIT)
    csv_response = client.get(PRICE + "/export.csv")
    assert csv_response.status_code == 200 and csv_response.mimetype == "text/csv"
    assert "attachment" in csv_response.headers["Content-Disposition"]
    assert csv_response.data.decode("utf-8-sig").splitlines()[3] == \
        "PRC-03,salesorder,skip when integ,skip when submitted or integ,n/a,skip when submitted"
    xlsx = client.get(PRICE + "/export.xlsx")
    book = openpyxl.load_workbook(io.BytesIO(xlsx.data))
    assert book.active["D4"].value == "skip when submitted or integ"


def _upload(client, data: bytes, name: str = "price.xlsx"):
    page = client.get(PRICE + "/import")
    return client.post(PRICE + "/import", data={"csrf_token": csrf_of(page.text), "sheet": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_an_auditor_previews_an_import_but_cannot_publish(app):
    client = client_as(app, AUDIT)
    exported = client.get(PRICE + "/export.xlsx").data
    same = _upload(client, exported)
    assert same.status_code == 200 and "changes nothing" in same.text
    edited = _upload(client, edited_xlsx(exported, D4="skip when integ or submitted"))
    assert edited.status_code == 200
    assert "check found no error" in edited.text and "Publishing needs the <code>admin</code> role" in edited.text
    assert 'class="cell-changed"' in edited.text
    refused = client.post(PRICE + "/publish", data={"csrf_token": csrf_of(edited.text), "cell": "D4",
                                                    "value": "skip when integ or submitted", "message": "x"})
    assert refused.status_code == 403


def test_a_bad_sheet_names_the_cell_and_changes_nothing(app):
    client = client_as(app, AUDIT)
    exported = client.get(PRICE + "/export.xlsx").data
    response = _upload(client, edited_xlsx(exported, C1="creat"))
    assert response.status_code == 400 and "C1: the header reads `creat`" in response.text
    unknown = _upload(client, edited_xlsx(exported, F4="skip when nobody"))
    assert unknown.status_code == 200 and 'data-cell="F4"' in unknown.text and "cannot be published" in unknown.text


def test_an_admin_publishes_the_previewed_change_and_the_diff_highlights_it(app):
    client = client_as(app, ADMIN)
    before = client.get("/ui/policies").text
    active = re.search(r'<option value="(sha256:[0-9a-f]+)" selected', before).group(1)
    exported = client.get(PRICE + "/export.xlsx").data
    preview = _upload(client, edited_xlsx(exported, D4="skip when integ or submitted"))
    digest = re.search(r'name="digest" value="([0-9a-f]+)"', preview.text).group(1)
    form = {"csrf_token": csrf_of(preview.text), "digest": digest, "cell": "D4",
            "value": "skip when integ or submitted", "message": "reorder the words of PRC-03 update"}
    no_csrf = client.post(PRICE + "/publish", data={k: v for k, v in form.items() if k != "csrf_token"})
    assert no_csrf.status_code == 400
    tampered = client.post(PRICE + "/publish", data=dict(form, value="calculate"))
    assert tampered.status_code == 400 and "differs from the one previewed" in tampered.text
    done = client.post(PRICE + "/publish", data=dict(form, activate="on"))
    assert done.status_code == 303
    new = done.headers["Location"].rsplit("/", 1)[1]
    assert new != active
    diff = client.get(f"/ui/diff?from={active}&to={new}")
    assert diff.status_code == 200
    changed = re.findall(r'class="cell-changed"[^>]*>(.*?)</td>', diff.text, re.S)
    assert len(changed) == 1 and "skip when submitted or integ" in changed[0] and "skip when integ or submitted" \
        in changed[0]
    assert "0 rules added, 0 removed, 1 changed" in diff.text
    assert "No combination of declared fact values decides differently" in diff.text
    impact = client.get(f"/ui/diff/impact?from={active}&to={new}&replay=1&action=salesorder.update")
    assert impact.status_code == 200 and "would change" in impact.text


def test_a_reordered_table_is_no_change_in_behaviour(app):
    client = client_as(app, ADMIN)
    runtime = app.extensions["ordergate"]
    active = runtime.store.active_version_id()
    files = dict(runtime.store.get_version(active).files)
    lines = files["pricing.yaml"].splitlines(keepends=True)
    first = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("- [PRC-01,"))
    lines[first], lines[first + 1] = lines[first + 1], lines[first]
    files["pricing.yaml"] = "".join(lines)
    moved = runtime.store.publish(files, author="root", message="rows reordered", activate=False)
    page = client.get(f"/ui/diff?from={active}&to={moved.id}")
    assert page.status_code == 200 and "no change in behaviour" in page.text
    assert "cell-changed" not in page.text and "No table changed" in page.text


def test_a_row_table_reads_with_its_hit_policy_and_no_match_and_round_trips(app):
    runtime = app.extensions["ordergate"]
    desk = runtime.store.publish(DESK, author="root", message="a row table", activate=False)
    client = client_as(app, ADMIN)
    page = client.get(f"/ui/policies?version={desk.id}")
    assert page.status_code == 200
    assert "first: the first matching row, top down" in page.text and "<dt>No match</dt><dd>deny</dd>" in page.text
    shown = cells(page.text, "discounts")
    assert shown[("D-1", "total")] == "{below: 100}" and shown[("D-3", "total")] == "-"
    assert shown[("D-2", "outcome")] == "d5"
    base = f"/ui/versions/{desk.id}/tables/desk/discounts"
    text = client.get(base + "/export.csv").data.decode("utf-8-sig")
    assert text.splitlines()[1] == "D-1,retail,{below: 100},none"
    edited = text.replace("D-2,retail,{at_least: 100},d5", "D-2,retail,{at_least: 200},d5").encode()
    form = client.get(base + "/import")
    preview = client.post(base + "/import", data={"csrf_token": csrf_of(form.text),
                                                  "sheet": (io.BytesIO(edited), "discounts.csv")},
                          content_type="multipart/form-data")
    assert preview.status_code == 200 and 'data-cell="C3"' in preview.text
    assert "+      - [D-2,  retail, {at_least: 200}, d5]" in html.unescape(preview.text)
    assert "# small orders" in html.unescape(preview.text)          # the comment of the row above is kept
    assert "check found no error" in preview.text           # the YAML tests still hold at 200


def test_names_in_sentences_are_code_and_everything_else_is_escaped():
    from api.workbench.page_policies import ticks

    assert str(ticks("`sop` is yes and `<b>` <script>")) == \
        "<code>sop</code> is yes and <code>&lt;b&gt;</code> &lt;script&gt;"


def test_importing_into_a_version_that_is_not_active_says_so(app):
    runtime = app.extensions["ordergate"]
    files = dict(runtime.store.get_version(runtime.store.active_version_id()).files)
    files["pricing.yaml"] = files["pricing.yaml"].replace("salesorder_line,  skip when integ or submitted,",
                                                          "salesorder_line,  skip when submitted or integ,")
    other = runtime.store.publish(files, author="root", message="PRC-07 create: words reordered", activate=False)
    client = client_as(app, AUDIT)
    assert 'id="not-active"' not in client.get(PRICE + "/import").text
    page = client.get(f"/ui/versions/{other.id}/tables/d365_sales/price-computation/import")
    assert page.status_code == 200 and 'id="not-active"' in page.text
