"""POST /v1/decisions and /v1/decisions/batch against spec/http.md: shapes, statuses, malformed
requests of every kind (400/413, never a 500, never an allow), the decision log and fail closed."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ulid import ULID

from api import create_app
from api.testing import ALLOWED, DENIED, SHOP, test_config, write_rules

DECISION_KEYS = {"decision_id", "policy_version", "allow", "obligations", "rules", "error"}


@pytest.fixture
def shop_rules(tmp_path):
    return write_rules(tmp_path / "rules", SHOP)


@pytest.fixture
def app(sqlite_url, shop_rules):
    app = create_app(test_config(sqlite_url, shop_rules))
    yield app
    app.extensions["ordergate"].close()


@pytest.fixture
def client(app):
    return app.test_client()


def _is_ulid(value) -> bool:
    try:
        ULID.from_str(value)
    except (ValueError, TypeError):
        return False
    return True


def test_allowed_decision_has_the_contract_shape(client, app):
    response = client.post("/v1/decisions", json=ALLOWED)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == DECISION_KEYS
    assert body["allow"] is True
    assert body["obligations"] == [{"name": "notify", "params": {}}]
    assert body["rules"] == ["T-02"]
    assert body["error"] is None
    assert _is_ulid(body["decision_id"])
    assert body["policy_version"] == app.extensions["ordergate"].active_version_id
    assert body["policy_version"].startswith("sha256:")


def test_denied_decision_is_200_and_cites_the_guard(client):
    response = client.post("/v1/decisions", json=DENIED)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["allow"], body["obligations"], body["rules"], body["error"]) == (False, [], ["T-01"], None)


@pytest.mark.parametrize(
    ("request_body", "code", "field"),
    [
        ({"action": "order.create", "input": {"context": {"system": "nowhere"}}}, "unknown_system", "context.system"),
        ({"action": "order.cancel", "input": {"context": {"system": "shop"}}}, "unknown_action", None),
        (
            {"action": "order.create", "input": {"context": {"system": "shop"}}},
            "missing_fact",
            "resource.customer.blocked",
        ),
        (
            {
                "action": "order.create",
                "input": {"context": {"system": "shop"}, "resource": {"customer": {"blocked": "yes"}}},
            },
            "invalid_fact",
            "resource.customer.blocked",
        ),
        ({"action": "order.create", "input": {}}, "missing_fact", "context.system"),
    ],
)
def test_decision_errors_are_422_with_the_decision_shape(client, request_body, code, field):
    response = client.post("/v1/decisions", json=request_body)
    assert response.status_code == 422
    body = response.get_json()
    assert set(body) == DECISION_KEYS
    assert (body["allow"], body["obligations"], body["rules"]) == (False, [], [])
    assert body["error"]["code"] == code
    assert body["error"]["field"] == field
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert _is_ulid(body["decision_id"])


def test_explain_adds_the_engine_trace(client):
    plain = client.post("/v1/decisions", json=DENIED).get_json()
    explained = client.post("/v1/decisions", json=dict(DENIED, explain=True)).get_json()
    assert "trace" not in plain
    assert isinstance(explained["trace"], list) and explained["trace"]
    assert any(step.get("rule") == "T-01" for step in explained["trace"])
    assert {k: explained[k] for k in ("allow", "rules", "obligations")} == {
        k: plain[k] for k in ("allow", "rules", "obligations")}


MALFORMED = [
    (b"", "not_json", 400),
    (b"{", "not_json", 400),
    (b"not json at all", "not_json", 400),
    (b"\xff\xfe{}", "not_json", 400),
    (b'{"action": "order.create", "input": {"x": NaN}}', "not_json", 400),
    (b'{"action": "order.create", "input": {"x": "\\ud800"}}', "not_json", 400),
    (b"[]", "not_object", 400),
    (b'"order.create"', "not_object", 400),
    (b"null", "not_object", 400),
    (b'{"input": {}}', "action_not_string", 400),
    (b'{"action": 7, "input": {}}', "action_not_string", 400),
    (b'{"action": null, "input": {}}', "action_not_string", 400),
    (b'{"action": "", "input": {}}', "action_invalid", 400),
    (json.dumps({"action": "x" * 201, "input": {}}).encode(), "action_invalid", 400),
    (b'{"action": "order.create"}', "input_not_object", 400),
    (b'{"action": "order.create", "input": []}', "input_not_object", 400),
    (b'{"action": "order.create", "input": "x"}', "input_not_object", 400),
    (b'{"action": "order.create", "input": {}, "explain": "yes"}', "explain_not_bool", 400),
    (b'{"action": "order.create", "input": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}", "too_deep", 400),
    (b"[" * 100_000 + b"]" * 100_000, "too_deep", 400),
    (b'{"action": "order.create", "input": {"pad": "' + b"x" * (1024 * 1024) + b'"}}', "body_too_large", 413),
]


@pytest.mark.parametrize(("data", "reason", "status"), MALFORMED,
                         ids=[f"{m[1]}-{i}" for i, m in enumerate(MALFORMED)])
def test_malformed_requests_are_refused_with_the_error_body(client, app, data, reason, status):
    response = client.post("/v1/decisions", data=data, content_type="application/json")
    assert response.status_code == status
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "bad_request"
    assert body["error"]["reason"] == reason
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "allow" not in json.dumps(body)


def test_a_body_over_the_limit_is_refused_before_it_is_read(sqlite_url, shop_rules):
    app = create_app(test_config(sqlite_url, shop_rules, max_body_bytes=200))
    try:
        big = dict(ALLOWED, input=dict(ALLOWED["input"], pad="x" * 300))
        response = app.test_client().post("/v1/decisions", json=big)
        assert response.status_code == 413
        assert response.get_json()["error"]["limit"] == 200
        # a request under the limit still passes
        assert app.test_client().post("/v1/decisions", json=ALLOWED).status_code == 200
    finally:
        app.extensions["ordergate"].close()


def test_nesting_limit_is_configurable(sqlite_url, shop_rules):
    app = create_app(test_config(sqlite_url, shop_rules, max_depth=4))
    try:
        client = app.test_client()
        # {"action", "input": {"context": {}, "resource": {"customer": {...}}}} is depth 4
        assert client.post("/v1/decisions", json=ALLOWED).status_code == 200
        deeper = {"action": "order.create", "input": dict(ALLOWED["input"], extra={"a": {"b": {"c": 1}}})}  # depth 5
        response = client.post("/v1/decisions", json=deeper)
        assert response.status_code == 400
        assert response.get_json()["error"]["reason"] == "too_deep"
    finally:
        app.extensions["ordergate"].close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(["order.create", "order.cancel", "", "x.y"]) | json_values,
        "input": st.fixed_dictionaries(
            {},
            optional={
                "context": st.fixed_dictionaries(
                    {}, optional={"system": st.sampled_from(["shop", "other"]) | json_values}
                ),
                "resource": st.fixed_dictionaries(
                    {},
                    optional={
                        "customer": st.fixed_dictionaries({}, optional={"blocked": json_values, "vip": json_values})
                    },
                )
                | json_values,
            },
        )
        | json_values,
        "explain": st.booleans() | json_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=envelopes | json_values)
def test_random_json_bodies_never_get_a_500_or_a_wrong_allow(client, body):
    # `json=None` would send no body at all: send the text `null` like any other value
    response = client.post("/v1/decisions", data=json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 400, 413, 422), response.get_data(as_text=True)
    answer = response.get_json()
    if response.status_code in (400, 413):
        assert answer["error"]["code"] == "bad_request"
        return
    assert set(answer) >= DECISION_KEYS
    if answer["allow"]:
        # only a well-formed request for a good customer can be allowed
        assert response.status_code == 200 and answer["error"] is None
        assert body["action"] == "order.create"
        assert body["input"]["context"]["system"] == "shop"
        assert body["input"]["resource"]["customer"]["blocked"] is False
    if response.status_code == 422:
        assert answer["allow"] is False and answer["error"]["code"] in (
            "unknown_system", "unknown_action", "missing_fact", "invalid_fact")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_random_bytes_are_never_a_500(client, data):
    response = client.post("/v1/decisions", data=data, content_type="application/json")
    assert response.status_code in (200, 400, 422)
    if response.status_code == 200:
        assert response.get_json()["allow"] in (True, False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(envelopes | json_values, max_size=6))
def test_random_batches_answer_every_item_and_allow_only_good_ones(client, items):
    response = client.post("/v1/decisions/batch", json={"requests": items})
    assert response.status_code == 200, response.get_data(as_text=True)
    results = response.get_json()["results"]
    assert len(results) == len(items)
    for item, result in zip(items, results, strict=False):
        assert set(result) >= DECISION_KEYS
        if result["allow"]:
            assert result["error"] is None
            assert item["action"] == "order.create"
            assert item["input"]["context"]["system"] == "shop"
            assert item["input"]["resource"]["customer"]["blocked"] is False
        else:
            assert result["obligations"] == []


# -- batch -------------------------------------------------------------------------------------


def test_batch_answers_in_order_and_one_bad_item_spoils_nothing(client):
    requests = [ALLOWED, 42, DENIED, {"action": 7, "input": {}}, {"action": "order.create", "input": []},
                {"action": "order.cancel", "input": {"context": {"system": "shop"}}}]
    response = client.post("/v1/decisions/batch", json={"requests": requests})
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert len(results) == len(requests)
    assert all(set(r) >= DECISION_KEYS for r in results)
    assert results[0]["allow"] is True and results[0]["rules"] == ["T-02"]
    assert results[2]["allow"] is False and results[2]["rules"] == ["T-01"]
    for index, reason in ((1, "not_object"), (3, "action_not_string"), (4, "input_not_object")):
        assert results[index]["allow"] is False
        assert results[index]["decision_id"] is None
        assert results[index]["error"]["code"] == "bad_request"
        assert results[index]["error"]["reason"] == reason
    assert results[5]["error"]["code"] == "unknown_action"
    ids = [r["decision_id"] for r in results if r["decision_id"]]
    assert len(set(ids)) == len(ids) == 3


def test_batch_explain_applies_to_items_that_do_not_say(client):
    body = {"explain": True, "requests": [DENIED, dict(DENIED, explain=False)]}
    results = client.post("/v1/decisions/batch", json=body).get_json()["results"]
    assert "trace" in results[0] and "trace" not in results[1]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "not_object"),
        ({}, "requests_not_list"),
        ({"requests": {"a": ALLOWED}}, "requests_not_list"),
        ({"requests": [ALLOWED], "explain": 1}, "explain_not_bool"),
    ],
)
def test_malformed_batch_envelopes_are_400(client, body, reason):
    response = client.post("/v1/decisions/batch", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"] == {**response.get_json()["error"], "code": "bad_request", "reason": reason}


def test_batch_size_limit(sqlite_url, shop_rules):
    app = create_app(test_config(sqlite_url, shop_rules, max_batch=3))
    try:
        client = app.test_client()
        assert client.post("/v1/decisions/batch", json={"requests": [ALLOWED] * 3}).status_code == 200
        response = client.post("/v1/decisions/batch", json={"requests": [ALLOWED] * 4})
        assert response.status_code == 400
        assert response.get_json()["error"]["reason"] == "batch_too_large"
        assert response.get_json()["error"]["limit"] == 3
    finally:
        app.extensions["ordergate"].close()


# -- the decision log --------------------------------------------------------------------------


def test_every_decision_is_logged_with_its_input_result_and_version(client, app):
    runtime = app.extensions["ordergate"]
    single = client.post("/v1/decisions", json=ALLOWED).get_json()
    error = client.post(
        "/v1/decisions", json={"action": "order.cancel", "input": {"context": {"system": "shop"}}}
    ).get_json()
    batch = client.post("/v1/decisions/batch", json={"requests": [DENIED, 5]}).get_json()["results"]
    client.post("/v1/decisions", data=b"{", content_type="application/json")  # malformed: nothing to log
    assert runtime.writer.flush(timeout=10)
    logged = {r["decision_id"]: r for r in runtime.store.query_decisions(limit=100)}
    assert set(logged) == {single["decision_id"], error["decision_id"], batch[0]["decision_id"]}
    record = logged[single["decision_id"]]
    assert record["action"] == "order.create"
    assert record["input"] == ALLOWED["input"]
    assert record["policy_version"] == single["policy_version"]
    assert record["result"]["allow"] is True and record["result"]["rules"] == ["T-02"]
    assert logged[error["decision_id"]]["result"]["error"]["code"] == "unknown_action"


class _RefusingWriter:
    """A decision log writer whose queue is always full (on_full=fail_closed)."""

    def __init__(self):
        self.submitted = 0

    def record(self, records):
        records = list(records)
        self.submitted += len(records)
        return {r.decision_id for r in records}

    def stats(self):
        return {"queued": 50000, "written": 0, "failed_batches": 3, "dropped": 0, "healthy": False,
                "last_error": "OperationalError: database is down", "on_full": "fail_closed"}

    def flush(self, timeout=None):
        return False

    def close(self, timeout=None):
        return False


def test_decisions_fail_closed_when_the_log_refuses_them(sqlite_url, shop_rules):
    writer = _RefusingWriter()
    app = create_app(test_config(sqlite_url, shop_rules, decision_log_writer=writer, log_on_full="fail_closed"))
    try:
        client = app.test_client()
        response = client.post("/v1/decisions", json=ALLOWED)
        assert response.status_code == 503
        body = response.get_json()
        assert set(body) == DECISION_KEYS
        assert body["allow"] is False and body["obligations"] == [] and body["rules"] == []
        assert body["error"]["code"] == "decision_log_unavailable"
        batch = client.post("/v1/decisions/batch", json={"requests": [ALLOWED, ALLOWED]}).get_json()["results"]
        assert [r["allow"] for r in batch] == [False, False]
        assert {r["error"]["code"] for r in batch} == {"decision_log_unavailable"}
        assert writer.submitted == 3
        metrics = client.get("/metrics").get_data(as_text=True)
        assert "ordergate_decision_log_fail_closed_total 3" in metrics
        assert "ordergate_decision_log_healthy 0" in metrics
        assert 'ordergate_decision_log_on_full{mode="fail_closed"} 1' in metrics
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert any("decision log" in p for p in ready.get_json()["problems"])
    finally:
        app.extensions["ordergate"].close()


def test_metrics_count_decisions_by_allow_and_error(client):
    client.post("/v1/decisions", json=ALLOWED)
    client.post("/v1/decisions", json=ALLOWED)
    client.post("/v1/decisions", json=DENIED)
    client.post("/v1/decisions", json={"action": "order.create", "input": {}})
    client.post("/v1/decisions", data=b"[", content_type="application/json")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'ordergate_decisions_total{allow="true",error=""} 2' in text
    assert 'ordergate_decisions_total{allow="false",error=""} 1' in text
    assert 'ordergate_decisions_total{allow="false",error="missing_fact"} 1' in text
    assert 'ordergate_bad_requests_total{reason="not_json"} 1' in text
    assert "ordergate_decision_request_seconds_count 4" in text
    assert 'ordergate_decision_request_seconds_bucket{le="+Inf"} 4' in text
    assert "ordergate_active_policy_version{version=\"sha256:" in text
    assert "ordergate_decision_log_queue_depth" in text


def test_health_and_readiness(client, app):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["policy_version"] == app.extensions["ordergate"].active_version_id


def test_unknown_routes_and_methods_get_the_error_body(client):
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    wrong = client.put("/v1/decisions", json=ALLOWED)
    assert wrong.status_code == 405 and wrong.get_json()["error"]["code"] == "method_not_allowed"


def test_a_body_arriving_in_small_pieces_is_read_whole():
    import io

    from api.body import _read_at_most

    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes):
            self.data = data

        def read(self, size=-1):
            piece, self.data = self.data[:1], self.data[1:]
            return piece

    body = json.dumps(ALLOWED).encode()
    assert _read_at_most(Trickle(body), 10_000) == body
    assert _read_at_most(Trickle(body), 5) == body[:5]
