"""Who asked: every logged decision records the caller's token name (never its secret) and the
request id it sent, both covered by the hash chain and searchable; time-ranged log queries page by
(time, seq)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from test_store_helpers import drop_guards, record

from api import create_app
from api.testing import ALLOWED, DENIED, SHOP, test_config, write_rules

TOKENS = {"decide": ["crm:d-secret-0123456789", "erp:e-secret-0123456789"], "audit": ["auditor:a-secret-0123456789"],
          "admin": ["root:x-secret-0123456789"]}


def bearer(token: str, request_id: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    return headers


@pytest.fixture
def app(db_url, tmp_path):
    app = create_app(test_config(db_url, write_rules(tmp_path / "rules", SHOP), tokens=TOKENS))
    yield app
    app.extensions["ordergate"].close()


def test_every_decision_records_who_asked_and_the_log_is_searchable_by_it(app):
    client = app.test_client()
    one = client.post("/v1/decisions", json=ALLOWED, headers=bearer("d-secret-0123456789", "req-1")).get_json()
    two = client.post("/v1/decisions/batch", json={"requests": [DENIED, ALLOWED]},
                      headers=bearer("e-secret-0123456789", "3f2a9c1e-77b0-4c1a-9d51-0c9e2f1b5a10")).get_json()
    three = client.post("/v1/decisions", json=DENIED, headers=bearer("d-secret-0123456789")).get_json()
    store = app.extensions["ordergate"].store
    logged = {r["decision_id"]: r for r in store.query_decisions(limit=10)}
    assert (logged[one["decision_id"]]["caller"], logged[one["decision_id"]]["request_id"]) == ("crm", "req-1")
    assert {logged[r["decision_id"]]["caller"] for r in two["results"]} == {"erp"}
    assert (logged[three["decision_id"]]["caller"], logged[three["decision_id"]]["request_id"]) == ("crm", None)
    assert not any("secret" in repr(r) for r in logged.values())

    audit = bearer("a-secret-0123456789")
    by_caller = client.get("/v1/decisions?caller=crm", headers=audit).get_json()["decisions"]
    assert [d["decision_id"] for d in by_caller] == [one["decision_id"], three["decision_id"]]
    assert by_caller[0]["caller"] == "crm" and by_caller[0]["request_id"] == "req-1"
    by_request = client.get("/v1/decisions?request_id=3f2a9c1e-77b0-4c1a-9d51-0c9e2f1b5a10",
                            headers=audit).get_json()["decisions"]
    assert [d["decision_id"] for d in by_request] == [r["decision_id"] for r in two["results"]]
    assert [r["decision_id"] for r in store.query_decisions(caller="erp", request_id="req-1")] == []
    assert store.verify_chain().ok


@pytest.mark.parametrize("request_id", ["", "x" * 129, "has space", "naïve", "a\tb"])
def test_a_request_id_out_of_bounds_is_400_and_nothing_is_logged(app, request_id):
    client = app.test_client()
    response = client.post("/v1/decisions", json=ALLOWED, headers=bearer("d-secret-0123456789", request_id))
    assert response.status_code == 400
    assert response.get_json()["error"]["reason"] == "invalid_request_id"
    assert app.extensions["ordergate"].store.decision_count() == 0


def test_the_chain_covers_who_asked_and_older_entries_still_verify(verify_path, store):
    store.append_decisions([record(1), record(2)])  # logged before who-asked existed: neither field
    store.append_decisions([dict(record(i), caller="crm", request_id=f"r-{i}") for i in (3, 4, 5)])
    assert store.verify_chain().ok and store.get_decision("d-000001")["caller"] is None
    drop_guards(store.engine)
    with store.engine.begin() as conn:  # someone rewrites who asked
        conn.execute(sa.text("UPDATE decisions SET caller = 'erp' WHERE seq = 4"))
    report = store.verify_chain()
    assert (report.ok, report.first_broken_seq) == (False, 4) and "altered" in report.reason
    with store.engine.begin() as conn:  # or removes it
        conn.execute(sa.text("UPDATE decisions SET caller = 'crm', request_id = NULL WHERE seq = 4"))
    assert (store.verify_chain().first_broken_seq) == 4


def test_a_time_range_pages_by_time_and_each_entry_comes_once(app):
    store = app.extensions["ordergate"].store
    # times out of seq order, as when two workers commit in the other order than they decided
    times = [5, 1, 3, 3, 2, 9, 4, 7, 6, 8, 3, 0]
    store.append_decisions([dict(record(i), time=f"2026-11-23T10:00:{t:02d}.000000Z") for i, t in enumerate(times)])
    client = app.test_client()
    audit = bearer("a-secret-0123456789")
    seen, cursor, pages = [], None, 0
    while True:
        query = "/v1/decisions?since=2026-11-23T10:00:01Z&until=2026-11-23T10:00:09Z&limit=3"
        page = client.get(query + (f"&cursor={cursor}" if cursor else ""), headers=audit).get_json()
        seen += [(d["time"], d["seq"]) for d in page["decisions"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = sorted((f"2026-11-23T10:00:{t:02d}.000000Z", i + 1) for i, t in enumerate(times) if 1 <= t < 9)
    assert seen == expected and len(seen) == 10 and pages == 4
    bad = client.get("/v1/decisions?since=2026-11-23T10:00:01Z&cursor=7", headers=audit)
    assert bad.status_code == 400


def test_a_time_ranged_page_reads_the_time_index_from_the_cursor(sqlite_url):
    from store import Store

    store = Store(sqlite_url, migrate=True)
    query = ("EXPLAIN QUERY PLAN SELECT * FROM decisions WHERE time >= ? AND time < ? AND (time, seq) > (?, ?) "
             "ORDER BY time, seq LIMIT 101")
    with store.engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(query, ("a", "z", "m", 5)))
    store.dispose()
    assert "ix_decisions_time_seq" in plan and "TEMP B-TREE" not in plan, plan
