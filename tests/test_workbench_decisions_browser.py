"""The decision log and try-a-decision pages in a real browser (chromium through Playwright):
search finds the PRC-09 denials this test logged, a decision's page explains and replays it,
try-a-decision answers what the API answers and writes nothing, fact values are shown escaped."""
from __future__ import annotations

import uuid

import pytest

pytest_plugins = ("browser",)  # its fixtures: served, browser, visit, visit_no_js
pytestmark = pytest.mark.slow

D365 = "d365_sales"


def order_update(order: str, *, integration: bool = False, state: str = "submitted") -> dict:
    return {"context": {"system": D365, "organization": {"is_sop_integration_enabled": True}},
            "subject": {"is_integration_user": integration},
            "resource": {"salesorder": {"statecode": state, "ordernumber": order}}}


def test_a_search_for_prc09_denials_finds_the_ones_logged(visit_no_js, served):
    visit = visit_no_js  # GET forms: searching needs no JavaScript
    order = f"SO-{uuid.uuid4().hex[:8]}"
    denied = [served.decide("salesorder.update", order_update(order)) for _ in range(3)]
    allowed = served.decide("salesorder.update", order_update(order, integration=True))
    assert all(d["rules"] == ["PRC-09"] and not d["allow"] for d in denied) and allowed["allow"]
    visit.sign_in()
    visit.go("/ui/decisions")
    visit.page.get_by_label("Rule cited").fill("PRC-09")
    visit.page.get_by_label("Outcome").select_option("denied")
    visit.page.get_by_label("Text in a fact value").fill(order.lower())  # case does not matter
    visit.submit("main form.filters button[type=submit]")
    rows = visit.page.locator("table[aria-label='Matching decisions'] tbody tr")
    assert rows.count() == 3
    for row in rows.all():
        assert "PRC-09" in row.inner_text() and "denied" in row.inner_text()
    shown = {link.get_attribute("href").rsplit("/", 1)[1] for link in rows.locator("a").all()}
    assert shown == {d["decision_id"] for d in denied}
    # the same text without the filters finds the allowed one too
    visit.go(f"/ui/decisions?text={order}&system={D365}")
    assert visit.page.locator("table[aria-label='Matching decisions'] tbody tr").count() == 4
    visit.go("/ui/decisions?text=no-such-order-anywhere")
    assert "No logged decision matches" in visit.page.inner_text("main")


def test_the_log_pages_by_key_without_losing_or_repeating_an_entry(visit, served):
    order = f"SO-{uuid.uuid4().hex[:8]}"
    logged = [served.decide("salesorder.update", order_update(order))["decision_id"] for _ in range(30)]
    visit.sign_in()
    visit.go(f"/ui/decisions?text={order}&size=100")
    assert visit.page.locator("tbody tr").count() == 30
    # pages of 25 over all decisions: walk back to the oldest
    seen: list[str] = []
    visit.go("/ui/decisions?size=25")
    while True:
        links = visit.page.locator("tbody tr td:first-child a").all()
        seen += [a.get_attribute("href").rsplit("/", 1)[1] for a in links]
        older = visit.page.get_by_role("link", name="Older →")
        if older.count() == 0:
            break
        with visit.page.expect_navigation():
            older.click()
        visit.shot("older")
    assert len(seen) == len(set(seen))
    assert set(logged) <= set(seen)
    with visit.page.expect_navigation():
        visit.page.get_by_role("link", name="← Newer").click()
    assert visit.page.locator("tbody tr").count() == 25


def test_a_decisions_page_explains_replays_and_checks_the_chain(visit, served):
    order = f"SO-<script>alert('{uuid.uuid4().hex[:6]}')</script>"
    decision = served.decide("salesorder.update", order_update(order))
    dialogs: list[str] = []
    visit.page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    visit.sign_in()
    visit.go(f"/ui/decisions?text={order}")
    assert order in visit.page.inner_text("tbody") or visit.page.locator("tbody tr").count() == 1
    visit.go(f"/ui/decisions/{decision['decision_id']}")
    main = visit.page.inner_text("main")
    assert order in main  # shown as text, escaped, never run
    assert "PRC-09" in main and "gives the logged result" in main
    assert "What would allow it" in main
    assert "Entry " in main and "is intact" in main
    visit.page.get_by_label("Version", exact=True).select_option(index=0)
    visit.submit("section[aria-labelledby=h-replay] button[type=submit]")
    assert "gives the same decision" in visit.page.inner_text("main")
    visit.submit("section[aria-labelledby=h-chain] button[type=submit]")
    assert "The whole chain is verified" in visit.page.inner_text("main")
    assert dialogs == []


@pytest.mark.parametrize("facts, expect_allow", [
    ({"sop": "true", "integ": "false", "state": "submitted"}, False),
    ({"sop": "true", "integ": "true", "state": "submitted"}, True),
    ({"sop": "false", "integ": "false", "state": "active"}, True),
    ({"sop": "", "integ": "false", "state": "active"}, False),  # a required fact left out
])
def test_try_a_decision_answers_what_the_api_answers_and_logs_nothing(visit, served, facts, expect_allow):
    visit.sign_in()
    visit.go(f"/ui/try?action={D365}/salesorder.update")
    status, before = served.api("GET", "/v1/decisions?limit=1000", role="audit")
    page = visit.page
    labels = {"sop": "context.organization.is_sop_integration_enabled", "integ": "subject.is_integration_user",
              "state": "resource.salesorder.statecode"}
    for key, path in labels.items():
        value = facts[key]
        option = value if key == "state" or value == "" else value
        page.locator(f"select[name='fact.{path}']").select_option(
            "" if value == "" else (f'"{value}"' if key == "state" else option))
    visit.submit("main form[method=post] button[type=submit]")
    answer = page.locator("#answer")
    assert answer.get_attribute("data-allow") == ("true" if expect_allow else "false")
    request = {"context": {"system": D365}}
    if facts["sop"]:
        request["context"]["organization"] = {"is_sop_integration_enabled": facts["sop"] == "true"}
    request["subject"] = {"is_integration_user": facts["integ"] == "true"}
    request["resource"] = {"salesorder": {"statecode": facts["state"]}}
    api = served.decide("salesorder.update", request)
    assert api["allow"] is expect_allow
    shown = answer.inner_text()
    for rule in api["rules"]:
        assert rule in shown
    for obligation in api["obligations"]:
        assert obligation["name"] in shown
    if api["error"]:
        assert api["error"]["code"] in shown
    else:
        assert "none" in shown or api["rules"]
    status, after = served.api("GET", "/v1/decisions?limit=1000", role="audit")
    # only the API's own decision was logged, not the page's
    assert len(after["decisions"]) == len(before["decisions"]) + 1


def test_the_try_form_labels_every_field_and_marks_the_required_ones(visit):
    visit.sign_in()
    visit.go(f"/ui/try?action={D365}/salesorder.update")
    fields = visit.page.locator("main form[method=post] select, main form[method=post] input:not([type=hidden])")
    assert fields.count() == 5
    for field in fields.all():
        assert visit.page.locator(f"label[for='{field.get_attribute('id')}']").count() == 1
    assert visit.page.locator("label .req").count() == 3
    state = visit.page.locator("select[name='fact.resource.salesorder.statecode'] option")
    assert [o.inner_text() for o in state.all()][1:] == ["active", "submitted", "canceled", "fulfilled", "invoiced"]


def test_the_try_form_refuses_a_post_without_its_csrf_token(visit):
    visit.sign_in()
    visit.go(f"/ui/try?action={D365}/salesorder.update")
    visit.page.eval_on_selector("main form[method=post] input[name=csrf_token]", "field => field.remove()")
    visit.submit("main form[method=post] button[type=submit]", expect=400)
    assert "security token" in visit.page.inner_text("main")


def test_a_decision_reads_and_replays_without_javascript_by_keyboard(visit_no_js, served):
    visit = visit_no_js
    decision = served.decide("salesorder.update", order_update(f"SO-{uuid.uuid4().hex[:8]}"))
    visit.sign_in()
    visit.go(f"/ui/decisions/{decision['decision_id']}")
    page = visit.page
    page.keyboard.press("Tab")  # the first stop skips the navigation
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    replay = page.get_by_label("Version", exact=True)
    replay.focus()
    page.keyboard.press("Tab")  # to the Replay button
    assert page.evaluate("document.activeElement.textContent") == "Replay"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    visit.shot("replayed")
    assert "?replay=" in page.url and "gives the same decision" in page.inner_text("main")
    for field in page.locator("main select, main input:not([type=hidden])").all():
        assert page.locator(f"label[for='{field.get_attribute('id')}']").count() == 1
