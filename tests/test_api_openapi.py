"""The served OpenAPI document is true: every route is documented, every documented path exists."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from api import create_app
from api.errors import DECISION_STATUS, ERRORS
from api.testing import ALLOWED, SHOP, test_config, write_rules

DOCUMENT = Path(__file__).resolve().parent.parent / "api" / "openapi.yaml"
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("openapi")
    app = create_app(test_config(f"sqlite:///{folder / 'db.sqlite'}", write_rules(folder / "rules", SHOP)))
    yield app
    app.extensions["ordergate"].close()


def _routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("workbench."):
            continue  # the workbench's HTML pages for people (docs/workbench.md), not the JSON API
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
    return routes


def _documented(document) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item if method in METHODS}


def test_every_route_is_documented_and_every_documented_operation_exists(app):
    document = yaml.safe_load(DOCUMENT.read_text())
    routes, documented = _routes(app), _documented(document)
    # path parameter names may differ between Flask and the document; compare the shapes
    shape = lambda pairs: {(re.sub(r"\{[^}]+\}", "{}", p), m) for p, m in pairs}  # noqa: E731
    assert shape(routes) - shape(documented) == set(), "routes missing from api/openapi.yaml"
    assert shape(documented) - shape(routes) == set(), "documented operations that do not exist"
    assert len(routes) == len(documented)


def test_the_document_is_openapi_3_1_and_served(app):
    client = app.test_client()
    served = client.get("/openapi.json").get_json()
    assert served == yaml.safe_load(DOCUMENT.read_text())
    assert served["openapi"].startswith("3.1")
    assert client.get("/openapi.yaml").get_data(as_text=True) == DOCUMENT.read_text()


def test_every_reference_resolves_and_every_error_code_is_documented():
    text = DOCUMENT.read_text()
    document = yaml.safe_load(text)
    for ref in set(re.findall(r'\$ref: "#/([^"]+)"', text)):
        node = document
        for part in ref.split("/"):
            assert part in node, f"unresolved $ref #/{ref}"
            node = node[part]
    error_codes = document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    assert set(error_codes) == set(ERRORS)
    decision_codes = (document["components"]["schemas"]["Decision"]["properties"]["error"]["oneOf"][1]
                      ["properties"]["code"]["enum"])
    assert set(decision_codes) == {c for c in DECISION_STATUS if c is not None}


def test_every_operation_documents_its_error_statuses(app):
    document = yaml.safe_load(DOCUMENT.read_text())
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            statuses = set(operation["responses"])
            if operation.get("security") != []:
                assert {"401", "403"} <= statuses, f"{method} {path} does not document 401/403"
            assert any(s.startswith("2") for s in statuses), f"{method} {path} has no success response"
            if method == "post":
                assert "415" in statuses, f"{method} {path} does not document 415 (not JSON)"


# -- every status an operation answers is documented -------------------------------------------

PROBE_TOKENS = {"decide": ["crm:probe-decide-7c1e9a"], "audit": ["auditors:probe-audit-3b8d2f"],
                "admin": ["root:probe-admin-5e0a4c"]}
PROBE_SECRETS = {"decide": "probe-decide-7c1e9a", "audit": "probe-audit-3b8d2f", "admin": "probe-admin-5e0a4c"}


@pytest.fixture(scope="module")
def probe_client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe")
    app = create_app(test_config(f"sqlite:///{folder / 'db.sqlite'}", write_rules(folder / "rules", SHOP),
                                 tokens=PROBE_TOKENS, max_body_bytes=4096))
    yield app.test_client()
    app.extensions["ordergate"].close()


def _fill(path: str, client) -> list[str]:
    """The path with real ids, and with ids that do not exist."""
    admin = {"Authorization": f"Bearer {PROBE_SECRETS['admin']}"}
    decision = client.post("/v1/decisions", json=ALLOWED, headers=admin).get_json()["decision_id"]
    real = {"version": "active", "a": "active", "b": "active", "decision_id": decision}
    missing = {
        "version": "sha256:" + "f" * 64,
        "a": "active",
        "b": "ffffffffffff",
        "decision_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    }
    return [re.sub(r"\{([^}]+)\}", lambda m, ids=ids: ids[m.group(1)], path) for ids in (real, missing)]


def test_every_status_an_operation_answers_is_documented(probe_client):
    document = yaml.safe_load(DOCUMENT.read_text())
    client = probe_client
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            documented = set(operation["responses"])
            seen: set[str] = set()
            for url in _fill(path, client):
                probes: list[dict] = [{}, {"headers": {"Authorization": "Bearer nope"}}]
                for secret in PROBE_SECRETS.values():
                    auth = {"Authorization": f"Bearer {secret}"}
                    probes.append({"headers": auth, **({"json": {}} if method == "post" else {})})
                    probes.append({"headers": auth, "query_string": {"limit": "x", "cursor": "-1", "since": "x"}})
                    if method == "post":
                        probes += [{"headers": auth, "data": "x", "content_type": "text/plain"},
                                   {"headers": auth, "data": "{", "content_type": "application/json"},
                                   {"headers": auth, "data": "[" * 40 + "]" * 40, "content_type": "application/json"},
                                   {"headers": auth, "json": {"pad": "x" * 20_000}},
                                   {"headers": auth, "json": ALLOWED}]
                for probe in probes:
                    response = getattr(client, method)(url, **probe)
                    seen.add(str(response.status_code))
                    assert str(response.status_code) in documented, (method, url, probe.get("headers"),
                                                                     response.status_code, response.get_json())
            assert seen, (method, path)
