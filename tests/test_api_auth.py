"""Access control: decide, audit and admin bearer tokens; 401 and 403 with the error body."""
from __future__ import annotations

import pytest

from api import create_app
from api.auth import Authenticator, tokens_from_env
from api.errors import ApiError
from api.testing import ALLOWED, SHOP, SHOP_V2, test_config, write_rules

TOKENS = {"decide": ["crm=d-secret"], "audit": ["a-secret"], "admin": ["root=x-secret"]}


@pytest.fixture
def app(sqlite_url, tmp_path):
    app = create_app(test_config(sqlite_url, write_rules(tmp_path / "rules", SHOP), tokens=TOKENS))
    yield app
    app.extensions["ordergate"].close()


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ROUTES = [
    ("post", "/v1/decisions", "decide", ALLOWED),
    ("post", "/v1/decisions/batch", "decide", {"requests": [ALLOWED]}),
    ("get", "/v1/versions", "audit", None),
    ("get", "/v1/versions/active", "audit", None),
    ("get", "/v1/versions/active/diff/active", "audit", None),
    ("get", "/v1/activations", "audit", None),
    ("get", "/v1/decisions", "audit", None),
    ("get", "/v1/audit/verify", "audit", None),
    ("post", "/v1/versions", "admin", {"files": SHOP_V2, "message": "v2"}),
    ("post", "/v1/versions/active/activate", "admin", None),
]

ROLE_TOKENS = {"decide": "d-secret", "audit": "a-secret", "admin": "x-secret"}
HOLDS = {"decide": {"decide"}, "audit": {"audit"}, "admin": {"decide", "audit", "admin"}}


@pytest.mark.parametrize(("method", "path", "role", "body"), ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES])
def test_every_protected_route_needs_a_token_of_the_right_role(client, method, path, role, body):
    call = getattr(client, method)
    anonymous = call(path, json=body)
    assert anonymous.status_code == 401
    assert anonymous.get_json()["error"]["code"] == "unauthorized"
    wrong = call(path, json=body, headers=bearer("nope"))
    assert wrong.status_code == 401
    for holder, token in ROLE_TOKENS.items():
        response = call(path, json=body, headers=bearer(token))
        if role in HOLDS[holder]:
            assert response.status_code in (200, 201), (holder, response.get_json())
        else:
            assert response.status_code == 403, holder
            assert response.get_json()["error"]["code"] == "forbidden"
            assert "allow" not in response.get_json()


@pytest.mark.parametrize("header", ["d-secret", "Basic d-secret", "Bearer", "Bearer ", "bearer d-secret x",
                                    "Bearer d-secre", "Bearer d-secret2"])
def test_malformed_or_wrong_authorization_headers_are_401(client, header):
    response = client.post("/v1/decisions", json=ALLOWED, headers={"Authorization": header})
    assert response.status_code == 401
    assert set(response.get_json()) == {"error"}


def test_scheme_is_case_insensitive(client):
    assert client.post("/v1/decisions", json=ALLOWED, headers={"Authorization": "bearer d-secret"}).status_code == 200


def test_health_metrics_and_openapi_are_open(client):
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/openapi.yaml"):
        assert client.get(path).status_code == 200, path


def test_the_token_name_is_recorded_as_author_and_actor(client):
    published = client.post("/v1/versions", json={"files": SHOP_V2, "message": "v2"}, headers=bearer("x-secret"))
    assert published.status_code == 201
    assert published.get_json()["author"] == "root"
    history = client.get("/v1/activations", headers=bearer("a-secret")).get_json()["activations"]
    assert history[0]["actor"] == "root"


def test_tokens_from_the_environment():
    env = {"ORDERGATE_TOKENS_DECIDE": " a, b ,", "ORDERGATE_TOKENS_ADMIN": "root=c"}
    assert tokens_from_env(env) == {"decide": ["a", "b"], "audit": [], "admin": ["root=c"]}
    auth = Authenticator(tokens_from_env(env))
    assert auth.enabled
    assert auth.require("Bearer c", "audit").name == "root"
    assert auth.require("Bearer a", "decide").name.startswith("decide-")
    with pytest.raises(ApiError) as forbidden:
        auth.require("Bearer b", "admin")
    assert forbidden.value.status == 403


def test_no_tokens_means_authentication_off_for_the_local_user():
    auth = Authenticator({"decide": [], "audit": [], "admin": []})
    assert not auth.enabled
    assert auth.require(None, "admin").name == "local"


def test_bad_token_configuration_is_refused():
    with pytest.raises(ValueError):
        Authenticator({"superuser": ["x"]})
    with pytest.raises(ValueError):
        Authenticator({"admin": ["root="]})
