"""The workbench attacked as a hostile user would: every /ui route behind its role, CSRF on every
POST, session cookies that cannot be forged or outlive their token, sign-in that never redirects off
site, hostile words (fact values, a rule's `says`, stage names, file names, messages, a search)
shown escaped — in the test client and in a real browser —, uploads that are too big, packed,
formulas or not UTF-8, CSV exports that a spreadsheet cannot run, and malformed search or try
requests: each gets a clear error page, changes nothing and answers at once."""
from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import re
import typing as t
import zipfile
import zlib
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from xml.etree import ElementTree

import pytest

from api.app import create_app
from api.testing import test_config, write_rules

pytest_plugins = ("browser",)  # its fixtures: browser (chromium); the served app here is our own

AUDIT = "audit-0d9e8c7b6a5f4e3d2c1b"
DECIDE = "decide-1a2b3c4d5e6f7a8b9c0d"
ADMIN = "admin-9e8d7c6b5a4f3e2d1c0b"
TOKENS = {"audit": [f"alice:{AUDIT}"], "decide": [f"crm:{DECIDE}"], "admin": [f"root:{ADMIN}"]}
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
FORMULA = "=cmd|' /C calc'!A0"
#: a policy whose words are hostile: a rule's `says`, enumeration values that read as spreadsheet
#: formulas, stage names that are markup (they end up in a Graphviz SVG drawn inline)
RULES = r"""system: desk
title: a policy whose words are hostile
sources:
  manual: {kind: seed, title: the manual}
facts:
  group: {path: resource.customer.group, type: enum, values: [retail, "=cmd|' /C calc'!A0", "@SUM(1+1)"], says: group}
  total: {path: resource.order.total, type: integer, min: 0, says: the order total}
  stage: {path: resource.order.stage, type: string, says: the stage}
  target: {path: resource.order.target, type: string, says: the next stage}
  notes: {path: resource.order.notes, type: list, items: {type: string}, default: [], says: notes}
actions:
  - names: [order.price]
    reads: [group, total, stage, target, notes]
rules:
  - id: G-1
    kind: guard
    says: 'XSS a move must follow the graph'
    source: [manual]
    actions: [order.price]
    deny_when:
      not:
        move:
          from: stage
          to: target
          unlisted: allowed
          graph:
            "<script>alert(3)</script>": ["--><img src=x onerror=alert(4)>"]
            "--><img src=x onerror=alert(4)>": []
  - kind: table
    id: discounts
    says: 'XSS discounts'
    source: [manual]
    layout: rows
    hit: first
    no_match: deny
    actions: [order.price]
    outcomes:
      none: []
    header: [rule, group, total, outcome]
    body:
      - [D-1, retail, {below: 100}, none]
      - [D-2, "=cmd|' /C calc'!A0", "-", none]
      - [D-3, "@SUM(1+1)", "-", none]
    rules:
      D-1: {says: 'XSS small retail orders'}
      D-2: {says: formula group}
      D-3: {says: at group}
""".replace("XSS", XSS.replace("'", "''"))
TESTS = r"""base:
  context: {system: desk}
tests:
  - name: D-1 a small retail order
    action: order.price
    input: {resource: {customer: {group: retail}, order: {total: 10, stage: a, target: b}}}
    expect: {allow: true, rules: [D-1]}
  - name: D-2 formula group
    action: order.price
    input: {resource: {customer: {group: "=cmd|' /C calc'!A0"}, order: {total: 10, stage: a, target: b}}}
    expect: {allow: true, rules: [D-2]}
  - name: D-3 at group
    action: order.price
    input: {resource: {customer: {group: "@SUM(1+1)"}, order: {total: 10, stage: a, target: b}}}
    expect: {allow: true, rules: [D-3]}
  - name: G-1 a move off the graph
    action: order.price
    input: {resource: {customer: {group: retail}, order: {total: 10, stage: "--><img src=x onerror=alert(4)>",
            target: b}}}
    expect: {allow: false, rules: [G-1]}
"""
FILES = {"desk.yaml": RULES, "tests/desk.yaml": TESTS}
TABLE = "/ui/versions/active/tables/desk/discounts"
ALLOWED = {"action": "order.price", "input": {"context": {"system": "desk"}, "resource": {
    "customer": {"group": "retail"}, "order": {"total": 10, "stage": "a", "target": "b"}}}}


def make_app(folder: Path, tokens: dict[str, list[str]] = TOKENS, name: str = "db") -> t.Any:
    rules = write_rules(folder / "rules", FILES)
    return create_app(test_config(f"sqlite:///{folder / (name + '.sqlite')}", rules, tokens=tokens, watch_interval=0))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> t.Any:
    made = make_app(tmp_path_factory.mktemp("hostile"))
    client = made.test_client()
    answered = client.post("/v1/decisions", json={**ALLOWED, "input": {**ALLOWED["input"], "note": XSS}},
                           headers={"Authorization": f"Bearer {DECIDE}"})
    assert answered.status_code == 200, answered.text
    made.config["decision_id"] = answered.get_json()["decision_id"]
    return made


def csrf_of(text: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert found, text[:500]
    return found.group(1)


def client_as(app: t.Any, secret: str | None) -> t.Any:
    client = app.test_client()
    if secret is not None:
        token = csrf_of(client.get("/ui/sign-in").text)
        assert client.post("/ui/sign-in", data={"token": secret, "csrf_token": token}).status_code == 303
    return client


def counts(app: t.Any) -> tuple[int, int, str | None]:
    """What a refused request must leave as it was: versions, logged decisions, the active version."""
    store = app.extensions["ordergate"].store
    return len(store.list_versions()), store.decision_count(), store.active_version_id()


def assert_escaped(text: str, where: str) -> None:
    for raw in ("<script>alert", "<img src=x", "onerror=alert(2)>\"", "<script>alert(3)"):
        assert raw not in text, (where, raw)


# -- every route behind its role ---------------------------------------------------------------------------------

OPEN = {"workbench.sign_in", "workbench.sign_in_post", "workbench.sign_out", "workbench.static"}
PUBLISHING = {"workbench.table_publish"}


def routes(app: t.Any) -> list[tuple[str, str, str]]:
    """(endpoint, method, a concrete path) of every workbench route but sign-in/out and static files."""
    values = {"ref": "active", "system": "desk", "table_id": "discounts", "kind": "csv", "path": "desk.yaml",
              "decision_id": app.config["decision_id"]}
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("workbench.") or rule.endpoint in OPEN:
            continue
        path = re.sub(r"<(?:[^:>]+(?:\([^)]*\))?:)?([^>]+)>", lambda m: str(values[m.group(1)]), rule.rule)
        found.extend((rule.endpoint, method, path) for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}))
    return found


def test_every_route_is_enumerated_from_the_url_map(app):
    endpoints = {endpoint for endpoint, _, _ in routes(app)}
    # the pages known today are among them; a new page module is picked up without editing this test
    assert {"workbench.versions", "workbench.policies", "workbench.table_export", "workbench.table_import",
            "workbench.table_publish", "workbench.decisions", "workbench.decision", "workbench.try_decision",
            "workbench.diff"} <= endpoints


def test_without_a_session_every_page_leads_to_sign_in_and_every_form_is_refused(app):
    before = counts(app)
    client = app.test_client()
    for endpoint, method, path in routes(app):
        response = client.open(path, method=method, data={"anything": "1"})
        if method == "GET":
            assert response.status_code == 303, (endpoint, response.status_code)
            assert response.headers["Location"].startswith("/ui/sign-in?next="), endpoint
        else:  # no session, so no CSRF token: refused before the page is reached
            assert response.status_code == 400 and "Nothing was done" in response.text, endpoint
    assert counts(app) == before


def test_a_decide_only_session_gets_403_on_every_page(app):
    before = counts(app)
    from api.auth import token_mark
    from api.workbench import core

    client = app.test_client()
    with app.test_request_context():
        mark = token_mark(DECIDE.encode(), core._mark_key())
    with client.session_transaction() as session:  # a session as a decide token would have it
        session.update(name="crm", role="decide", token=mark, csrf_token="k" * 43)
    for endpoint, method, path in routes(app):
        response = client.open(path, method=method, data={"csrf_token": "k" * 43})
        assert response.status_code == 403, (endpoint, method, response.status_code)
        assert "does not hold" in response.text and DECIDE not in response.text
    assert counts(app) == before


def test_an_auditor_reads_every_page_but_cannot_publish(app):
    client = client_as(app, AUDIT)
    token = csrf_of(client.get("/ui/versions").text)
    before = counts(app)
    for endpoint, method, path in routes(app):
        response = client.open(path, method=method, data={"csrf_token": token})
        if endpoint in PUBLISHING:
            assert response.status_code == 403, endpoint
        else:
            assert response.status_code in (200, 303, 400), (endpoint, method, response.status_code)
            assert "sign-in" not in response.headers.get("Location", ""), endpoint
    assert counts(app) == before


# -- CSRF -------------------------------------------------------------------------------------------------------


def post_routes(app: t.Any) -> list[str]:
    return [path for _, method, path in routes(app) if method == "POST"] + ["/ui/sign-out", "/ui/sign-in"]


@pytest.mark.parametrize("how", ["none", "wrong", "another session's"])
def test_every_form_without_this_sessions_token_is_refused_and_changes_nothing(app, how):
    client = client_as(app, ADMIN)
    other = csrf_of(client_as(app, ADMIN).get("/ui/versions").text)
    sent = {"none": None, "wrong": "x" * 43, "another session's": other}[how]
    before = counts(app)
    for path in post_routes(app):
        data: dict[str, t.Any] = {"token": ADMIN, "action": "desk/order.price", "message": "m", "digest": "d",
                                  "sheet": (io.BytesIO(b"rule,group\n"), "x.csv")}
        if sent is not None:
            data["csrf_token"] = sent
        response = client.post(path, data=data, content_type="multipart/form-data")
        assert response.status_code == 400, (path, how, response.status_code)
        assert "security token" in response.text and "Nothing was done" in response.text
    assert client.get("/ui/versions").status_code == 200  # sign-out did not happen either
    assert counts(app) == before


# -- the session cookie -------------------------------------------------------------------------------------------


def cookie_value(client: t.Any) -> str:
    return str(client.get_cookie("ordergate_workbench", path="/ui").value)


def with_cookie(app: t.Any, value: str) -> t.Any:
    client = app.test_client()
    client.set_cookie("ordergate_workbench", value, path="/ui")
    return client


def payload_of(value: str) -> dict[str, t.Any]:
    """What anyone holding the cookie reads in it (a leading "." marks a zlib-compressed payload)."""
    body = value.lstrip(".").split(".", 1)[0]
    data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    return t.cast(dict, json.loads(zlib.decompress(data) if value.startswith(".") else data))


def test_the_cookie_holds_no_secret_and_a_tampered_one_is_refused(app):
    value = cookie_value(client_as(app, AUDIT))
    payload = payload_of(value)
    assert set(payload) <= {"name", "role", "csrf_token", "_permanent", "token"}
    assert AUDIT not in json.dumps(payload) and ADMIN not in value
    body, signature = value.rsplit(".", 1)
    promoted = base64.urlsafe_b64encode(json.dumps({**payload, "role": "admin", "name": "root"}).encode())
    timestamp = body.rsplit(".", 1)[1]
    for forged in (body + "." + signature[:-2] + ("AA" if not signature.endswith("AA") else "BB"),
                   promoted.decode().rstrip("=") + "." + timestamp + "." + signature, "", "garbage", "." * 4000):
        response = with_cookie(app, forged).get("/ui/versions")
        assert response.status_code == 303, forged[:40]
    assert with_cookie(app, value).get("/ui/versions").status_code == 200


def test_a_session_ends_when_its_token_is_revoked_or_rotated(tmp_path, monkeypatch):
    # with a configured session secret the signing key does not change with the tokens, so the
    # session itself must show which token signed it in
    monkeypatch.setenv("ORDERGATE_SESSION_SECRET", "a-long-configured-session-secret-0123456789")
    value = cookie_value(client_as(make_app(tmp_path), AUDIT))
    assert AUDIT not in value
    assert with_cookie(make_app(tmp_path), value).get("/ui/versions").status_code == 200
    revoked = make_app(tmp_path, tokens={**TOKENS, "audit": []})
    assert with_cookie(revoked, value).get("/ui/versions").status_code == 303
    rotated = make_app(tmp_path, tokens={**TOKENS, "audit": ["alice:audit-rotated-7c6b5a4f3e2d1c0b9a8f"]})
    assert with_cookie(rotated, value).get("/ui/versions").status_code == 303
    monkeypatch.delenv("ORDERGATE_SESSION_SECRET")  # derived from the tokens: any change signs out
    value = cookie_value(client_as(make_app(tmp_path), AUDIT))
    assert with_cookie(rotated, value).get("/ui/versions").status_code == 303


# -- sign-in's next --------------------------------------------------------------------------------------------

OFF_SITE = ["https://evil.example/ui", "//evil.example/ui", "///evil.example/ui", "/\\evil.example/ui",
            "\\\\evil.example/ui", "/ui\\..\\..\\\\evil.example", "http:/evil.example/ui", "javascript:alert(1)//ui",
            " //evil.example/ui", "\t//evil.example/ui", "/ui/\r\nLocation: https://evil.example", "%2F%2Fevil.example",
            "/ui@evil.example", "https:evil.example/ui", "/ui/../v1/versions"]


@pytest.mark.parametrize("target", OFF_SITE)
def test_sign_in_never_leads_off_the_workbench(app, target):
    client = app.test_client()
    page = client.get("/ui/sign-in", query_string={"next": target})
    assert page.status_code == 200
    assert_escaped(page.text, "sign-in")
    response = client.post("/ui/sign-in", data={"token": AUDIT, "csrf_token": csrf_of(page.text), "next": target})
    location = response.headers["Location"]
    assert response.status_code == 303 and "\r" not in location and "\n" not in location, location
    landed = urlsplit(urljoin("http://127.0.0.1:8080/ui/sign-in", location))
    assert (landed.scheme, landed.netloc) == ("http", "127.0.0.1:8080"), location
    assert landed.path == "/ui" or landed.path.startswith("/ui/"), location


# -- hostile words are shown, never run ---------------------------------------------------------------------------


def test_hostile_words_are_escaped_on_every_page_and_in_the_stage_graph(app):
    client = client_as(app, AUDIT)
    decision = app.config["decision_id"]
    pages = ["/ui/policies", TABLE, f"/ui/decisions/{decision}", "/ui/decisions?text=" + XSS,
             "/ui/decisions?text=onerror", "/ui/versions/active/files/desk.yaml", "/ui/try?action=desk/order.price",
             "/ui/decisions?rule=" + XSS, "/ui/versions/" + XSS, "/ui/decisions/" + XSS, "/ui/try?action=" + XSS,
             "/ui/no-such-page/" + XSS]
    for path in pages:
        page = client.get(path)
        assert page.status_code in (200, 400, 404), (path, page.status_code)
        assert_escaped(page.text, path)
    policies = client.get("/ui/policies").text
    assert "<svg" in policies, "Graphviz drew no stage graph (is dot installed?)"
    for drawn in re.findall(r"<svg.*?</svg>", policies, re.S):
        for element in ElementTree.fromstring(drawn).iter():  # well-formed, and only drawing elements
            assert element.tag.split("}")[-1] in {"svg", "g", "title", "polygon", "path", "text", "ellipse"}, drawn
            assert not [a for a in element.attrib if a.lower().startswith("on") or a.endswith("href")], drawn
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(f"/ui/decisions/{decision}").text


def test_a_hostile_file_name_and_message_are_shown_escaped(app):
    client = client_as(app, ADMIN)
    token = csrf_of(client.get(TABLE + "/import").text)
    before = counts(app)
    named = client.post(TABLE + "/import", data={"csrf_token": token, "sheet": (io.BytesIO(b"x"), XSS + ".txt")},
                        content_type="multipart/form-data")
    assert named.status_code == 400 and "neither a .csv nor an .xlsx" in named.text
    assert_escaped(named.text, "file name")
    assert counts(app) == before


# -- uploads ---------------------------------------------------------------------------------------------------


def upload(client: t.Any, data: bytes, name: str) -> t.Any:
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    token = csrf_of(client.get(TABLE + "/import").text)
    # encoded in memory: the test client would spool a large body to a file it never closes
    boundary, body = encode_multipart({"csrf_token": token, "sheet": FileStorage(io.BytesIO(data), name)})
    return client.post(TABLE + "/import", data=body, content_type=f"multipart/form-data; boundary={boundary}")


def exported_rows(client: t.Any) -> list[list[str]]:
    body = client.get(TABLE + "/export.csv").data.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(body)))


def zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as entry:
            chunk = b"\0" * (1 << 20)
            for _ in range(80):  # 80 MB of zeros, packed to about 80 KB
                entry.write(chunk)
    return out.getvalue()


def csv_with(rows: list[list[str]], cell: tuple[int, int], value: str) -> bytes:
    edited = [list(row) for row in rows]
    edited[cell[0]][cell[1]] = value
    out = io.StringIO()
    csv.writer(out).writerows(edited)
    return out.getvalue().encode()


def test_hostile_uploads_get_a_clear_error_naming_the_cell_and_change_nothing(app):
    client = client_as(app, ADMIN)
    rows = exported_rows(client)
    before = counts(app)
    cases = [
        (b"rule,group\n" + b"x" * (4 * 1024 * 1024 + 1), "big.csv", "more than the"),
        (zip_bomb(), "bomb.xlsx", "unpacks to"),
        (b"PK\x03\x04 not really a zip", "broken.xlsx", "not an XLSX workbook"),
        (csv_with(rows, (1, 2), "=cmd|' /C calc'!A0"), "formula.csv", "C2: the cell holds a formula"),
        ("rule,group\nD-1,caf\u00e9".encode("latin-1"), "latin.csv", "not UTF-8"),
        (csv_with(rows, (1, 0), "D-9"), "renamed.csv", "A2: the row name reads"),
        (csv_with(rows, (0, 1), "groop"), "header.csv", "B1: the header reads"),
        (csv_with(rows, (1, 2), "{below: 100"), "broken-cell.csv", "C2"),
        (csv_with(rows, (1, 2), "{between: [1, 2, 3], nonsense: yes}"), "odd-cell.csv", "C2"),
        (csv_with(rows, (1, 2), "- [a, b]\n- c"), "block.csv", "C2"),
        (b"\"unterminated,\n" * 10, "quote.csv", ""),
        (b"rule,group,total,outcome\n" + b"D-1,retail,{below: 100},none,extra\n", "wide.csv", "E2"),
    ]
    for data, name, expected in cases:
        response = upload(client, data, name)
        text = response.text
        refused = response.status_code == 400 or "does not pass" in text
        assert refused and "Publish as a new version" not in text, (name, response.status_code)
        assert expected in text, (name, re.findall(r'role="alert">(.*?)</', text, re.S)[:1] or text[-600:])
    assert counts(app) == before


def test_a_csv_export_never_hands_a_spreadsheet_a_formula_and_reads_back_the_same(app):
    client = client_as(app, AUDIT)
    rows = exported_rows(client)
    groups = {row[0]: row[1] for row in rows[1:]}
    # a cell of the rule file that a spreadsheet would run is written as text ('=...), the rest as is
    assert groups == {"D-1": "retail", "D-2": "'" + FORMULA, "D-3": "'@SUM(1+1)"}
    assert rows[2][2] == "-" and rows[1][2] == "{below: 100}"
    for cell in (cell for row in rows for cell in row if cell.startswith(("=", "+", "-", "@", "\t", "\r"))):
        assert re.fullmatch(r"-|[-+]?[0-9]+", cell), cell
    unchanged = upload(client, client.get(TABLE + "/export.csv").data, "same.csv")
    assert unchanged.status_code == 200 and "The sheet changes nothing" in unchanged.text


def test_guarding_a_csv_cell_is_undone_exactly_on_import():
    from api.workbench.sheets import guarded, unguarded

    for text in ["=1+1", "'=1+1", "''@x", "+1", "-1", "-", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", "\tx", "plain",
                 "'quoted", "{at_least: -5}", "", "'", "-1.5", "+", "=", "'-"]:
        assert unguarded(guarded(text)) == text, text
        assert guarded(text) in (text, "'" + text), text
    assert guarded("=1+1") == "'=1+1" and guarded("-5") == "-5" and guarded("-") == "-"


# -- malformed searches and tries -------------------------------------------------------------------------------

BAD_SEARCHES = {
    "since=yesterday": "`from` must be a date and time",
    "until=2026-13-45T99:00": "`until` must be a date and time",
    "since=" + "9" * 5000: "`from` must be a date and time",
    "size=1000000000": "`size` must be",
    "size=-5": "`size` must be",
    "size=lots": "`size` must be",
    "older=-1": "page link",
    "older=99999999999999999999999": "page link",
    "newer=abc~def": "page link",
    "older=" + "1" * 5000: "page link",
    "version=sha256:ffffffffffffffff": "no stored version",
    "version=" + XSS: "no stored version",
    "allow=maybe": "`outcome` must be",
}


@pytest.mark.parametrize("query", list(BAD_SEARCHES))
def test_a_malformed_search_is_a_clear_400_page(app, query):
    client = client_as(app, AUDIT)
    response = client.get("/ui/decisions?" + query)
    assert response.status_code == 400 and response.mimetype == "text/html", (query, response.status_code)
    assert BAD_SEARCHES[query] in response.text, query
    assert_escaped(response.text, query)


def test_a_search_text_is_bounded_and_never_sql(app):
    client = client_as(app, AUDIT)
    response = client.get("/ui/decisions", query_string={"text": "%_\\" * 3000})
    assert response.status_code == 400 and "the search text has at most 200 characters" in response.text
    response = client.get("/ui/decisions", query_string={"text": "%_\\" * 60, "caller": "'; DROP TABLE x; --"})
    assert response.status_code == 200 and "decisions logged" in response.text


@pytest.mark.parametrize("path,status,says", [
    ("/ui/diff?from=sha256:ffffffffffff", 404, "No such version"),
    ("/ui/diff?to=" + "f" * 3000, 404, "No such version"),
    ("/ui/diff/impact?from=active&to=active&replay=1&since=not-a-time", 400, "must be an ISO-8601 time"),
    ("/ui/versions?after=nonsense", 400, "out of date"),
    ("/ui/versions/active/files/..%2F..%2Fetc%2Fpasswd", 404, "No such file"),
    ("/ui/versions/active/tables/desk/nothing", 404, "No such table"),
    ("/ui/decisions/01ARZ3NDEKTSV4RRFFQ69G5FAV", 404, "No such decision"),
    ("/ui/policies?version=" + XSS, 404, "No such version"),
])
def test_malformed_references_are_clear_error_pages(app, path, status, says):
    response = client_as(app, AUDIT).get(path)
    assert response.status_code == status and says in response.text, (path, response.status_code)
    assert_escaped(response.text, path)


def test_a_decision_replayed_against_an_unknown_version_is_refused(app):
    before = counts(app)
    response = client_as(app, AUDIT).get(f"/ui/decisions/{app.config['decision_id']}?replay=sha256:0000")
    assert response.status_code == 404 and "No such version" in response.text
    assert counts(app) == before


@pytest.mark.parametrize("form", [
    {"action": "nowhere/order.price"}, {"action": "desk/order.delete"}, {"action": "desk/"}, {"action": "/"},
    {"action": XSS}, {"action": "desk/order.price", "fact.resource.order.total": "ten"},
    {"action": "desk/order.price", "fact.resource.customer.group": "=cmd"},
    {"action": "desk/order.price", "fact.resource.order.total": "9" * 5000},
    {"action": "desk/order.price", "fact.resource.order.total": "-1"},
    {"action": "desk/order.price", "fact.resource.order.notes": "[" * 100000 + "]" * 100000},
    {"action": "desk/order.price", "fact.resource.order.notes": "[" * 40 + "]" * 40},
    {"action": "desk/order.price", "fact.resource.order.notes": '{"a":' * 50000 + "1" + "}" * 50000},
    {"action": "desk/order.price", "fact.resource.order.notes": "[NaN]"},
    {"action": "desk/order.price", "fact.resource.order.notes": '["' + "x" * (2 << 20) + '"]'},
])
def test_try_with_a_bad_action_or_fact_is_refused_and_never_logged(app, form):
    client = client_as(app, AUDIT)
    token = csrf_of(client.get("/ui/try").text)
    before = counts(app)
    response = client.post("/ui/try", data={"csrf_token": token, **form})
    assert response.status_code in (200, 400, 404), (form, response.status_code)
    text = response.text
    assert response.status_code != 200 or 'data-allow="true"' not in text, form   # never allowed by accident
    assert "No such action" in text or "problem" in text or "refused" in text or 'data-allow="false"' in text, form
    assert_escaped(text, str(form))
    assert counts(app) == before


def test_every_page_and_error_page_carries_the_security_headers(app):
    client = client_as(app, AUDIT)
    paths = [path for _, method, path in routes(app) if method == "GET"]
    for path in paths + ["/ui/sign-in", "/ui/nothing-here", "/ui/decisions?since=bad"]:
        headers = client.get(path).headers
        policy = headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in policy and "script-src 'self'" in policy and "'unsafe-inline'" not in policy
        assert "frame-ancestors 'none'" in policy and "form-action 'self'" in policy, path
        assert headers.get("X-Content-Type-Options") == "nosniff" and headers.get("X-Frame-Options") == "DENY", path
        assert headers.get("Cache-Control") == "no-store" and headers.get("Referrer-Policy") == "same-origin", path
    signed_out = app.test_client().get("/ui/versions")
    assert "Content-Security-Policy" in signed_out.headers and signed_out.status_code == 303


# -- in a real browser -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_served(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[t.Any]:
    import browser

    browser.need_chromium()
    folder = tmp_path_factory.mktemp("hostile-served")
    rules = write_rules(folder / "rules", FILES)
    server = browser.start_server(folder, rules)  # on a port the kernel hands out
    try:
        yield server
    finally:
        browser.stop_server(server)


INJECTED = "img[src='x'], img[onerror], script, iframe, [onerror], [onload], svg script, svg foreignObject"


def assert_nothing_injected(page: t.Any, dialogs: list[str], where: str) -> None:
    assert page.query_selector_all(INJECTED) == [], where
    assert dialogs == [], (where, dialogs)


def test_hostile_words_never_run_in_a_real_browser(browser, hostile_served, tmp_path):
    from browser import Visit

    logged = hostile_served.decide("order.price", {**ALLOWED["input"], "note": XSS})
    assert logged.get("decision_id"), logged
    context = browser.new_context(java_script_enabled=True, viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        visit = Visit(page, hostile_served, "hostile")
        visit.go("/ui/sign-in?next=" + XSS.replace("<", "%3C").replace(">", "%3E").replace('"', "%22"))
        page.get_by_label("Access token (secret)").fill(visit.secret("admin"))
        visit.submit()
        assert page.url.startswith(hostile_served.url + "/ui/"), page.url
        for path in ["/ui/policies", TABLE, f"/ui/decisions/{logged['decision_id']}",
                     "/ui/versions/active/files/desk.yaml", "/ui/try?action=desk/order.price"]:
            visit.go(path)
            assert_nothing_injected(page, dialogs, path)
        visit.go("/ui/policies")
        assert len(page.query_selector_all("svg g.node")) == 2, "the stage graph is drawn, its names as text"
        visit.go("/ui/decisions")
        page.fill("#text", XSS[:60])
        visit.submit("form[role=search] button[type=submit]", expect=200)
        assert_nothing_injected(page, dialogs, "search")
        for path in ["/ui/versions/" + XSS, "/ui/try?action=" + XSS, "/ui/nothing/" + XSS]:
            visit.go(path.replace("<", "%3C").replace(">", "%3E").replace('"', "%22").replace(" ", "%20"),
                     expect=404)
            assert_nothing_injected(page, dialogs, path)
        # an upload named as markup, then a change published with a message that is markup
        visit.go(TABLE + "/import")
        page.set_input_files("#sheet", files=[{"name": XSS + ".txt", "mimeType": "text/plain", "buffer": b"x"}])
        visit.submit(expect=400)
        assert_nothing_injected(page, dialogs, "file name")
        rows = list(csv.reader(io.StringIO(page.request.get(hostile_served.url + TABLE + "/export.csv")
                                           .body().decode("utf-8-sig"))))
        rows[1][2] = "{below: 200}"
        out = io.StringIO()
        csv.writer(out).writerows(rows)
        visit.go(TABLE + "/import")
        page.set_input_files("#sheet", files=[{"name": "edited.csv", "mimeType": "text/csv",
                                               "buffer": out.getvalue().encode()}])
        visit.submit()
        assert_nothing_injected(page, dialogs, "preview")
        page.fill("#message", XSS)
        visit.submit("form[action$='/publish'] button[type=submit]")
        assert_nothing_injected(page, dialogs, "published")
        assert XSS in page.inner_text("main"), "the message is shown as text"
        visit.go("/ui/versions")
        assert_nothing_injected(page, dialogs, "versions")
        assert XSS in page.inner_text("main")
    finally:
        context.close()


def _with_sheet_xml(xlsx: bytes, edit: t.Callable[[str], str]) -> bytes:
    """``xlsx`` with its sheet's XML rewritten by ``edit``."""
    source = zipfile.ZipFile(io.BytesIO(xlsx))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in source.namelist():
            data = source.read(name)
            archive.writestr(name, edit(data.decode()).encode() if name == "xl/worksheets/sheet1.xml" else data)
    return out.getvalue()


def _doctype(text: str, entities: str, cell: str) -> str:
    at = text.index("<worksheet")
    return text[:at] + f"<!DOCTYPE worksheet [{entities}]>" + text[at:].replace(">retail<", f">{cell}<", 1)


def test_an_xlsx_with_xml_entities_is_refused_clearly(app):
    client = client_as(app, ADMIN)
    exported = client.get(TABLE + "/export.xlsx").data
    laughs = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
    before = counts(app)
    for name, entities, cell in [("laughs.xlsx", laughs, "&i;"),
                                 ("external.xlsx", '<!ENTITY x SYSTEM "file:///etc/hostname">', "&x;")]:
        hostile = _with_sheet_xml(exported, lambda text, e=entities, c=cell: _doctype(text, e, c))
        response = upload(client, hostile, name)
        assert response.status_code == 400 and "cannot be read" in response.text, (name, response.status_code)
        assert "aaaaaaaaaa" not in response.text and "Internal error" not in response.text
    assert counts(app) == before


def test_a_publish_confirm_that_differs_from_its_preview_is_refused(app):
    client = client_as(app, ADMIN)
    rows = exported_rows(client)
    preview = upload(client, csv_with(rows, (1, 2), "{below: 200}"), "edited.csv")
    assert preview.status_code == 200 and "Publish as a new version" in preview.text
    form = {"csrf_token": csrf_of(preview.text), "digest": re.search(r'name="digest" value="([^"]+)"',
                                                                     preview.text).group(1),
            "cell": "C2", "value": "{below: 200}", "message": "why"}
    before = counts(app)
    for change, says in [({"value": "{below: 999}"}, "differs from the one previewed"),
                         ({"cell": "Z99"}, "names a cell the table does not have"),
                         ({"cell": "A2", "value": "D-9"}, "the row name reads"),
                         ({"digest": "0" * 64}, "differs from the one previewed"),
                         ({"message": "  "}, "say why"),
                         ({"message": "x" * 20000}, "message is longer than 10000 characters"),
                         ({"cell": "C2", "value": XSS}, "differs from the one previewed")]:
        response = client.post(TABLE + "/publish", data={**form, **change})
        assert response.status_code == 400 and says in response.text, (change.keys(), response.status_code)
        assert "Internal error" not in response.text
        assert_escaped(response.text, str(change.keys()))
    assert counts(app) == before


def test_secrets_never_reach_the_server_log(hostile_served):
    import urllib.request

    from browser import TOKENS

    # a sign-in form sent without its CSRF token, and the browser test's sign-ins before it
    request = urllib.request.Request(hostile_served.url + "/ui/sign-in", data=b"token=audit-wrong-0000000000000000")
    with contextlib.suppress(OSError):
        urllib.request.urlopen(request, timeout=30)

    logged = hostile_served.log.read_text()
    assert "audit-wrong-0000000000000000" not in logged
    assert not [secret for _, secret in TOKENS.values() if secret in logged]
