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


def _scope(length: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(proto="http", method="POST", path="/v1/decisions", query_string="",
                                 server="127.0.0.1:8080", client="127.0.0.1:50000", http_version="1.1",
                                 scheme="http", headers=Headers({"content-type": "application/json",
                                                                  "content-length": str(length)}))


def _serve(app, proto: Proto, length: int, **limits) -> list:
    front = BufferedFront(lambda: app, threads=1, max_body=1024, **limits)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        front.__rsgi_init__(loop)
        await front.__rsgi__(_scope(length), proto)
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
