"""cli/front.py's timeouts, driven in process with a stand-in for granian's RSGI scope and protocol."""
from __future__ import annotations

import asyncio
import json
import threading
import time
import types

from cli.front import BufferedFront


class Headers(dict):
    def items(self):  # granian's RSGI headers give a list of pairs
        return list(super().items())


class Proto:
    """Records the first answer only, as granian does (the later one is dropped)."""

    def __init__(self, body: bytes | None) -> None:
        self.body = body
        self.answers: list[tuple[int, dict]] = []
        self.lock = threading.Lock()

    async def __call__(self) -> bytes:
        if self.body is None:  # a client that never sends its body
            await asyncio.Event().wait()
        return self.body

    def response_bytes(self, status: int, headers: list, payload: bytes) -> None:
        with self.lock:
            if not self.answers:
                self.answers.append((status, json.loads(payload) if payload else {}))


def _scope(length: int, method: str = "POST", path: str = "/v1/decisions") -> types.SimpleNamespace:
    return types.SimpleNamespace(proto="http", method=method, path=path, query_string="",
                                 server="127.0.0.1:8080", client="127.0.0.1:50000", http_version="1.1",
                                 scheme="http", headers=Headers({"content-type": "application/json",
                                                                  "content-length": str(length)}))


def _serve(app, proto: Proto, length: int, *, method: str = "POST", path: str = "/v1/decisions",
           max_body: int = 1024, **limits) -> list:
    front = BufferedFront(lambda: app, threads=1, max_body=max_body, **limits)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        front.__rsgi_init__(loop)
        await front.__rsgi__(_scope(length, method, path), proto)
        await asyncio.sleep(0)

    asyncio.run(run())
    front.__rsgi_del__(None)
    return proto.answers


def _slow_app(seconds: float):
    def app(environ, start_response):
        time.sleep(seconds)
        start_response("200 OK", [("content-type", "application/json")])
        return [b'{"allow": true}']
    return app


def test_an_app_slower_than_the_request_timeout_is_answered_503_and_never_allowed():
    answers = _serve(_slow_app(0.5), Proto(b"{}"), 2, body_timeout=5, request_timeout=0.1)
    assert answers[0][0] == 503 and answers[0][1]["error"]["code"] == "timeout"


def test_an_app_within_the_request_timeout_answers_itself():
    answers = _serve(_slow_app(0.0), Proto(b"{}"), 2, body_timeout=5, request_timeout=5)
    assert answers == [(200, {"allow": True})]


def test_a_body_that_does_not_arrive_in_time_gets_408_and_never_reaches_the_app():
    called = []

    def app(environ, start_response):
        called.append(True)
        start_response("200 OK", [])
        return [b""]

    answers = _serve(app, Proto(None), 10, body_timeout=0.1, request_timeout=5)
    assert answers[0][0] == 408 and answers[0][1]["error"]["reason"] == "body_timeout"
    assert called == []


def test_a_body_larger_than_the_limit_is_413_before_it_is_read():
    answers = _serve(_slow_app(0.0), Proto(None), 4096, body_timeout=5, request_timeout=5)
    assert answers[0][0] == 413 and answers[0][1]["error"]["reason"] == "body_too_large"


class _AppWithDirectPosts:
    """A WSGI app that also lists a direct endpoint for POST /v1/decisions (as api.create_app does)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.calls: list[tuple] = []
        self.seconds = seconds
        self.extensions = {"ordergate.direct_posts": {"/v1/decisions": self.direct}}

    def direct(self, method, path, headers, body, remote_addr, host):
        time.sleep(self.seconds)
        self.calls.append(("direct", method, path, headers.get("content-type"), body, remote_addr, host))
        return 200, [("Content-Type", "application/json")], b'{"door": "direct"}'

    def __call__(self, environ, start_response):
        self.calls.append(("wsgi", environ["REQUEST_METHOD"], environ["PATH_INFO"]))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"door": "wsgi"}']


def test_a_post_to_a_direct_path_skips_the_wsgi_app_and_every_other_request_goes_through_it():
    app = _AppWithDirectPosts()
    assert _serve(app, Proto(b"{}"), 2, body_timeout=5, request_timeout=5) == [(200, {"door": "direct"})]
    assert app.calls == [("direct", "POST", "/v1/decisions", "application/json", b"{}", "127.0.0.1",
                          "127.0.0.1:8080")]
    for method, path in (("GET", "/v1/decisions"), ("POST", "/v1/decisions/"), ("POST", "/v1/versions")):
        app.calls.clear()
        assert _serve(app, Proto(b"{}"), 2, method=method, path=path, body_timeout=5, request_timeout=5) \
            == [(200, {"door": "wsgi"})]
        assert app.calls == [("wsgi", method, path)]


def test_a_direct_endpoint_slower_than_the_request_timeout_is_answered_503():
    answers = _serve(_AppWithDirectPosts(seconds=0.5), Proto(b"{}"), 2, body_timeout=5, request_timeout=0.1)
    assert answers[0][0] == 503 and answers[0][1]["error"]["code"] == "timeout"


class _LoopEndpoint:
    """A direct endpoint that can also be answered on the event loop (``steps``, as
    api.decide_http.DecisionEndpoint); it says which door answered."""

    def __init__(self) -> None:
        self.doors: list[tuple[str, str]] = []
        self.writer = types.SimpleNamespace(record=lambda records: set())

    def __call__(self, method, path, headers, body, remote_addr, host):
        self.doors.append(("thread", threading.current_thread().name))
        return 200, [("Content-Type", "application/json")], b'{"door": "thread"}'

    def steps(self, method, path, headers, body, remote_addr, host):
        self.doors.append(("loop", threading.current_thread().name))
        unrecorded = yield ["a record"]
        assert unrecorded == set()
        return 200, [("Content-Type", "application/json")], b'{"door": "loop"}'


def test_a_small_body_is_decided_on_the_loop_and_a_large_one_on_an_answering_thread():
    endpoint = _LoopEndpoint()
    app = _AppWithDirectPosts()
    app.extensions["ordergate.direct_posts"]["/v1/decisions"] = endpoint
    assert _serve(app, Proto(b"{}"), 2, body_timeout=5, request_timeout=5) == [(200, {"door": "loop"})]
    large = b"{" + b" " * 4096 + b"}"  # more than the front decides on its loop (a batch, say)
    assert _serve(app, Proto(large), len(large), max_body=8192, body_timeout=5, request_timeout=5) \
        == [(200, {"door": "thread"})]
    assert [door for door, _thread in endpoint.doors] == ["loop", "thread"]
    assert endpoint.doors[0][1] == "MainThread" and endpoint.doors[1][1].startswith("ordergate-http-")
