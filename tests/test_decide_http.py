"""The decision endpoints answered without Flask (api.decide_http, as cli.front.BufferedFront calls
them) answer exactly as through Flask: the same status, headers and body (but for the new
decision ids), the same decision log records and the same metrics, for a corpus of valid requests
and of every kind of error.

Each request is one RSGI scope (what granian hands the front) answered three times, by three apps
with their own databases: through the front's WSGI door (its environ, werkzeug, the Flask routes
and error handlers: what every other route and gunicorn go through), through its direct door on an
answering thread (the endpoint waits for the log's commit itself), and on the event loop (the
front awaits the commit: what granian runs).
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
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


DOORS = ("flask", "direct", "loop")


def _apps(tmp_path, rules, name: str, **config: t.Any):
    """Three apps alike, each with its own database: answered through Flask, directly on a thread,
    and on the event loop."""
    return [create_app(test_config(f"sqlite:///{tmp_path / f'{name}-{door}.sqlite'}", rules, **config))
            for door in DOORS]


class Proto:
    """What the front answers through (granian's RSGI protocol): keeps every answer sent."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, list[tuple[str, str]], bytes]] = []

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.answers.append((status, headers, body))


class LoopDoor:
    """A front serving ``app`` on an event loop of its own, as a granian worker does."""

    def __init__(self, app: t.Any, *, request_timeout: float = 30) -> None:
        self.loop = asyncio.new_event_loop()
        self.front = BufferedFront(lambda: app, threads=1, body_timeout=1, request_timeout=request_timeout,
                                   max_body=1 << 24)
        self.front.__rsgi_init__(self.loop)

    def start(self, scope: Scope, body: bytes) -> tuple[asyncio.Task, Proto]:
        """The request answered in a task of the loop (run it with ``run``)."""
        proto = Proto()
        endpoint = self.front._direct[scope.path]
        coroutine = self.front._answer_on_loop(endpoint, scope, proto, body, self.loop)
        return self.loop.create_task(coroutine), proto

    def run(self, task: asyncio.Task, proto: Proto) -> tuple[int, list[tuple[str, str]], bytes]:
        self.loop.run_until_complete(task)
        assert len(proto.answers) == 1, proto.answers
        return proto.answers[0]

    def answer(self, scope: Scope, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        return self.run(*self.start(scope, body))

    def close(self) -> None:
        self.front.__rsgi_del__(self.loop)
        self.loop.close()


_LOOP_DOORS: dict[int, LoopDoor] = {}


def _loop_door(app: t.Any) -> LoopDoor:
    door = _LOOP_DOORS.get(id(app))
    if door is None:
        door = _LOOP_DOORS[id(app)] = LoopDoor(app)
    return door


@pytest.fixture
def rules(tmp_path):
    return write_rules(tmp_path / "rules", SHOP)


@pytest.fixture
def opened():
    apps: list[t.Any] = []
    yield apps
    for app in apps:
        door = _LOOP_DOORS.pop(id(app), None)
        if door is not None:
            door.close()
        app.extensions["ordergate"].close()


def _answers(flask_app, direct_app, loop_app, scope: Scope, body: bytes):
    """The answer through the front's WSGI door (Flask), through its direct door on a thread and on
    the event loop."""
    front = BufferedFront(lambda: None, threads=1, body_timeout=1, request_timeout=1, max_body=1 << 24)
    front.app = flask_app
    through_flask = front._call(front._environ(scope, body))
    endpoint = direct_app.extensions["ordergate.direct_posts"][scope.path]
    direct = front._call_direct(endpoint, scope, body)
    return through_flask, direct, _loop_door(loop_app).answer(scope, body)


def without_ids(body: bytes) -> t.Any:
    value = json.loads(body)
    for result in [value, *(value.get("results") or [])] if isinstance(value, dict) else []:
        if isinstance(result, dict) and isinstance(result.get("decision_id"), str):
            result["decision_id"] = "<decision id>"
    return value


def _assert_same(apps, scope: Scope, body: bytes, name: str) -> tuple[int, t.Any]:
    (status, headers, payload), *others = _answers(*apps, scope, body)
    for door, (d_status, d_headers, d_payload) in zip(DOORS[1:], others, strict=True):
        assert d_status == status, (name, door)
        assert [(k.lower(), v) for k, v in d_headers] == [(k.lower(), v) for k, v in headers], (name, door)
        assert without_ids(d_payload) == without_ids(payload), (name, door)
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


def test_every_request_of_the_corpus_is_answered_and_logged_alike_by_every_door(tmp_path, rules, opened):
    apps = _apps(tmp_path, rules, "auth", tokens=TOKENS, **LIMITS)
    opened += apps
    statuses = {}
    for name, path, headers, body in CASES:
        statuses[name] = _assert_same(apps, Scope(path, headers), body, name)[0]
    # the corpus reaches what it names (a corpus of 200s would prove little)
    assert statuses["allowed"] == statuses["batch with bad items"] == 200
    assert (statuses["text/plain"], statuses["415 before 401"], statuses["form"]) == (415, 415, 415)
    assert (statuses["no token"], statuses["wrong token"], statuses["wrong role"]) == (401, 401, 403)
    assert (statuses["oversized"], statuses["batch oversized"]) == (413, 413)
    assert statuses["missing fact"] == 422 and statuses["charset parameter"] == 200
    assert {statuses[n] for n in ("NaN", "too deep", "lone surrogate", "request id twice", "batch too large",
                                  "not recordable", "malformed JSON")} == {400}
    flask_app, *others = apps
    logged = _log(flask_app)
    assert len(logged) >= 10 and {r["caller"] for r in logged} == {"crm"}
    assert {"req-42:a/b+c=d@e.f_g", "batch-1"} <= {r["request_id"] for r in logged}
    for app in others:
        assert _log(app) == logged
        assert _counters(app) == _counters(flask_app)
    assert any("too_deep" in line for line in _counters(flask_app))


def test_with_authentication_off_only_this_machine_is_served_by_every_door(tmp_path, rules, opened):
    apps = _apps(tmp_path, rules, "loopback")
    opened += apps
    statuses = {}
    for name, path, headers, client, body in LOOPBACK_CASES:
        statuses[name] = _assert_same(apps, Scope(path, headers, client), body, name)[0]
    assert [statuses[n] for n in ("loopback", "localhost", "no Host header", "IPv6 loopback", "token ignored")] \
        == [200] * 5
    assert (statuses["another machine"], statuses["rebinding"], statuses["415 first"]) == (403, 403, 415)
    flask_app, *others = apps
    logged = _log(flask_app)
    assert {r["caller"] for r in logged} == {"loopback"}
    for app in others:
        assert _log(app) == logged


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


class _RefusingNowWriter(_RefusingWriter):
    """A refusing log that can also be asked without waiting (as DecisionLogWriter.record_nowait)."""

    def record_nowait(self, records, notify, token):
        return self.record(records)


class _BrokenNowWriter(_BrokenWriter):
    def record_nowait(self, records, notify, token):
        raise RuntimeError("a defect in the log writer")


@pytest.mark.parametrize(("writer", "single_status"), [(_RefusingWriter, 503), (_BrokenWriter, 500),
                                                       (_RefusingNowWriter, 503), (_BrokenNowWriter, 500)])
def test_an_unavailable_or_broken_log_fails_closed_alike_through_every_door(tmp_path, rules, opened, writer,
                                                                             single_status):
    apps = [create_app(test_config(f"sqlite:///{tmp_path / f'{door}.sqlite'}", rules, decision_log_writer=writer(),
                                   log_on_full="fail_closed")) for door in DOORS]
    opened += apps
    status, body = _assert_same(apps, Scope(SINGLE, JSON_TYPE), _doc(ALLOWED), "single")
    assert status == single_status and body.get("allow", False) is False
    status, body = _assert_same(apps, Scope(BATCH, JSON_TYPE), _doc({"requests": [ALLOWED, DENIED, []]}), "batch")
    if single_status == 503:
        assert status == 200
        assert [r["error"]["code"] for r in body["results"]] == ["decision_log_unavailable"] * 2 + ["bad_request"]
    else:
        assert (status, body["error"]["code"]) == (500, "internal_error")
    for app in apps[1:]:
        assert _counters(app) == _counters(apps[0])


def test_with_no_policy_loaded_every_door_refuses_and_logs_alike(tmp_path, rules, opened):
    apps = _apps(tmp_path, rules, "empty", bootstrap=False)
    opened += apps
    status, body = _assert_same(apps, Scope(SINGLE, JSON_TYPE), _doc(ALLOWED), "single")
    assert (status, body["error"]["code"], body["allow"]) == (503, "no_policy_loaded", False)
    status, body = _assert_same(apps, Scope(BATCH, JSON_TYPE), _doc({"requests": [DENIED]}), "batch")
    assert [r["error"]["code"] for r in body["results"]] == ["no_policy_loaded"]
    for app in apps[1:]:
        assert _log(app) == _log(apps[0])


# -- the event loop's door while the log's commit is pending ---------------------------------------


class _Commits:
    """Holds (``stall``) or fails (``fail``) the decision log's transactions of an app, just before
    they commit (the store's ``append_before_commit`` hook, on the log writer's thread)."""

    def __init__(self, app: t.Any) -> None:
        self.stall = threading.Event()
        self.fail = threading.Event()
        self.reached = threading.Event()
        app.extensions["ordergate"].store.db.hooks["append_before_commit"] = self._hook

    def _hook(self) -> None:
        self.reached.set()
        while self.stall.is_set():
            time.sleep(0.005)
        if self.fail.is_set():
            raise RuntimeError("the database went away (simulated)")


@pytest.mark.parametrize("path", [SINGLE, BATCH])
def test_the_loop_answers_only_after_the_commit_and_a_commit_timeout_fails_closed_as_on_a_thread(
        tmp_path, rules, opened, path):
    apps = _apps(tmp_path, rules, "timeout", log_commit_timeout=0.3)
    opened += apps
    flask_app, _direct, loop_app = apps
    body = _doc(ALLOWED) if path == SINGLE else _doc({"requests": [ALLOWED, DENIED]})
    commits = [_Commits(app) for app in apps]
    for held in commits:
        held.stall.set()
    status, answer = _assert_same(apps, Scope(path, JSON_TYPE), body, "commit timeout")
    codes = [answer["error"]["code"]] if path == SINGLE else [r["error"]["code"] for r in answer["results"]]
    assert codes == ["decision_log_unavailable"] * len(codes) and status == (503 if path == SINGLE else 200)
    for held in commits:
        held.stall.clear()
    assert _counters(loop_app) == _counters(flask_app)
    # with the database answering, the loop answers after the commit, as made
    door = _loop_door(loop_app)
    commits[2].stall.set()
    task, proto = door.start(Scope(path, JSON_TYPE), body)
    door.loop.run_until_complete(asyncio.sleep(0.05))
    assert commits[2].reached.wait(5) and proto.answers == []  # waiting for its commit: not answered
    commits[2].stall.clear()
    status, _headers, payload = door.run(task, proto)
    decided = json.loads(payload)
    ids = [decided["decision_id"]] if path == SINGLE else [r["decision_id"] for r in decided["results"]]
    assert status == 200 and all(ids)
    loop_app.extensions["ordergate"].writer.flush(10)
    assert all(loop_app.extensions["ordergate"].store.get_decision(i) is not None for i in ids)


def test_a_failed_commit_is_answered_fail_closed_by_every_door(tmp_path, rules, opened):
    apps = _apps(tmp_path, rules, "failed")
    opened += apps
    for app in apps:
        _Commits(app).fail.set()
    status, answer = _assert_same(apps, Scope(SINGLE, JSON_TYPE), _doc(ALLOWED), "failed commit")
    assert (status, answer["allow"], answer["error"]["code"]) == (503, False, "decision_log_unavailable")
    status, answer = _assert_same(apps, Scope(BATCH, JSON_TYPE), _doc({"requests": [ALLOWED]}), "failed batch")
    assert [r["error"]["code"] for r in answer["results"]] == ["decision_log_unavailable"]
    for app in apps:
        assert app.extensions["ordergate"].store.query_decisions() == []
    assert _counters(apps[2]) == _counters(apps[0])


def test_a_request_timeout_while_the_commit_is_pending_is_answered_503_once(tmp_path, rules, opened):
    (app,) = [create_app(test_config(f"sqlite:///{tmp_path / 'late.sqlite'}", rules, log_commit_timeout=1.0))]
    opened.append(app)
    door = _LOOP_DOORS[id(app)] = LoopDoor(app, request_timeout=0.2)
    commits = _Commits(app)
    commits.stall.set()
    task, proto = door.start(Scope(SINGLE, JSON_TYPE), _doc(ALLOWED))
    door.loop.run_until_complete(asyncio.sleep(0.5))
    assert [(status, json.loads(body)["error"]["code"]) for status, _h, body in proto.answers] == [(503, "timeout")]
    commits.stall.clear()
    door.loop.run_until_complete(task)
    assert len(proto.answers) == 1  # the late answer is dropped, never sent after the 503
    # a request timeout longer than the commit timeout: the commit timeout answers first, fail closed
    door.front._request_timeout = 5
    commits.stall.set()
    task, proto = door.start(Scope(SINGLE, JSON_TYPE), _doc(ALLOWED))
    status, _headers, payload = door.run(task, proto)
    commits.stall.clear()
    assert (status, json.loads(payload)["error"]["code"]) == (503, "decision_log_unavailable")


def test_a_client_gone_while_its_commit_is_pending_leaves_the_loop_and_the_log_sound(tmp_path, rules, opened):
    (app,) = [create_app(test_config(f"sqlite:///{tmp_path / 'gone.sqlite'}", rules))]
    opened.append(app)
    door = _loop_door(app)
    errors: list[dict] = []
    door.loop.set_exception_handler(lambda _loop, context: errors.append(context))
    commits = _Commits(app)
    commits.stall.set()
    task, proto = door.start(Scope(SINGLE, JSON_TYPE), _doc(ALLOWED))
    door.loop.run_until_complete(asyncio.sleep(0.05))
    assert commits.reached.wait(5)
    task.cancel()  # the client went away: its request's task is cancelled while it waits
    with pytest.raises(asyncio.CancelledError):
        door.loop.run_until_complete(task)
    commits.stall.clear()
    writer = app.extensions["ordergate"].writer
    assert writer.flush(10)
    door.loop.run_until_complete(asyncio.sleep(0.05))  # the commit's wake-up reaches the loop: nobody waits
    assert proto.answers == [] and errors == []
    # its decision was made and is in the log (nobody was answered); the next caller is served
    assert len(app.extensions["ordergate"].store.query_decisions()) == 1
    status, _headers, payload = door.answer(Scope(SINGLE, JSON_TYPE), _doc(ALLOWED))
    assert status == 200 and json.loads(payload)["allow"] is True
    assert writer.stats()["healthy"] and writer.stats()["failed"] == 0
