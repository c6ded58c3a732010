"""Lists come a page at a time; one bad item of a batch never spoils the others; every decision
id an answer carries is in the decision log."""
from __future__ import annotations

import json

import pytest

from api.testing import ALLOWED, DENIED, SHOP, SHOP_V2

SHOP_V3 = {**SHOP, "shop.yaml": SHOP["shop.yaml"].replace("title: a tiny policy", "title: a third tiny policy")}


@pytest.fixture
def client(shop_app):
    return shop_app.test_client()


def _walk(client, path: str, key: str, limit: int) -> tuple[list, int]:
    items, pages, cursor = [], 0, None
    while True:
        query = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, query_string=query)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert len(body[key]) <= limit
        items += body[key]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def test_versions_and_activations_come_a_page_at_a_time(client):
    for files in (SHOP_V2, SHOP_V3):
        assert client.post("/v1/versions", json={"files": files, "message": "next"}).status_code == 201
    everything = client.get("/v1/versions").get_json()
    assert everything["next_cursor"] is None and len(everything["versions"]) == 3
    paged, pages = _walk(client, "/v1/versions", "versions", 1)
    assert [v["id"] for v in paged] == [v["id"] for v in everything["versions"]] and pages == 3
    activations = client.get("/v1/activations").get_json()["activations"]
    paged, pages = _walk(client, "/v1/activations", "activations", 2)
    assert paged == activations and len(paged) == 3 and pages == 2
    for query in ({"cursor": "sha256:nope"}, {"limit": 0}, {"limit": 1001}, {"page": 2}):
        response = client.get("/v1/versions", query_string=query)
        assert response.status_code == 400 and response.get_json()["error"]["reason"] == "invalid_parameter"


def test_one_bad_item_never_spoils_a_batch(client, shop_app):
    deep = {"action": "order.create", "input": {"context": {"system": "shop"}}}
    node = deep["input"]
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    text = json.dumps({"requests": [ALLOWED, deep, DENIED, 7]})
    # a lone surrogate cannot be logged: only its own item is refused
    text = text[:-2] + ', {"action": "order.create", "input": {"context": {"system": "shop"}, "note": "\\ud800"}}]}'
    response = client.post("/v1/decisions/batch", data=text, content_type="application/json")
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [r["allow"] for r in results] == [True, False, False, False, False]
    assert [r["error"] and r["error"].get("reason") for r in results] == [
        None,
        "too_deep",
        None,
        "not_object",
        "not_json",
    ]
    assert results[2]["rules"] == ["T-01"]


def test_a_batch_checks_depth_item_by_item_also_when_orjson_parsed_it(client, shop_app):
    """Plain JSON (orjson's path): the whole list is checked at once, and item by item when it
    is deeper, so only the item beyond the depth is refused, and one at the depth passes."""
    max_depth = shop_app.extensions["ordergate"].config["max_depth"]

    def nested(levels):  # an item of exactly ``levels`` levels: itself, its input, then inner objects
        item = {"action": "order.create",
                "input": {"context": {"system": "shop"}, "resource": {"customer": {"blocked": False}}}}
        node = item["input"]
        for _ in range(levels - 2):
            node["x"] = {}
            node = node["x"]
        return item

    for deepest in (max_depth, max_depth + 1):
        body = {"requests": [ALLOWED, nested(deepest), DENIED]}
        response = client.post("/v1/decisions/batch", json=body)
        results = response.get_json()["results"]
        reasons = [r["error"] and r["error"].get("reason") for r in results]
        assert reasons == [None, None if deepest <= max_depth else "too_deep", None], (deepest, results)
        assert [r["allow"] for r in results] == [True, deepest <= max_depth, False]


def test_every_decision_id_answered_is_in_the_log(client, shop_app):
    answers = [client.post("/v1/decisions", json=body).get_json()
               for body in (ALLOWED, DENIED, {"action": "order.nope", "input": {"context": {"system": "shop"}}})]
    answers += client.post("/v1/decisions/batch", json={"requests": [ALLOWED, 5, {"action": 1}]}).get_json()["results"]
    runtime = shop_app.extensions["ordergate"]
    assert runtime.writer.flush(timeout=10)
    logged = {r["decision_id"] for r in runtime.store.query_decisions(limit=100)}
    ids = [a["decision_id"] for a in answers]
    assert [i is None for i in ids] == [False, False, False, False, True, True]
    assert {i for i in ids if i is not None} <= logged
