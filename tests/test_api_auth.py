"""Access control: decide, audit and admin bearer tokens; 401 and 403 with the error body."""
from __future__ import annotations

import base64
import json
import os

import flask
import pytest

from api import create_app
from api.auth import Authenticator, TokenConfigError, tokens_from_env
from api.errors import ApiError
from api.testing import ALLOWED, SHOP, SHOP_V2, test_config, write_rules

D_SECRET, A_SECRET, X_SECRET = "d-secret-7f3a9c21e4", "a-secret-0b5d8e6f17", "x-secret-94c2a7e35d"
TOKENS = {"decide": [f"crm:{D_SECRET}"], "audit": [f"auditors:{A_SECRET}"], "admin": [f"root:{X_SECRET}"]}


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
    ("post", "/v1/versions/active/activate", "admin", {}),
]

ROLE_TOKENS = {"decide": D_SECRET, "audit": A_SECRET, "admin": X_SECRET}
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


@pytest.mark.parametrize("header", [D_SECRET, f"Basic {D_SECRET}", "Bearer", "Bearer ", f"bearer {D_SECRET} x",
                                    f"Bearer {D_SECRET[:-1]}", f"Bearer {D_SECRET}2", "Bearer =", "Bearer crm",
                                    f"Bearer crm:{D_SECRET}", "Bearer :"])
def test_malformed_or_wrong_authorization_headers_are_401(client, header):
    response = client.post("/v1/decisions", json=ALLOWED, headers={"Authorization": header})
    assert response.status_code == 401
    assert set(response.get_json()) == {"error"}


def test_scheme_is_case_insensitive(client):
    assert (
        client.post("/v1/decisions", json=ALLOWED, headers={"Authorization": f"bearer {D_SECRET}"}).status_code == 200
    )


def test_health_metrics_and_openapi_are_open(client):
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/openapi.yaml"):
        assert client.get(path).status_code == 200, path


def test_the_token_name_is_recorded_as_author_and_actor(client):
    published = client.post("/v1/versions", json={"files": SHOP_V2, "message": "v2"}, headers=bearer(X_SECRET))
    assert published.status_code == 201
    assert published.get_json()["author"] == "root"
    history = client.get("/v1/activations", headers=bearer(A_SECRET)).get_json()["activations"]
    assert history[0]["actor"] == "root"


def test_every_authenticated_request_names_its_caller(app):
    with app.test_client() as client:
        assert client.get("/v1/versions", headers=bearer(A_SECRET)).status_code == 200
        assert flask.g.caller == "auditors"
        decided = client.post("/v1/decisions", json=ALLOWED, headers=bearer(X_SECRET))
        assert decided.status_code == 200
        # the decision endpoints run without Flask's context (api.decide_http): the log names the caller
        logged = client.get(f"/v1/decisions/{decided.get_json()['decision_id']}", headers=bearer(A_SECRET))
        assert logged.get_json()["caller"] == "root"


def test_a_base64_secret_with_equals_signs_is_one_secret():
    # `openssl rand -base64 16` ends in `==`: the old `name=secret` split took it for a name and an
    # empty secret, so the real token got 401 and `Bearer =` got in as admin
    secret = base64.b64encode(os.urandom(16)).decode()
    urlsafe = base64.urlsafe_b64encode(os.urandom(32)).decode()
    auth = Authenticator(tokens_from_env({"ORDERGATE_TOKENS_ADMIN": f"release:{secret}, ops:{urlsafe}"}))
    assert auth.require(f"Bearer {secret}", "admin").name == "release"
    assert auth.require(f"Bearer {urlsafe}", "admin").name == "ops"
    for forged in ("=", "==", secret.rstrip("="), secret.split("=")[0] + "=", f"release:{secret}", "release"):
        with pytest.raises(ApiError) as refused:
            auth.require(f"Bearer {forged}", "decide")
        assert refused.value.status == 401


def test_tokens_from_the_environment_and_a_tokens_file(tmp_path):
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"# role name secret\n\naudit auditors {A_SECRET}\n  admin   root {X_SECRET}  \n")
    env = {"ORDERGATE_TOKENS_DECIDE": f" crm:{D_SECRET} ,, erp:{D_SECRET[::-1]} ,",
           "ORDERGATE_TOKENS_FILE": str(tokens_file)}
    tokens = tokens_from_env(env)
    assert [(t.role, t.name) for t in tokens] == [("audit", "auditors"), ("admin", "root"),
                                                  ("decide", "crm"), ("decide", "erp")]
    assert all(t.secret not in repr(t) for t in tokens)
    auth = Authenticator(tokens)
    assert auth.require(f"Bearer {X_SECRET}", "audit").name == "root"
    assert auth.require(f"Bearer {D_SECRET[::-1]}", "decide").name == "erp"
    with pytest.raises(ApiError) as forbidden:
        auth.require(f"Bearer {D_SECRET}", "admin")
    assert forbidden.value.status == 403


def test_no_tokens_means_authentication_off_for_callers_on_this_machine():
    auth = Authenticator([])
    assert not auth.enabled
    assert auth.require(None, "admin").name == "loopback"


WEAK = "short-1a2b"


@pytest.mark.parametrize(("env", "expected"), [
    ({"ORDERGATE_TOKENS_ADMIN": X_SECRET}, "ORDERGATE_TOKENS_ADMIN, entry 1: a token needs a name"),
    ({"ORDERGATE_TOKENS_ADMIN": f"root={X_SECRET}"}, "a token needs a name: write `name:secret`"),
    ({"ORDERGATE_TOKENS_ADMIN": "root:"}, "the secret of token `root` is empty"),
    ({"ORDERGATE_TOKENS_ADMIN": f"root:{WEAK}"}, "the secret of token `root` is too weak"),
    ({"ORDERGATE_TOKENS_ADMIN": "root:" + "ab" * 12}, "the secret of token `root` is too weak"),
    ({"ORDERGATE_TOKENS_ADMIN": f"ro ot:{X_SECRET}"}, "a token name has 1 to 64 letters"),
    ({"ORDERGATE_TOKENS_ADMIN": f"{A_SECRET}x=:{X_SECRET}"}, "a token name has 1 to 64 letters"),
    ({"ORDERGATE_TOKENS_ADMIN": f"loopback:{X_SECRET}"}, "the name `loopback` is reserved"),
    ({"ORDERGATE_TOKENS_ADMIN": f"root:{X_SECRET}\u00e9"}, "not visible ASCII"),
    ({"ORDERGATE_TOKENS_ADMIN": f"root:{X_SECRET}", "ORDERGATE_TOKENS_AUDIT": f"a:{X_SECRET}"},
     "ORDERGATE_TOKENS_ADMIN, entry 1: the secret of token `root` is also the secret of token `a`"),
    ({"ORDERGATE_TOKENS_ADMIN": f"root:{X_SECRET}", "ORDERGATE_TOKENS_AUDIT": f"{X_SECRET}:{A_SECRET}"},
     "the name of a token is the secret of another"),
])
def test_bad_token_configuration_is_refused_without_showing_the_secret(env, expected):
    with pytest.raises(TokenConfigError) as refused:
        Authenticator(tokens_from_env(env))
    message = str(refused.value)
    assert expected in message
    for secret in (X_SECRET, A_SECRET, WEAK, "ab" * 12):
        assert secret not in message


def test_a_bad_tokens_file_is_refused_with_its_line(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"admin root {X_SECRET}\nadmin {A_SECRET}\n")
    with pytest.raises(TokenConfigError) as refused:
        tokens_from_env({"ORDERGATE_TOKENS_FILE": str(path)})
    assert f"{path}:2: a line has three fields" in str(refused.value) and A_SECRET not in str(refused.value)
    with pytest.raises(TokenConfigError, match="cannot read the tokens file"):
        tokens_from_env({"ORDERGATE_TOKENS_FILE": str(tmp_path / "missing")})
    with pytest.raises(TokenConfigError, match="unknown role `superuser`"):
        Authenticator({"superuser": [f"x:{X_SECRET}"]})


def test_create_app_refuses_a_weak_token(sqlite_url, tmp_path):
    with pytest.raises(TokenConfigError, match="too weak"):
        create_app(test_config(sqlite_url, write_rules(tmp_path / "rules", SHOP), tokens={"admin": ["root:=="]}))


# -- authentication off: this machine only, and no request a web page could forge -----------------


@pytest.fixture
def open_client(sqlite_url, tmp_path):
    app = create_app(test_config(sqlite_url, write_rules(tmp_path / "rules", SHOP)))
    yield app.test_client()
    app.extensions["ordergate"].close()


def test_without_tokens_a_caller_from_another_machine_is_refused(open_client):
    far = open_client.post("/v1/decisions", json=ALLOWED, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert far.status_code == 403 and "only callers on this machine" in far.get_json()["error"]["message"]
    rebound = open_client.get("/v1/versions", headers={"Host": "attacker.example:8080"})
    assert rebound.status_code == 403
    for host in ("localhost", "127.0.0.1:8080", "[::1]:8080"):
        assert open_client.get("/v1/versions", headers={"Host": host}).status_code == 200, host
    assert open_client.post("/v1/decisions", json=ALLOWED, environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


def test_a_post_that_is_not_json_is_refused_before_anything_changes(open_client):
    versions = open_client.get("/v1/versions").get_json()
    v1 = versions["active"]
    v2 = open_client.post("/v1/versions", json={"files": SHOP_V2, "message": "v2"}).get_json()["id"]
    # what a web page may send without asking the browser first: text/plain, a form, or no type
    for kind in ({"content_type": "text/plain"}, {"content_type": "application/x-www-form-urlencoded"}, {}):
        rollback = open_client.post(f"/v1/versions/{v1}/activate", data=b'{"reason": "x"}' if kind else None, **kind)
        assert rollback.status_code == 415, kind
        assert rollback.get_json()["error"]["code"] == "unsupported_media_type"
        publish = open_client.post("/v1/versions", data=json.dumps({"files": SHOP, "message": "x"}), **kind)
        assert publish.status_code == 415
        assert open_client.post("/v1/decisions", data=json.dumps(ALLOWED), **kind).status_code == 415
    assert open_client.get("/v1/versions").get_json()["active"] == v2
    assert len(open_client.get("/v1/versions").get_json()["versions"]) == 2
    ok = open_client.post("/v1/decisions", data=json.dumps(ALLOWED), content_type="application/json; charset=utf-8")
    assert ok.status_code == 200


def test_readiness_and_503_bodies_never_name_the_database(tmp_path):
    # nothing listens on this port (the edge helper's range); the names must not reach any caller
    url = "postgresql+psycopg://leakuser:leakpw@127.0.0.1:18411/leakdb?connect_timeout=2"
    app = create_app(test_config(url, write_rules(tmp_path / "rules", SHOP)))
    try:
        client = app.test_client()
        bodies = [client.get("/readyz"), client.get("/v1/versions"), client.get("/v1/activations"),
                  client.get("/v1/decisions"), client.post("/v1/versions/active/activate", json={})]
        for response in bodies:
            assert response.status_code == 503, response.get_json()
            text = response.get_data(as_text=True)
            for secret in ("leakuser", "leakpw", "leakdb", "18411", "127.0.0.1", "psycopg"):
                assert secret not in text, (secret, text)
        assert "the store does not answer" in bodies[0].get_json()["problems"]
    finally:
        app.extensions["ordergate"].close()
