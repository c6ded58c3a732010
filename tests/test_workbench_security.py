"""The workbench's security properties through Flask's test client: the session cookie's flags and
contents, CSRF on every form, roles, sign-in and sign-out, and authentication off (loopback only)."""
from __future__ import annotations

import base64
import json
import re
import zlib

import pytest

from api.app import create_app
from api.testing import SHOP, test_config, write_rules

AUDIT = "audit-4c1e9b7f2a6d8053e1c4"
DECIDE = "decide-7a2f5c9e1b3d6084f2a7"
ADMIN = "admin-8d3b6f1a9c2e5074b3d8"
TOKENS = {"audit": [f"alice:{AUDIT}"], "decide": [f"crm:{DECIDE}"], "admin": [f"root:{ADMIN}"]}


def make_app(tmp_path, name="db", tokens=TOKENS, **overrides):
    rules = write_rules(tmp_path / "rules", SHOP)
    config = test_config(f"sqlite:///{tmp_path / (name + '.sqlite')}", rules, tokens=tokens, watch_interval=0,
                         **overrides)
    return create_app(config)


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, secret=AUDIT, **kwargs):
    token = csrf_of(client.get("/ui/sign-in").text)
    return client.post("/ui/sign-in", data={"token": secret, "csrf_token": token, "next": "/ui/versions"}, **kwargs)


def cookie_header(response) -> str:
    return next(v for k, v in response.headers.items() if k == "Set-Cookie" and v.startswith("ordergate_workbench="))


def test_a_page_without_a_session_leads_to_sign_in(app):
    response = app.test_client().get("/ui/versions")
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/sign-in?next=/ui/versions"


def test_signing_in_sets_a_strict_httponly_cookie_with_the_name_and_role_never_the_secret(app):
    client = app.test_client()
    response = sign_in(client)
    assert response.status_code == 303 and response.headers["Location"] == "/ui/versions"
    header = cookie_header(response)
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/ui" in header
    assert "Secure" not in header  # plain http: a Secure cookie would never come back
    value = header.split("=", 1)[1].split(";", 1)[0]
    payload = value.lstrip(".").split(".", 1)[0]  # a leading "." marks a zlib-compressed payload
    data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    session = json.loads(zlib.decompress(data) if value.startswith(".") else data)
    assert session["name"] == "alice" and session["role"] == "audit"
    assert AUDIT not in json.dumps(session)
    page = client.get("/ui/versions")
    assert page.status_code == 200 and "Signed in as <strong>alice</strong>" in page.text


def test_the_cookie_is_secure_over_https(app):
    client = app.test_client()
    token = csrf_of(client.get("/ui/sign-in", base_url="https://localhost").text)
    response = client.post("/ui/sign-in", base_url="https://localhost",
                           data={"token": AUDIT, "csrf_token": token})
    assert "Secure" in cookie_header(response)


def test_a_wrong_token_is_refused_and_signs_nobody_in(app):
    client = app.test_client()
    response = sign_in(client, "not-a-token-at-all-0123456")
    assert response.status_code == 401 and "not valid" in response.text
    assert client.get("/ui/versions").status_code == 303


def test_a_decide_only_token_gets_403(app):
    client = app.test_client()
    response = sign_in(client, DECIDE)
    assert response.status_code == 403 and "decide" in response.text
    assert client.get("/ui/versions").status_code == 303  # no session was made


def test_a_session_whose_role_no_longer_reads_gets_403(tmp_path):
    # the same name configured as decide only: the session's role is checked against the tokens now
    app = make_app(tmp_path)
    client = app.test_client()
    sign_in(client)
    with client.session_transaction() as session:
        session["role"] = "decide"
    assert client.get("/ui/versions").status_code == 303  # alice holds no decide token: signed out


@pytest.mark.parametrize("path", ["/ui/sign-in", "/ui/sign-out"])
@pytest.mark.parametrize("token", [None, "", "forged"])
def test_every_post_without_the_sessions_csrf_token_is_refused(app, path, token):
    client = app.test_client()
    sign_in(client)
    data = {"token": AUDIT} if token is None else {"token": AUDIT, "csrf_token": token}
    response = client.post(path, data=data)
    assert response.status_code == 400
    assert "security token" in response.text and "Nothing was done" in response.text
    assert client.get("/ui/versions").status_code == 200  # still signed in: sign-out did not happen


def test_every_post_route_of_the_workbench_checks_csrf(app):
    """Whatever page modules exist: each POST route refuses a form without the token."""
    client = app.test_client()
    sign_in(client)
    posts = [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("workbench.")
             and "POST" in (rule.methods or ())]
    assert len(posts) >= 2
    for rule in posts:
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", "x", rule.rule)
        response = client.post(path, data={"anything": "1"})
        assert response.status_code == 400, (rule.rule, response.status_code)


def test_sign_out_ends_the_session(app):
    client = app.test_client()
    sign_in(client)
    token = csrf_of(client.get("/ui/versions").text)
    response = client.post("/ui/sign-out", data={"csrf_token": token})
    assert response.status_code == 303
    assert client.get("/ui/versions").status_code == 303


def test_the_session_works_in_every_worker_and_ends_when_the_tokens_change(tmp_path):
    # two apps = two worker processes with the same configuration: the key is derived, not random
    first, second = make_app(tmp_path, "one"), make_app(tmp_path, "one")
    client = first.test_client()
    sign_in(client)
    cookie = client.get_cookie("ordergate_workbench", path="/ui")
    other = second.test_client()
    other.set_cookie("ordergate_workbench", cookie.value, path="/ui")
    assert other.get("/ui/versions").status_code == 200
    rotated = make_app(tmp_path, "one", tokens={**TOKENS, "audit": ["alice:audit-rotated-5e2b8d1c9f3a7046"]})
    third = rotated.test_client()
    third.set_cookie("ordergate_workbench", cookie.value, path="/ui")
    assert third.get("/ui/versions").status_code == 303


def test_a_configured_session_secret_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("ORDERGATE_SESSION_SECRET", "a-long-configured-session-secret-123")
    client = make_app(tmp_path, "one").test_client()
    sign_in(client)
    cookie = client.get_cookie("ordergate_workbench", path="/ui")
    rotated = make_app(tmp_path, "one", tokens={**TOKENS, "admin": ["root:admin-rotated-1f7c3a9e5d2b8064"]})
    other = rotated.test_client()
    other.set_cookie("ordergate_workbench", cookie.value, path="/ui")
    assert other.get("/ui/versions").status_code == 200


def test_sign_in_never_redirects_to_another_site(app):
    client = app.test_client()
    token = csrf_of(client.get("/ui/sign-in").text)
    for target in ("https://evil.example/", "//evil.example/ui", "/v1/versions"):
        response = client.post("/ui/sign-in", data={"token": AUDIT, "csrf_token": token, "next": target})
        assert response.headers["Location"] == "/ui/", target
        token = csrf_of(client.get("/ui/versions").text)


def test_pages_carry_security_headers_and_errors_are_pages(app):
    client = app.test_client()
    sign_in(client)
    page = client.get("/ui/versions")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    missing = client.get("/ui/no-such-page")
    assert missing.status_code == 404 and missing.mimetype == "text/html" and "Page not found" in missing.text
    unknown = client.get("/ui/versions/sha256:ffffffffffff")
    assert unknown.status_code == 404 and "No such version" in unknown.text


def test_the_api_is_unchanged_json_only_and_sets_no_cookie(app):
    client = app.test_client()
    refused = client.post("/v1/decisions", data={"action": "x"},
                          headers={"Authorization": f"Bearer {DECIDE}"})
    assert refused.status_code == 415 and refused.is_json
    listed = client.get("/v1/versions", headers={"Authorization": f"Bearer {AUDIT}"})
    assert listed.status_code == 200 and "Set-Cookie" not in listed.headers
    assert client.get("/v1/nothing").is_json


def test_without_tokens_the_workbench_serves_this_machine_only_and_says_so(tmp_path):
    app = make_app(tmp_path, tokens={})
    client = app.test_client()
    page = client.get("/ui/versions")
    assert page.status_code == 200 and "Authentication is off" in page.text
    remote = client.get("/ui/versions", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert remote.status_code == 403 and "this machine only" in remote.text
    rebound = client.get("/ui/versions", headers={"Host": "evil.example"})
    assert rebound.status_code == 403
    assert client.post("/ui/sign-out", data={}).status_code == 400  # forms are checked here too


def test_a_fact_value_is_shown_escaped_never_as_markup(app):
    from api.testing import DENIED

    client = app.test_client()
    attack = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    request = {"action": DENIED["action"], "input": {**DENIED["input"], "note": attack}}
    decided = client.post("/v1/decisions", json=request, headers={"Authorization": f"Bearer {DECIDE}"}).get_json()
    sign_in(client)
    for path in ("/ui/decisions?text=script", f"/ui/decisions/{decided['decision_id']}"):
        page = client.get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page, path
    detail = client.get(f"/ui/decisions/{decided['decision_id']}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in detail


def test_try_a_decision_writes_nothing_to_the_log(app):
    client = app.test_client()
    sign_in(client)
    store = app.extensions["ordergate"].store
    before = store.decision_count()
    form = client.get("/ui/try?action=shop/order.create").text
    assert 'name="fact.resource.customer.blocked"' in form
    answer = client.post("/ui/try", data={"csrf_token": csrf_of(form), "action": "shop/order.create",
                                          "fact.resource.customer.blocked": "true"})
    assert answer.status_code == 200 and 'data-allow="false"' in answer.text and "T-01" in answer.text
    assert store.decision_count() == before


def test_the_readmes_picture_of_the_workbench_is_a_small_png():
    from conftest import ROOT

    image = ROOT / "docs" / "img" / "workbench.png"
    data = image.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 150 * 1024
    assert "docs/img/workbench.png" in (ROOT / "README.md").read_text()


def test_a_second_whole_log_read_is_refused_while_one_runs_and_nothing_is_started(app, monkeypatch):
    """A chain verify or an impact replay reads the whole log: one at a time in a worker, a second
    asks to try again (429) instead of piling another whole-log read onto its threads."""
    from api import evidence
    from api.testing import ALLOWED
    from api.workbench import core
    from store import Store

    api = app.test_client()
    logged = api.post("/v1/decisions", json=ALLOWED, headers={"Authorization": f"Bearer {DECIDE}"})
    assert logged.status_code == 200, logged.text
    decision = logged.get_json()["decision_id"]
    client = app.test_client()
    sign_in(client)
    started: list[str] = []
    monkeypatch.setattr(evidence, "impact", lambda *a, **k: started.append("replay") or None)
    verify = Store.verify_chain
    monkeypatch.setattr(Store, "verify_chain", lambda self: started.append("verify") or verify(self))
    pages = (f"/ui/decisions/{decision}?verify=chain", "/ui/diff/impact?from=active&to=active&replay=1")
    with core.whole_log_read("a test's read"):
        for page in pages:
            busy = client.get(page)
            assert busy.status_code == 429 and "Another long read is running" in busy.text, page
    assert started == []
    verified = client.get(pages[0])
    assert verified.status_code == 200 and started == ["verify"]
    assert client.get(pages[1]).status_code == 200 and started == ["verify", "replay"]
