"""Explain any logged decision (GET /v1/decisions/{id}/explain, `ordergate explain`) and
`"explain": "why_not"` on POST /v1/decisions, on SQLite and PostgreSQL."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
import engine
from api import create_app
from api.testing import test_config

O2C = Path(__file__).parent / "fixtures" / "o2c"
LOCKED_EDIT = {
    "action": "salesorder.update",
    "input": {"context": {"system": "d365_sales", "organization": {"is_sop_integration_enabled": True}},
              "subject": {"is_integration_user": False},
              "resource": {"salesorder": {"statecode": "submitted"}}},
}


@pytest.fixture
def app(db_url):
    app = create_app(test_config(db_url, O2C))
    yield app
    app.extensions["ordergate"].close()


@pytest.fixture
def client(app):
    return app.test_client()


def _run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


def _decide_explain(tmp_path, request):
    path = tmp_path / "input.json"
    path.write_text(json.dumps(request["input"]))
    result = _run("decide", request["action"], "--input", path, "--rules", O2C, "--explain")
    assert result.exit_code == 2, result.output
    return json.loads(result.stdout)


def _log(app, client, request, **extra):
    response = client.post("/v1/decisions", json={**request, **extra})
    assert app.extensions["ordergate"].writer.flush(timeout=10)
    return response


def test_explain_of_a_logged_denial_is_decide_explain_of_its_input_on_its_version(app, client, db_url, tmp_path):
    decision_id = _log(app, client, LOCKED_EDIT).get_json()["decision_id"]
    expected = _decide_explain(tmp_path, LOCKED_EDIT)
    assert expected["rules"] == ["PRC-09"] and expected["trace"]

    body = client.get(f"/v1/decisions/{decision_id}/explain").get_json()
    assert body["explanation"] == expected
    assert body["matches_log"] is True and body["policy_version"] == expected["policy_version"]
    assert {c["fact"] for a in body["why_not"]["to_allow"] for c in a["changes"]} >= {"integ"}

    # another version becomes active: the logged decision is still explained on its own version
    changed = engine.read_folder(O2C)
    changed["pricing.yaml"] = changed["pricing.yaml"].replace(
        "a submitted order is locked", "submitted orders are locked"
    )
    published = client.post("/v1/versions", json={"files": changed, "message": "PRC-09 reworded"})
    assert published.status_code == 201, published.get_json()
    assert client.get("/v1/versions").get_json()["active"] != expected["policy_version"]
    assert client.get(f"/v1/decisions/{decision_id}/explain").get_json()["explanation"] == expected

    local = _run("explain", decision_id, "--database", db_url)
    assert local.exit_code == 0, local.output
    assert json.loads(local.stdout) == client.get(f"/v1/decisions/{decision_id}/explain").get_json()


def test_explain_of_an_unknown_decision_is_404_and_exit_1(client, db_url):
    assert client.get("/v1/decisions/nope/explain").status_code == 404
    result = _run("explain", "nope", "--database", db_url)
    assert result.exit_code == 1 and "no logged decision `nope`" in result.output


def test_why_not_answers_the_trace_and_the_changes_that_flip_it(app, client):
    body = _log(app, client, LOCKED_EDIT, explain="why_not").get_json()
    assert body["allow"] is False and body["trace"]
    changes = sorted((c["fact"], c["to"]) for a in body["why_not"]["to_allow"] for c in a["changes"])
    assert ("submitted_by_integration_user", True) in changes
    plain = _log(app, client, LOCKED_EDIT, explain=True).get_json()
    assert "why_not" not in plain and plain["trace"] == body["trace"]
    assert "why_not" not in _log(app, client, LOCKED_EDIT).get_json()
    bad = client.post("/v1/decisions", json={**LOCKED_EDIT, "explain": "why"})
    assert bad.status_code == 400 and bad.get_json()["error"]["reason"] == "explain_not_bool"
