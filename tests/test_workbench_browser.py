"""The workbench in a real browser (Debian's chromium through Playwright), served by
``ordergate serve`` with access tokens: sign-in, roles, CSRF, and reading without JavaScript.
Screenshots of every page visited go to var/screenshots (see tests/browser.py)."""
from __future__ import annotations

import pytest

pytest_plugins = ("browser",)  # its fixtures: served, browser, visit, visit_no_js

pytestmark = pytest.mark.slow


def test_sign_in_reads_the_versions_and_sign_out_ends_it(visit):
    response = visit.go("/ui/versions")  # not signed in: the sign-in page
    assert visit.page.url.endswith("/ui/sign-in?next=/ui/versions") and response.status == 200
    visit.page.get_by_label("Access token (secret)").fill(visit.secret("audit"))
    visit.submit()
    assert visit.page.url.endswith("/ui/versions")
    assert visit.page.get_by_role("heading", level=1).inner_text() == "Versions"
    assert "Signed in as auditor" in visit.page.inner_text("header")
    cookie = next(c for c in visit.page.context.cookies() if c["name"] == "ordergate_workbench")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert visit.secret("audit") not in cookie["value"]
    assert visit.page.locator("tbody tr").count() >= 1
    assert visit.page.locator(".badge.active").count() == 1
    visit.submit("header form button[type=submit]")
    assert visit.page.url.endswith("/ui/sign-in")
    visit.go("/ui/versions")
    assert "/ui/sign-in" in visit.page.url


def test_a_wrong_token_is_told_so(visit):
    visit.go("/ui/sign-in")
    visit.page.get_by_label("Access token (secret)").fill("not-a-configured-token-123")
    visit.submit(expect=401)
    assert "not valid" in visit.page.get_by_role("alert").inner_text()


def test_a_decide_only_token_gets_403(visit):
    visit.sign_in("decide", expect=403)
    assert "Not allowed" in visit.page.get_by_role("heading", level=1).inner_text()
    visit.go("/ui/versions")
    assert "/ui/sign-in" in visit.page.url


@pytest.mark.parametrize("form", ["sign-in", "sign-out"])
def test_a_form_posted_without_its_csrf_token_is_refused(visit, form):
    if form == "sign-in":
        visit.go("/ui/sign-in")
        visit.page.get_by_label("Access token (secret)").fill(visit.secret("audit"))
        selector = "main form"
    else:
        visit.sign_in()
        selector = "header form"
    visit.page.eval_on_selector(f"{selector} input[name=csrf_token]", "field => field.remove()")
    visit.submit(f"{selector} button[type=submit]", expect=400)
    assert "security token" in visit.page.inner_text("main")
    signed_in = form == "sign-out"
    visit.go("/ui/versions")
    assert ("/ui/sign-in" in visit.page.url) is not signed_in  # sign-out did not happen; sign-in neither


def test_reading_works_without_javascript_and_by_keyboard(visit_no_js):
    visit = visit_no_js
    visit.sign_in()
    assert visit.page.url.endswith("/ui/") or visit.page.url.endswith("/ui/versions")
    version_link = visit.page.locator("tbody tr td a.mono").first
    version_link.focus()
    with visit.page.expect_navigation():
        visit.page.keyboard.press("Enter")
    visit.shot("version")
    assert visit.page.get_by_role("heading", level=1).inner_text().startswith("Version ")
    file_link = visit.page.get_by_role("link", name="pricing.yaml").first
    with visit.page.expect_navigation():
        file_link.click()
    visit.shot("file")
    assert "PRC-09" in visit.page.inner_text("main")
    # every form field has a label
    visit.go("/ui/sign-in")
    for field in visit.page.locator("main input:not([type=hidden]), main select, main textarea").all():
        assert visit.page.locator(f"label[for='{field.get_attribute('id')}']").count() == 1
