"""`ordergate log / replay / explain` against the database and against a running service."""
from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

import cli
from api.testing import ALLOWED, DENIED, SHOP_V2

PORT = 18811


@pytest.fixture
def logged(shop_app):
    client = shop_app.test_client()
    ids = [client.post("/v1/decisions", json=r).get_json()["decision_id"] for r in (ALLOWED, DENIED, ALLOWED)]
    assert shop_app.extensions["ordergate"].writer.flush(timeout=10)
    return ids


@pytest.fixture
def service(shop_app):
    server = make_server("127.0.0.1", PORT, shop_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{PORT}"
    server.shutdown()
    thread.join()


def _run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


def test_log_filters_and_formats_the_same_from_the_database_and_the_service(logged, sqlite_url, service):
    for where in (("--database", sqlite_url), ("--url", service)):
        lines = _run("log", "--format", "json", *where).stdout.splitlines()
        assert [json.loads(line)["decision_id"] for line in lines] == logged
        denied = _run("log", "--allow", "false", "--format", "json", *where).stdout.splitlines()
        assert [json.loads(line)["decision_id"] for line in denied] == [logged[1]]
        assert [json.loads(line)["decision_id"] for line in _run("log", "--limit", "2", "--format", "json",
                                                                  *where).stdout.splitlines()] == logged[:2]
        text = _run("log", "--rule", "T-01", *where).stdout.splitlines()
        assert len(text) == 1 and logged[1] in text[0] and "DENY" in text[0] and "T-01" in text[0]


def test_replay_and_explain_from_the_database_and_the_service(shop_app, logged, sqlite_url, service):
    client = shop_app.test_client()
    v2 = client.post("/v1/versions", json={"files": SHOP_V2, "message": "v2"}).get_json()["id"]
    for where in (("--database", sqlite_url), ("--url", service)):
        same = _run("replay", logged[0], *where)
        assert same.exit_code == 0 and json.loads(same.stdout)["match"] is True
        other = _run("replay", logged[0], "--version", v2, *where)
        assert json.loads(other.stdout)["replayed_version"] == v2
        assert other.exit_code == (0 if json.loads(other.stdout)["match"] else 1)
        explained = _run("explain", logged[1], *where)
        assert explained.exit_code == 0, explained.output
        assert json.loads(explained.stdout) == client.get(f"/v1/decisions/{logged[1]}/explain").get_json()
        text = _run("explain", logged[1], "--format", "text", *where).stdout.splitlines()
        assert text[0].startswith(f"{logged[1]} ") and ": DENY by T-01 on " in text[0]
        assert any(line.startswith("  T-01 (guard, denied): ") for line in text)
        assert "  to allow, change one of these sets of facts:" in text
        missing = _run("replay", "nope", *where)
        assert missing.exit_code == 1 and "nope" in missing.output


def test_log_says_when_the_service_cannot_be_reached():
    result = _run("log", "--url", "http://127.0.0.1:18812")
    assert result.exit_code == 2 and "cannot reach http://127.0.0.1:18812" in result.output
