"""The decision endpoints answered without Flask (api.decide_http, as cli.front.BufferedFront calls
them) answer exactly as through Flask: the same status, headers and body (but for the new
decision ids), the same decision log records and the same metrics, for a corpus of valid requests
and of every kind of error.

Each request is one RSGI scope (what granian hands the front) answered twice, by two apps with
their own databases: through the front's WSGI door (its environ, werkzeug, the Flask routes and
error handlers: what every other route and gunicorn go through) and through its direct door.
"""
from __future__ import annotations

import json
import typing as t

import pytest

from api import create_app
from api.testing import ALLOWED, DENIED, SHOP, test_config, write_rules
from cli.front import BufferedFront

D_SECRET = "d3c1de-s3cret-0123456789abcdef"
A_SECRET = "aud1t-s3cret-0123456789abcdef"
TOKENS = {"decide": [f"crm:{D_SECRET}"], "audit": [f"auditors:{A_SECRET}"]}
SINGLE, BATCH = "/v1/decisions", "/v1/decisions/batch"
JSON_TYPE = [("content-type", "application/json")]
DECIDER = [*JSON_TYPE, ("authorization", f"Bearer {D_SECRET}")]
LIMITS = {"max_body_bytes": 4096, "max_batch": 5, "max_depth": 6}


class Headers:
    """The headers of an RSGI scope: lowercase names, in order, repeats kept."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def items(self) -> list[tuple[str, str]]:
        return list(self.pairs)

    def get(self, name: str, default: t.Any = None) -> t.Any:
        return next((v for k, v in self.pairs if k == name), default)

    def __contains__(self, name: str) -> bool:
        return any(k == name for k, _ in self.pairs)


class Scope:
    """An RSGI HTTP scope as granian builds it."""

    proto, scheme, http_version, query_string, method = "http", "http", "1.1", "", "POST"
    server = "127.0.0.1:8080"

    def __init__(self, path: str, headers: list[tuple[str, str]], client: str = "127.0.0.1:50123") -> None:
        self.path, self.headers, self.client = path, Headers(headers), client


def _doc(item: t.Any) -> bytes:
    return json.dumps(item).encode()


def _item(**facts: t.Any) -> dict:
    return {"action": "order.create", "input": {"context": {"system": "shop"}, **facts}}


def _deep(levels: int) -> dict:
    value: t.Any = True
    for _ in range(levels):
        value = {"x": value}
    return value


BLOCKED = {"resource": {"customer": {"blocked": False}}}
#: (name, path, headers, body) answered with authentication on (one decide token, one audit token)
CASES: list[tuple[str, str, list[tuple[str, str]], bytes]] = [
    ("allowed", SINGLE, DECIDER, _doc(ALLOWED)),
    ("denied", SINGLE, DECIDER, _doc(DENIED)),
    ("explain", SINGLE, DECIDER, _doc({**ALLOWED, "explain": True})),
    ("why_not", SINGLE, DECIDER, _doc({**DENIED, "explain": "why_not"})),
    ("unknown action", SINGLE, DECIDER, _doc({**ALLOWED, "action": "order.cancel"})),
    ("missing fact", SINGLE, DECIDER, _doc(_item())),
    ("invalid fact", SINGLE, DECIDER, _doc(_item(resource={"customer": {"blocked": "yes"}}))),
    ("unknown system", SINGLE, DECIDER, _doc({"action": "order.create", "input": {"context": {"system": "x"}}})),
    ("charset parameter", SINGLE, [("content-type", "Application/JSON; charset=utf-8"), DECIDER[1]],
     _doc(ALLOWED)),
    ("text/plain", SINGLE, [("content-type", "text/plain"), DECIDER[1]], _doc(ALLOWED)),
    ("no content type", SINGLE, [DECIDER[1]], _doc(ALLOWED)),
    ("form", BATCH, [("content-type", "application/x-www-form-urlencoded"), DECIDER[1]], b"a=b"),
    ("415 before 401", SINGLE, [("content-type", "text/plain")], _doc(ALLOWED)),
    ("malformed JSON", SINGLE, DECIDER, b'{"action": "order.create", "input": {'),
    ("empty body", SINGLE, DECIDER, b""),
    ("blank body", SINGLE, DECIDER, b" \n "),
    ("not UTF-8", SINGLE, DECIDER, b'{"action": "\xff"}'),
    ("NaN", SINGLE, DECIDER, b'{"action": "order.create", "input": {"n": NaN}}'),
    ("Infinity", SINGLE, DECIDER, b'{"action": "order.create", "input": {"n": -Infinity}}'),
    ("duplicate keys", SINGLE, DECIDER, b'{"action": "x", "action": "order.create", "input": '
                                        + _doc(ALLOWED["input"]) + b"}"),
    ("integer beyond 64 bits", SINGLE, DECIDER, _doc(_item(resource={"customer": {"blocked": False}},
                                                           big=12345678901234567890123))),
    ("lone surrogate", SINGLE, DECIDER, b'{"action": "order.create", "input": {"s": "\\ud800"}}'),
    ("oversized", SINGLE, DECIDER, _doc(_item(pad="x" * 5000))),
    ("too deep", SINGLE, DECIDER, _doc(_item(deep=_deep(10)))),
    ("not an object", SINGLE, DECIDER, b"[1, 2]"),
    ("action not text", SINGLE, DECIDER, _doc({"action": 1, "input": {}})),
    ("action too long", SINGLE, DECIDER, _doc({"action": "a" * 201, "input": {}})),
    ("input not object", SINGLE, DECIDER, _doc({"action": "order.create", "input": []})),
    ("bad explain", SINGLE, DECIDER, _doc({**ALLOWED, "explain": "yes"})),
    ("no token", SINGLE, JSON_TYPE, _doc(ALLOWED)),
    ("wrong token", SINGLE, [*JSON_TYPE, ("authorization", "Bearer not-a-configured-secret-123")], _doc(ALLOWED)),
    ("basic scheme", SINGLE, [*JSON_TYPE, ("authorization", f"Basic {D_SECRET}")], _doc(ALLOWED)),
    ("bearer without secret", BATCH, [*JSON_TYPE, ("authorization", "Bearer  ")], _doc({"requests": []})),
    ("wrong role", SINGLE, [*JSON_TYPE, ("authorization", f"Bearer {A_SECRET}")], _doc(ALLOWED)),
    ("request id", SINGLE, [*DECIDER, ("x-request-id", "req-42:a/b+c=d@e.f_g")], _doc(ALLOWED)),
    ("request id too long", SINGLE, [*DECIDER, ("x-request-id", "r" * 129)], _doc(ALLOWED)),
    ("request id bad character", SINGLE, [*DECIDER, ("x-request-id", "a b")], _doc(ALLOWED)),
    ("request id twice", SINGLE, [*DECIDER, ("x-request-id", "a"), ("x-request-id", "b")], _doc(ALLOWED)),
    ("not recordable", SINGLE, DECIDER, _doc({"action": "order.cre\u0000ate", "input": {}})),
    ("batch", BATCH, DECIDER, _doc({"requests": [ALLOWED, DENIED, _item()]})),
    ("batch explain", BATCH, [*DECIDER, ("x-request-id", "batch-1")],
     _doc({"explain": "why_not", "requests": [DENIED, {**ALLOWED, "explain": False}]})),
    ("batch with bad items", BATCH, DECIDER,
     _doc({"requests": [ALLOWED, [], {"input": {}}, {"action": "order.create", "input": _deep(10)},
                        {"action": "order.create", "input": {"s": 1}, "explain": 2}]})),
    ("batch lone surrogate item", BATCH, DECIDER,
     b'{"requests": [' + _doc(ALLOWED) + b', {"action": "order.create", "input": {"s": "\\udc00"}}]}'),
    ("batch empty", BATCH, DECIDER, _doc({"requests": []})),
    ("batch too large", BATCH, DECIDER, _doc({"requests": [ALLOWED] * 6})),
    ("batch not object", BATCH, DECIDER, _doc([ALLOWED])),
    ("batch requests not list", BATCH, DECIDER, _doc({"requests": ALLOWED})),
    ("batch bad explain", BATCH, DECIDER, _doc({"explain": 1, "requests": [ALLOWED]})),
    ("batch too deep beside requests", BATCH, DECIDER, _doc({"requests": [], "x": _deep(7)})),
    ("batch malformed", BATCH, DECIDER, b'{"requests": [}'),
    ("batch oversized", BATCH, DECIDER, _doc({"requests": [_item(pad="x" * 5000)]})),
    ("batch wrong role", BATCH, [*JSON_TYPE, ("authorization", f"Bearer {A_SECRET}")], _doc({"requests": []})),
]

#: (name, path, headers, client, body) answered with authentication off
LOOPBACK_CASES = [
    ("loopback", SINGLE, [*JSON_TYPE, ("host", "127.0.0.1:8080")], "127.0.0.1:50123", _doc(ALLOWED)),
    ("localhost", BATCH, [*JSON_TYPE, ("host", "localhost")], "127.0.0.1:50123", _doc({"requests": [ALLOWED]})),
    ("no Host header", SINGLE, JSON_TYPE, "127.0.0.1:50123", _doc(ALLOWED)),
    ("IPv6 loopback", SINGLE, [*JSON_TYPE, ("host", "[::1]:8080")], "::1:50123", _doc(ALLOWED)),
    ("another machine", SINGLE, [*JSON_TYPE, ("host", "127.0.0.1:8080")], "10.1.2.3:50123", _doc(ALLOWED)),
    ("rebinding", BATCH, [*JSON_TYPE, ("host", "evil.example:8080")], "127.0.0.1:50123", _doc({"requests": []})),
    ("415 first", SINGLE, [("host", "evil.example")], "10.1.2.3:1", _doc(ALLOWED)),
    ("token ignored", SINGLE, [*DECIDER, ("host", "localhost:8080")], "127.0.0.1:50123", _doc(DENIED)),
]


def _apps(tmp_path, rules, name: str, **config: t.Any):
    """Two apps alike, each with its own database: one answered through Flask, one directly."""
    apps = [create_app(test_config(f"sqlite:///{tmp_path / f'{name}-{door}.sqlite'}", rules, **config))
            for door in ("flask", "direct")]
    return apps


@pytest.fixture
def rules(tmp_path):
    return write_rules(tmp_path / "rules", SHOP)


@pytest.fixture
def opened():
    apps: list[t.Any] = []
    yield apps
    for app in apps:
        app.extensions["ordergate"].close()


def _answers(flask_app, direct_app, scope: Scope, body: bytes):
    """The answer through the front's WSGI door (Flask) and through its direct door."""
    front = BufferedFront(lambda: None, threads=1, body_timeout=1, request_timeout=1, max_body=1 << 24)
    front.app = flask_app
    through_flask = front._call(front._environ(scope, body))
    endpoint = direct_app.extensions["ordergate.direct_posts"][scope.path]
    direct = front._call_direct(endpoint, scope, body)
    return through_flask, direct


def without_ids(body: bytes) -> t.Any:
    value = json.loads(body)
    for result in [value, *(value.get("results") or [])] if isinstance(value, dict) else []:
        if isinstance(result, dict) and isinstance(result.get("decision_id"), str):
            result["decision_id"] = "<decision id>"
    return value


def _assert_same(flask_app, direct_app, scope: Scope, body: bytes, name: str) -> tuple[int, t.Any]:
    (status, headers, payload), (d_status, d_headers, d_payload) = _answers(flask_app, direct_app, scope, body)
    assert d_status == status, name
    assert [(k.lower(), v) for k, v in d_headers] == [(k.lower(), v) for k, v in headers], name
    assert without_ids(d_payload) == without_ids(payload), name
    return status, without_ids(payload)


_LOGGED_KEYS = ("seq", "action", "input", "result", "policy_version", "caller", "request_id")


def _log(app) -> list[dict]:
    runtime = app.extensions["ordergate"]
    runtime.writer.flush(10)
    return [{k: r.get(k) for k in _LOGGED_KEYS} for r in runtime.store.query_decisions(limit=1000)]


def _counters(app) -> list[str]:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    return [line for line in text.splitlines()
            if line.startswith(("ordergate_decisions_total", "ordergate_bad_requests_total",
                                "ordergate_decision_request_seconds_count", "ordergate_decision_log_fail_closed"))]


def test_every_request_of_the_corpus_is_answered_and_logged_alike_by_both_doors(tmp_path, rules, opened):
    flask_app, direct_app = _apps(tmp_path, rules, "auth", tokens=TOKENS, **LIMITS)
    opened += [flask_app, direct_app]
    statuses = {}
    for name, path, headers, body in CASES:
        statuses[name] = _assert_same(flask_app, direct_app, Scope(path, headers), body, name)[0]
    # the corpus reaches what it names (a corpus of 200s would prove little)
    assert statuses["allowed"] == statuses["batch with bad items"] == 200
    assert (statuses["text/plain"], statuses["415 before 401"], statuses["form"]) == (415, 415, 415)
    assert (statuses["no token"], statuses["wrong token"], statuses["wrong role"]) == (401, 401, 403)
    assert (statuses["oversized"], statuses["batch oversized"]) == (413, 413)
    assert statuses["missing fact"] == 422 and statuses["charset parameter"] == 200
    assert {statuses[n] for n in ("NaN", "too deep", "lone surrogate", "request id twice", "batch too large",
                                  "not recordable", "malformed JSON")} == {400}
    logged = _log(flask_app)
    assert len(logged) >= 10 and {r["caller"] for r in logged} == {"crm"}
    assert {"req-42:a/b+c=d@e.f_g", "batch-1"} <= {r["request_id"] for r in logged}
    assert _log(direct_app) == logged
    assert _counters(direct_app) == _counters(flask_app)
    assert any("too_deep" in line for line in _counters(flask_app))


def test_with_authentication_off_only_this_machine_is_served_by_both_doors(tmp_path, rules, opened):
    flask_app, direct_app = _apps(tmp_path, rules, "loopback")
    opened += [flask_app, direct_app]
    statuses = {}
    for name, path, headers, client, body in LOOPBACK_CASES:
        statuses[name] = _assert_same(flask_app, direct_app, Scope(path, headers, client), body, name)[0]
    assert [statuses[n] for n in ("loopback", "localhost", "no Host header", "IPv6 loopback", "token ignored")] \
        == [200] * 5
    assert (statuses["another machine"], statuses["rebinding"], statuses["415 first"]) == (403, 403, 415)
    logged = _log(flask_app)
    assert {r["caller"] for r in logged} == {"loopback"}
    assert _log(direct_app) == logged


class _RefusingWriter:
    """A decision log that records nothing (its queue full, on_full=fail_closed)."""

    def record(self, records):
        return {r.decision_id for r in records}

    def stats(self):
        return {"healthy": False, "on_full": "fail_closed"}

    def flush(self, timeout=None):
        return False

    def close(self, timeout=None):
        return False


class _BrokenWriter(_RefusingWriter):
    """A decision log with a defect: recording raises."""

    def record(self, records):
        raise RuntimeError("a defect in the log writer")


@pytest.mark.parametrize(("writer", "single_status"), [(_RefusingWriter, 503), (_BrokenWriter, 500)])
def test_an_unavailable_or_broken_log_fails_closed_alike_through_both_doors(tmp_path, rules, opened, writer,
                                                                            single_status):
    flask_app, direct_app = [
        create_app(test_config(f"sqlite:///{tmp_path / f'{door}.sqlite'}", rules, decision_log_writer=writer(),
                               log_on_full="fail_closed")) for door in ("flask", "direct")]
    opened += [flask_app, direct_app]
    status, body = _assert_same(flask_app, direct_app, Scope(SINGLE, JSON_TYPE), _doc(ALLOWED), "single")
    assert status == single_status and body.get("allow", False) is False
    status, body = _assert_same(flask_app, direct_app, Scope(BATCH, JSON_TYPE),
                                _doc({"requests": [ALLOWED, DENIED, []]}), "batch")
    if writer is _RefusingWriter:
        assert status == 200
        assert [r["error"]["code"] for r in body["results"]] == ["decision_log_unavailable"] * 2 + ["bad_request"]
    else:
        assert (status, body["error"]["code"]) == (500, "internal_error")
    assert _counters(direct_app) == _counters(flask_app)


def test_with_no_policy_loaded_both_doors_refuse_and_log_alike(tmp_path, rules, opened):
    flask_app, direct_app = _apps(tmp_path, rules, "empty", bootstrap=False)
    opened += [flask_app, direct_app]
    status, body = _assert_same(flask_app, direct_app, Scope(SINGLE, JSON_TYPE), _doc(ALLOWED), "single")
    assert (status, body["error"]["code"], body["allow"]) == (503, "no_policy_loaded", False)
    status, body = _assert_same(flask_app, direct_app, Scope(BATCH, JSON_TYPE), _doc({"requests": [DENIED]}),
                                "batch")
    assert [r["error"]["code"] for r in body["results"]] == ["no_policy_loaded"]
    assert _log(direct_app) == _log(flask_app)
