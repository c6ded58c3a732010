"""Auditor and admin endpoints on SQLite and PostgreSQL: versions, publish, activate, rollback,
diff, the decision log (query, fetch, replay) and chain verification."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from test_store_helpers import drop_guards

from api import create_app
from api.testing import ALLOWED, DENIED, SHOP, SHOP_V2, test_config, write_rules

VIP = {"action": "order.create",
       "input": {"context": {"system": "shop"}, "resource": {"customer": {"blocked": False, "vip": True}}}}


@pytest.fixture
def app(db_url, tmp_path):
    app = create_app(test_config(db_url, write_rules(tmp_path / "rules", SHOP)))
    yield app
    app.extensions["ordergate"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def two_versions(client):
    """(v1, v2) with v2 published through the API and active."""
    v1 = client.get("/v1/versions").get_json()["active"]
    response = client.post("/v1/versions", json={"files": SHOP_V2, "message": "T-02 keeps an audit trail; T-03"})
    assert response.status_code == 201, response.get_json()
    return v1, response.get_json()["id"]


def _flush(app):
    assert app.extensions["ordergate"].writer.flush(timeout=10)


def test_start_up_publishes_the_rules_folder_into_an_empty_store(client):
    body = client.get("/v1/versions").get_json()
    assert len(body["versions"]) == 1
    version = body["versions"][0]
    assert version["active"] is True and body["active"] == version["id"]
    assert version["id"].startswith("sha256:") and version["parent"] is None
    assert version["author"] == "ordergate serve"


def test_show_version_gives_files_rules_and_catalogue(client):
    active = client.get("/v1/versions").get_json()["active"]
    for ref in (active, "active", active.removeprefix("sha256:")[:12]):
        response = client.get(f"/v1/versions/{ref}")
        assert response.status_code == 200
        body = response.get_json()
        assert body["id"] == active
        assert body["files"] == SHOP
        assert [(r["id"], r["kind"]) for r in body["rules"]] == [("T-01", "guard"), ("T-02", "effect")]
        assert body["rules"][0]["file"] == "shop.yaml" and isinstance(body["rules"][0]["line"], int)
        assert body["catalogue"] == {"shop": ["order.create"]}
    missing = client.get("/v1/versions/sha256:" + "0" * 64)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"


def test_publish_through_the_api_activates_at_once(client, two_versions):
    v1, v2 = two_versions
    assert v1 != v2
    listing = client.get("/v1/versions").get_json()
    assert listing["active"] == v2
    assert [v["id"] for v in listing["versions"]] == [v2, v1]
    assert client.get(f"/v1/versions/{v2}").get_json()["parent"] == v1
    answer = client.post("/v1/decisions", json=ALLOWED).get_json()
    assert answer["policy_version"] == v2
    assert answer["obligations"] == [{"name": "audit_trail", "params": {}}]
    history = client.get("/v1/activations").get_json()["activations"]
    assert [(a["version_id"], a["previous_version_id"]) for a in history] == [(v2, v1), (v1, None)]
    assert history[0]["actor"] == "loopback"


@pytest.mark.parametrize(
    ("files", "expect"),
    [
        ({"shop.yaml": "system: shop\nrules: [\n"}, "errors"),
        ({"shop.yaml": SHOP["shop.yaml"].replace("deny_when: {blocked: true}", "deny_when: {blokked: true}"),
          "tests/shop.yaml": SHOP["tests/shop.yaml"]}, "errors"),
        ({"shop.yaml": SHOP["shop.yaml"],
          "tests/shop.yaml": SHOP["tests/shop.yaml"].replace("rules: [T-01]", "rules: [T-02]")}, "test_failures"),
        ({"shop.yaml": SHOP["shop.yaml"]}, "test_failures"),  # no tests: every rule uncovered
    ],
    ids=["yaml-syntax", "unknown-fact", "failing-test", "uncovered-rules"],
)
def test_a_broken_candidate_changes_nothing(client, files, expect):
    before_versions = client.get("/v1/versions").get_json()
    before_history = client.get("/v1/activations").get_json()
    response = client.post("/v1/versions", json={"files": files, "message": "broken"})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "publish_rejected"
    assert error[expect], error
    if expect == "errors":
        assert all(e["location"] and e["location"].startswith("shop.yaml:") for e in error["errors"])
    assert client.get("/v1/versions").get_json() == before_versions
    assert client.get("/v1/activations").get_json() == before_history
    answer = client.post("/v1/decisions", json=ALLOWED).get_json()
    assert answer["policy_version"] == before_versions["active"] and answer["allow"] is True


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"message": "x"}, "invalid_files"),
        ({"files": {}, "message": "x"}, "invalid_files"),
        ({"files": {"../etc/passwd": "x"}, "message": "x"}, "invalid_files"),
        ({"files": {"/abs.yaml": "x"}, "message": "x"}, "invalid_files"),
        ({"files": {"a.yaml": 3}, "message": "x"}, "invalid_files"),
        ({"files": SHOP}, "invalid_parameter"),
        ({"files": SHOP, "message": "x", "activate": "yes"}, "invalid_parameter"),
    ],
)
def test_malformed_publish_requests_are_400(client, body, reason):
    response = client.post("/v1/versions", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["reason"] == reason


def test_publish_without_activation_then_activate_and_roll_back(client, app):
    v1 = client.get("/v1/versions").get_json()["active"]
    published = client.post("/v1/versions", json={"files": SHOP_V2, "message": "v2", "activate": False})
    assert published.status_code == 201
    v2 = published.get_json()["id"]
    assert published.get_json()["active"] is False
    assert client.post("/v1/decisions", json=ALLOWED).get_json()["policy_version"] == v1

    activated = client.post(f"/v1/versions/{v2}/activate", json={"reason": "go live"})
    assert activated.status_code == 200
    assert activated.get_json()["previous"] == v1
    assert client.post("/v1/decisions", json=ALLOWED).get_json()["policy_version"] == v2

    rollback = client.post(f"/v1/versions/{v1}/activate", content_type="application/json")  # no body
    assert rollback.status_code == 200
    assert client.post("/v1/decisions", json=ALLOWED).get_json()["policy_version"] == v1
    history = client.get("/v1/activations").get_json()["activations"]
    assert [a["version_id"] for a in history] == [v1, v2, v1]
    assert history[1]["reason"] == "go live"
    assert client.get("/readyz").get_json()["policy_version"] == v1
    assert client.post("/v1/versions/sha256:" + "f" * 64 + "/activate", json={}).status_code == 404


def test_rule_level_diff(client, two_versions):
    v1, v2 = two_versions
    diff = client.get(f"/v1/versions/{v1}/diff/{v2}").get_json()
    assert (diff["from"], diff["to"]) == (v1, v2)
    assert diff["same_behaviour"] is False and diff["hash"] == {"from": v1, "to": v2, "same": False,
                                                                "layout_only": False}
    assert [r["id"] for r in diff["rules_added"]] == ["T-03"]
    assert diff["rules_removed"] == []
    assert [c["id"] for c in diff["rules_changed"]] == ["T-02"]
    change = diff["rules_changed"][0]
    assert {"from": "notify", "to": "audit_trail"} in [{k: d[k] for k in ("from", "to")} for d in change["changes"]]
    assert diff["files"]["changed"] == ["shop.yaml", "tests/shop.yaml"]
    back = client.get(f"/v1/versions/{v2}/diff/{v1}").get_json()
    assert [r["id"] for r in back["rules_removed"]] == ["T-03"] and back["rules_added"] == []
    same = client.get(f"/v1/versions/{v1}/diff/{v1}").get_json()
    assert same["rules_added"] == same["rules_removed"] == same["rules_changed"] == []
    assert same["same_behaviour"] is True and same["summary"] == "no change in behaviour"


def test_diff_reports_a_changed_says_and_a_changed_fact(client):
    v1 = client.get("/v1/versions").get_json()["active"]
    text = SHOP["shop.yaml"].replace("says: a blocked customer may not order", "says: blocked customers cannot order")
    text = text.replace("path: resource.customer.vip", "path: resource.customer.is_vip")
    published = client.post("/v1/versions", json={"files": {**SHOP, "shop.yaml": text}, "message": "reword"})
    assert published.status_code == 201, published.get_json()
    diff = client.get(f"/v1/versions/{v1}/diff/{published.get_json()['id']}").get_json()
    change = {c["id"]: c for c in diff["wording_changed"]}["T-01"]
    assert change["changes"] == [{"path": "says", "from": "a blocked customer may not order",
                                  "to": "blocked customers cannot order"}]
    assert [(d["section"], d["id"]) for d in diff["declarations_changed"]] == [("facts", "vip")]
    assert diff["rules_changed"] == []


def test_query_fetch_and_page_the_decision_log(client, app, two_versions):
    v1, v2 = two_versions
    ids = [client.post("/v1/decisions", json=body).get_json()["decision_id"] for body in (ALLOWED, DENIED, VIP)]
    _flush(app)
    everything = client.get("/v1/decisions").get_json()
    assert [d["decision_id"] for d in everything["decisions"]] == ids
    assert everything["next_cursor"] is None
    assert client.get("/v1/decisions?allow=false").get_json()["decisions"][0]["decision_id"] == ids[1]
    assert [d["decision_id"] for d in client.get("/v1/decisions?rule=T-03").get_json()["decisions"]] == [ids[2]]
    assert [d["decision_id"] for d in client.get("/v1/decisions?rule=T-02").get_json()["decisions"]] == [ids[0], ids[2]]
    assert client.get("/v1/decisions?action=order.cancel").get_json()["decisions"] == []
    assert len(client.get(f"/v1/decisions?version={v2}").get_json()["decisions"]) == 3
    assert client.get(f"/v1/decisions?version={v1}").get_json()["decisions"] == []
    assert client.get("/v1/decisions?version=sha256:" + "0" * 64).get_json()["decisions"] == []
    assert (
        len(client.get("/v1/decisions?since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z").get_json()["decisions"])
        == 3
    )
    assert client.get("/v1/decisions?until=2000-01-01T00:00:00Z").get_json()["decisions"] == []

    page1 = client.get("/v1/decisions?limit=2").get_json()
    assert [d["decision_id"] for d in page1["decisions"]] == ids[:2] and page1["next_cursor"]
    page2 = client.get(f"/v1/decisions?limit=2&cursor={page1['next_cursor']}").get_json()
    assert [d["decision_id"] for d in page2["decisions"]] == ids[2:] and page2["next_cursor"] is None

    one = client.get(f"/v1/decisions/{ids[1]}").get_json()
    assert one["action"] == "order.create" and one["input"] == DENIED["input"]
    assert one["result"]["rules"] == ["T-01"] and one["allow"] is False and one["policy_version"] == v2
    assert client.get("/v1/decisions/01ARZ3NDEKTSV4RRFFQ69G5FAV").status_code == 404


@pytest.mark.parametrize("query", ["allow=maybe", "limit=0", "limit=1001", "limit=x", "since=yesterday",
                                   "cursor=-1", "colour=red"])
def test_bad_log_queries_are_400(client, query):
    response = client.get(f"/v1/decisions?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"


def test_replay_reproduces_logged_decisions_and_compares_with_another_version(client, app, two_versions):
    v1, v2 = two_versions
    client.post(f"/v1/versions/{v1}/activate", json={})
    old_ids = [client.post("/v1/decisions", json=b).get_json()["decision_id"] for b in (ALLOWED, DENIED, VIP)]
    error_id = client.post("/v1/decisions", json={"action": "order.create", "input": {"context": {"system": "shop"}}}
                           ).get_json()["decision_id"]
    client.post(f"/v1/versions/{v2}/activate", json={})
    new_id = client.post("/v1/decisions", json=VIP).get_json()["decision_id"]
    _flush(app)

    for decision_id in [*old_ids, error_id, new_id]:
        replay = client.post(f"/v1/decisions/{decision_id}/replay", json={}).get_json()
        assert replay["same_version"] is True
        assert replay["match"] is True, replay
        assert replay["differences"] == []
    assert client.post(f"/v1/decisions/{new_id}/replay", json={}).get_json()["replayed_version"] == v2

    against_v2 = client.post(f"/v1/decisions/{old_ids[0]}/replay", json={"version": v2}).get_json()
    assert against_v2["replayed_version"] == v2 and against_v2["match"] is False
    assert against_v2["differences"] == [{"field": "obligations", "logged": [{"name": "notify", "params": {}}],
                                          "replayed": [{"name": "audit_trail", "params": {}}]}]
    denied_again = client.post(f"/v1/decisions/{old_ids[1]}/replay", json={"version": "active"}).get_json()
    assert denied_again["match"] is True and denied_again["same_version"] is False
    assert client.post("/v1/decisions/01ARZ3NDEKTSV4RRFFQ69G5FAV/replay", json={}).status_code == 404
    assert client.post(f"/v1/decisions/{new_id}/replay", json={"version": 5}).status_code == 400


def test_chain_verification_through_the_api_finds_a_tampered_entry(client, app):
    ids = [client.post("/v1/decisions", json=b).get_json()["decision_id"] for b in (ALLOWED, DENIED, ALLOWED)]
    _flush(app)
    report = client.get("/v1/audit/verify").get_json()
    assert report["ok"] is True and report["checked"] == 3
    store = app.extensions["ordergate"].store
    drop_guards(store.engine)  # an insider with DDL rights
    with store.engine.begin() as conn:  # flips a denial to an allow
        conn.execute(
            sa.text("UPDATE decisions SET result = :r WHERE decision_id = :d"),
            {"r": '{"allow":true,"error":null,"obligations":[],"policy_version":null,"rules":[]}', "d": ids[1]},
        )
    report = client.get("/v1/audit/verify").get_json()
    assert report["ok"] is False
    assert report["first_broken_id"] == ids[1] and report["first_broken_seq"] == 2


def test_one_whole_log_read_at_a_time_a_second_is_429_busy_and_errors_release_the_guard(app, client, monkeypatch):
    """An impact replay reads the whole log: while one runs in this process, another replay or a
    chain verify is answered 429 ``busy`` with Retry-After at once, nothing started; the guard is
    the workbench's (one mechanism) and a replay that fails releases it."""
    import threading

    from api import evidence
    from api.workbench import core
    from store import StoreError

    real = evidence.impact
    entered, release, started = threading.Event(), threading.Event(), []

    def slow(*args, **kwargs):
        started.append("replay")
        entered.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(evidence, "impact", slow)
    first: dict = {}
    replay = threading.Thread(target=lambda: first.update(
        r=app.test_client().post("/v1/versions/active/impact", json={"examples": 1})))
    replay.start()
    try:
        assert entered.wait(30)
        busy = client.post("/v1/versions/active/impact", json={"examples": 1})
        verify_busy = client.get("/v1/audit/verify")
    finally:
        release.set()
        replay.join(30)
    assert first["r"].status_code == 200 and "replayed" in first["r"].get_json()
    assert started == ["replay"]
    for answer in (busy, verify_busy):
        assert answer.status_code == 429 and answer.headers["Retry-After"] == "10"
        error = answer.get_json()["error"]
        assert error["code"] == "busy" and error["retry_after"] == 10 and "try again" in error["message"]
    with core.whole_log_read("a workbench page's read"):  # the same guard as the workbench's
        assert client.post("/v1/versions/active/impact", json={"examples": 1}).status_code == 429
    assert started == ["replay"]

    def failing(*args, **kwargs):
        raise StoreError("the database went away")

    monkeypatch.setattr(evidence, "impact", failing)
    assert client.post("/v1/versions/active/impact", json={"examples": 1}).status_code == 503
    monkeypatch.setattr(evidence, "impact", real)
    assert client.post("/v1/versions/active/impact", json={"examples": 1}).status_code == 200
    assert client.get("/v1/audit/verify").get_json()["ok"] is True
