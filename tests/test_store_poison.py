"""A record the database refuses never blocks the decision log and is never answered as logged."""
from __future__ import annotations

import pytest
from test_store_helpers import record

from api import create_app
from api.testing import ALLOWED, SHOP, test_config, write_rules
from store import DecisionLogWriter, InvalidInput, RecordRefused
from store.chain import PreparedRecord, prepare_record

NUL_ACTION = {"action": "quote.create\u0000", "input": {"context": {"system": "d365_sales"}}}


@pytest.mark.parametrize("field,value", [
    ("action", "order.create\u0000"), ("decision_id", "d-\u0000"), ("policy_version", "v\u0000"),
    ("action", "order.\ud800"),
])
def test_text_no_database_can_store_is_refused_before_it_is_queued(store, field, value):
    bad = dict(record(1), **{field: value})
    with pytest.raises(InvalidInput, match="NUL|surrogate"):
        prepare_record(bad)
    with pytest.raises(InvalidInput):
        store.append_decisions([record(2), bad])
    assert store.decision_count() == 0


def test_nul_inside_the_input_is_stored_escaped_and_verifies(store):
    rec = record(1)
    rec["input"]["resource"]["note\u0000key"] = "a\u0000b"
    store.append_decisions([rec, record(2)])
    assert store.get_decision("d-000001")["input"]["resource"]["note\u0000key"] == "a\u0000b"
    assert store.verify_chain().ok


def _poison(i: int) -> PreparedRecord:
    """A prepared record PostgreSQL refuses (NUL in a text column), built past the validation the way
    a future defect in it could let one through."""
    good = prepare_record(record(i))
    return PreparedRecord(good.decision_id, good.time, "order.create\u0000", good.policy_version,
                          good.input_json, good.result_json, good.allow, good.rules)


@pytest.mark.postgres
def test_a_record_postgres_refuses_is_set_aside_and_the_rest_is_written(pg_url):
    from store import Store

    store = Store(pg_url, migrate=True)
    with pytest.raises(RecordRefused):
        store.append_decisions([_poison(0)])
    writer = DecisionLogWriter(store, batch_size=8)
    records = [_poison(i) if i in (5, 13) else record(i) for i in range(1, 21)]
    # the two poison records are reported as not recorded (their callers answer fail closed)
    assert writer.record(records) == {"d-000005", "d-000013"}
    stats = writer.stats()
    assert stats["written"] == 18 and stats["set_aside"] == 2 and stats["healthy"]
    logged = {r["decision_id"] for r in store.query_decisions(limit=100)}
    assert logged == {f"d-{i:06d}" for i in range(1, 21)} - {"d-000005", "d-000013"}
    assert store.verify_chain().ok
    assert writer.close(timeout=10)
    store.dispose()


def test_a_nul_action_is_400_not_recordable_and_the_log_keeps_going(db_url, tmp_path):
    app = create_app(test_config(db_url, write_rules(tmp_path / "rules", SHOP)))
    runtime = app.extensions["ordergate"]
    try:
        client = app.test_client()
        refused = client.post("/v1/decisions", json=NUL_ACTION)
        assert refused.status_code == 400
        assert refused.get_json()["error"]["reason"] == "not_recordable"
        batch = client.post("/v1/decisions/batch", json={"requests": [NUL_ACTION, ALLOWED]}).get_json()["results"]
        assert batch[0]["allow"] is False and batch[0]["decision_id"] is None
        answers = [client.post("/v1/decisions", json=ALLOWED) for _ in range(5)]
        assert {a.status_code for a in answers} == {200}
        assert runtime.writer.flush(timeout=10)
        logged = {r["decision_id"] for r in runtime.store.query_decisions(limit=100)}
        assert logged == {a.get_json()["decision_id"] for a in answers} | {batch[1]["decision_id"]}
        assert runtime.writer.stats()["healthy"] and runtime.store.verify_chain().ok
    finally:
        runtime.close()
