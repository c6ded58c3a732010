"""The HTTP front of `ordergate serve` (granian + BufferedFront), tested on a live server with raw sockets.

Slow clients (idle connections, headers a byte a second, bodies a byte a second) must not delay
other callers; a body that does not arrive in time gets 408, a too large one 413 unread.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

import pytest
import requests
from test_decide_http import CASES, LIMITS, TOKENS, without_ids

from api.testing import ALLOWED, SHOP, SHOP_V2, write_rules
from store import Store

ORDERGATE = Path(sys.executable).with_name("ordergate")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """`ordergate serve` in its own process group on a free loopback port."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        rules = write_rules(tmp_path / "rules", SHOP)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGATE_TOKENS_")}
        environment.update(env or {})
        self.log = tmp_path / "server.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(ORDERGATE), "serve", "--port", str(self.port), "--rules", str(rules),
                 "--database", f"sqlite:///{tmp_path / 'serve.sqlite'}", *args],
                env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()  # never leave a server behind when it did not come up
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                # a loaded machine can take more than a second to answer while workers start
                if requests.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not become ready:\n" + self.log.read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the server stops its workers itself
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def live(tmp_path):
    servers: list[LiveServer] = []

    def start(*args: str, env: dict[str, str] | None = None) -> LiveServer:
        servers.append(LiveServer(tmp_path, *args, env=env))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _decision_body() -> bytes:
    return json.dumps(ALLOWED).encode()


def _head(port: int, length: int) -> bytes:
    return (f"POST /v1/decisions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def _read_status(sock: socket.socket, timeout: float) -> int | None:
    """The status of the answer on ``sock`` (None: closed without one, or nothing within ``timeout``)."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except (TimeoutError, ConnectionError):
        return None
    if not data.startswith(b"HTTP/1.1 "):
        return None
    return int(data.split(b" ", 2)[1])


def _closed(sock: socket.socket, timeout: float) -> bool:
    """True when the server closes ``sock`` within ``timeout`` (whatever it sent first)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


@pytest.mark.slow
def test_many_slow_clients_do_not_delay_other_callers(live):
    """96 slow clients against 2 workers of 2 answering threads: idle connections, headers and bodies
    a byte a second. Every other caller is answered within 1 s; slow headers and bodies are cut off
    at their timeouts (idle connections only hold one of --max-connections each)."""
    server = live("--workers", "2", "--threads", "2", "--header-timeout", "4", "--body-timeout", "4")
    body = _decision_body()
    slow: dict[str, list[tuple[socket.socket, bytes]]] = {"idle": [], "headers": [], "body": []}
    for kind in slow:
        for _ in range(32):
            sock = socket.create_connection(("127.0.0.1", server.port))
            if kind == "headers":
                rest = _head(server.port, len(body)) + body
                sock.sendall(rest[:1])
                slow[kind].append((sock, rest[1:]))
            elif kind == "body":
                sock.sendall(_head(server.port, len(body)) + body[:1])
                slow[kind].append((sock, body[1:]))
            else:
                slow[kind].append((sock, b""))
    stop = threading.Event()

    def trickle() -> None:  # one more byte a second on every slow connection
        position = 0
        while not stop.wait(1.0):
            for sock, rest in slow["headers"] + slow["body"]:
                if position < len(rest):
                    with contextlib.suppress(OSError):
                        sock.send(rest[position:position + 1])
            position += 1

    trickler = threading.Thread(target=trickle)
    trickler.start()
    try:
        latencies = []
        session = requests.Session()
        started = time.monotonic()
        while time.monotonic() - started < 3.0:  # well inside the slow clients' 4 s
            for fresh in (session, requests):  # a kept-alive connection and a new one each time
                before = time.monotonic()
                response = fresh.post(f"{server.url}/v1/decisions", json=ALLOWED, timeout=10)
                latencies.append(time.monotonic() - before)
                assert response.status_code == 200 and response.json()["allow"] is True
            time.sleep(0.05)
        assert len(latencies) >= 10
        assert max(latencies) < 1.0, f"slowest answer {max(latencies):.2f} s"
        # the slow bodies get 408 once their 4 s are up; slow headers and idle connections are closed
        statuses = [_read_status(sock, timeout=6) for sock, _ in slow["body"]]
        assert statuses == [408] * 32
        assert all(_closed(sock, timeout=6) for sock, _ in slow["headers"])
    finally:
        stop.set()
        trickler.join()
        for sockets in slow.values():
            for sock, _ in sockets:
                sock.close()


def test_a_body_larger_than_the_limit_is_refused_unread(live):
    server = live("--workers", "1", "--threads", "1")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(_head(server.port, 64 * 1024 * 1024))  # announced, never sent
        assert _read_status(sock, timeout=5) == 413
    assert requests.post(f"{server.url}/v1/decisions", json=ALLOWED, timeout=5).status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("log_writer", ["worker", "process"])
def test_a_graceful_reload_under_load_loses_no_decision(live, tmp_path, log_writer):
    """SIGHUP replaces the workers while callers hammer the server on new connections: every answer
    is a 200 whose decision is in the log, and a request that got no answer was never read.

    granian's graceful stop closes the connections an old worker accepted but has not read a request
    on yet (on a loaded two-core machine, one reload in five to one in two caught a new connection
    so); its caller sees the connection closed without an answer. What must never happen is a request that was
    decided (logged) and then not answered: the caller would retry a decision that was made.
    """
    server = live("--workers", "2", "--threads", "2", "--log-writer", log_writer)
    callers = 3
    answered: list[tuple[str, int]] = []
    unanswered: list[tuple[str, str]] = []
    failures: list[str] = []
    stop = threading.Event()

    def hammer(caller: int) -> None:
        # a new connection per request: a kept-alive connection that an old worker closes while a
        # request is on its way is closed without an answer (that request was never read), which
        # docs/operations.md tells callers to retry on a new connection
        number = 0
        while not stop.is_set():
            number += 1
            request_id = f"reload-{caller}-{number}"
            try:
                response = requests.post(f"{server.url}/v1/decisions", json=ALLOWED, timeout=10,
                                         headers={"X-Request-Id": request_id, "Connection": "close"})
                answered.append((request_id, response.status_code))
            except requests.ConnectionError as exc:  # closed without an answer: checked below
                unanswered.append((request_id, repr(exc)))
            except requests.RequestException as exc:  # anything else (a timeout) fails the test
                failures.append(repr(exc))

    threads = [threading.Thread(target=hammer, args=(caller,)) for caller in range(callers)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        before = len(answered)
        os.kill(server.process.pid, signal.SIGHUP)
        time.sleep(6)  # long enough for the new workers to start and the old ones to go
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    server.stop()  # every worker has written its log
    assert failures == []
    assert {status for _, status in answered} == {200} and len(answered) > before > 0
    store = Store(f"sqlite:///{tmp_path / 'serve.sqlite'}")
    try:
        assert store.decision_count() < 100_000
        logged = {entry["request_id"] for entry in store.query_decisions(limit=100_000)}
    finally:
        store.dispose()
    # every answer is durably in the log ...
    assert {request_id for request_id, _ in answered} <= logged
    # ... and a request that got no answer was never decided: retrying it is safe
    assert not {request_id for request_id, _ in unanswered} & logged, unanswered
    # at most the request each caller had on its way as each old worker stopped
    assert len(unanswered) <= callers * 2, unanswered
    # two workers started, then two new ones loaded the version after the reload
    assert server.log.read_text().count("now answering with policy version") >= 4


def _log_writer_pid(server: LiveServer) -> int:
    """The pid of the server's decision log writer process."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (b"store.log_process" in (entry / "cmdline").read_bytes()
                        and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == server.process.pid):
                    return int(entry.name)
    raise AssertionError("no decision log writer process")


@pytest.mark.slow
@pytest.mark.parametrize("server_name", ["granian", "gunicorn"])
def test_a_killed_log_writer_process_fails_closed_and_the_server_recovers(live, tmp_path, server_name):
    """kill -9 of the server's decision log writer process under load: the decisions waiting for it
    and those asked before it is back are answered 503 (never allowed), every 200 is in the log,
    and the server answers 200 again once its new writer process runs."""
    server = live("--server", server_name, "--workers", "2", "--threads", "2", "--log-writer", "process")
    answered: list[tuple[str, int, dict]] = []
    stop = threading.Event()

    def hammer(caller: int) -> None:
        with requests.Session() as session:
            number = 0
            while not stop.is_set():
                number += 1
                request_id = f"kill-{caller}-{number}"
                response = session.post(f"{server.url}/v1/decisions", json=ALLOWED, timeout=30,
                                        headers={"X-Request-Id": request_id})
                answered.append((request_id, response.status_code, response.json()))

    threads = [threading.Thread(target=hammer, args=(caller,)) for caller in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        first = _log_writer_pid(server)
        killed_at = len(answered)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
                len(answered) > killed_at + 50 and all(status == 200 for _, status, _ in answered[-20:])):
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert _log_writer_pid(server) != first
    server.stop()
    statuses = [status for _, status, _ in answered]
    assert set(statuses) <= {200, 503} and statuses[-20:] == [200] * 20 and killed_at > 0
    refused = [body for _, status, body in answered if status == 503]
    assert all(body["allow"] is False and body["error"]["code"] == "decision_log_unavailable"
               for body in refused)
    store = Store(f"sqlite:///{tmp_path / 'serve.sqlite'}")
    try:
        logged = {entry["request_id"] for entry in store.query_decisions(limit=100_000)}
        assert store.verify_chain().ok
    finally:
        store.dispose()
    assert {request_id for request_id, status, _ in answered if status == 200} <= logged
    assert "the decision log writer process exited" in server.log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("server_name", ["granian", "gunicorn"])
def test_publish_and_activate_return_once_every_worker_of_the_server_has_switched(live, server_name):
    """Right after the call returns, no decision on that server uses the old version (3 workers,
    activations polled once a second): the call waited for every worker, and says so."""
    server = live("--server", server_name, "--workers", "3", "--threads", "2")
    obligation = {"v1": "notify", "v2": "audit_trail"}
    v1 = requests.get(f"{server.url}/v1/versions", timeout=10).json()["active"]

    def decisions_after(version: str) -> set[str]:
        seen = set()
        for _ in range(30):  # a new connection each: the decisions spread over the workers
            answer = requests.post(f"{server.url}/v1/decisions", json=ALLOWED, timeout=10).json()
            seen.add(answer["obligations"][0]["name"])
            assert answer["policy_version"] == version
        return seen

    published = requests.post(f"{server.url}/v1/versions", json={"files": SHOP_V2, "message": "v2"}, timeout=60)
    assert published.status_code == 201, published.text
    v2 = published.json()["id"]
    assert published.json()["workers"] == {"serving": 3, "total": 3}
    assert decisions_after(v2) == {obligation["v2"]}
    for target, name in [(v1, "v1"), (v2, "v2"), (v1, "v1")]:
        answer = requests.post(f"{server.url}/v1/versions/{target}/activate", json={"reason": "flip"}, timeout=60)
        assert answer.status_code == 200 and answer.json()["workers"] == {"serving": 3, "total": 3}
        assert decisions_after(target) == {obligation[name]}


def test_a_broken_candidate_is_refused_by_the_publishing_process_with_its_location(live):
    server = live("--workers", "1", "--threads", "2")
    broken = dict(SHOP_V2)
    path = next(p for p in broken if not p.startswith("tests/"))
    broken[path] = broken[path].replace("kind: guard", "kind: guardd")
    answer = requests.post(f"{server.url}/v1/versions", json={"files": broken, "message": "broken"}, timeout=60)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "publish_rejected"
    assert any(path in (e.get("location") or "") for e in error["errors"]), error


def _ask(url: str, path: str, headers: list[tuple[str, str]], body: bytes) -> tuple[int, dict[str, str], t.Any]:
    """One POST with exactly these headers (repeats kept): status, content headers, body with the
    decision ids blanked."""
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    try:
        connection.putrequest("POST", path, skip_accept_encoding=True)
        for name, value in [*headers, ("content-length", str(len(body)))]:
            connection.putheader(name, value)
        connection.endheaders(body)
        answer = connection.getresponse()
        payload = answer.read()
        content = {k.lower(): v for k, v in answer.getheaders() if k.lower() in ("content-type", "content-length")}
        return answer.status, content, without_ids(payload)
    finally:
        connection.close()


@pytest.mark.slow
def test_granian_answers_the_decision_endpoints_directly_exactly_as_gunicorn_through_flask(live, tmp_path):
    """`serve` with granian answers the decision routes without Flask (api.decide_http), gunicorn through
    Flask: the whole corpus of tests/test_decide_http.py gets the same answers, and the same log."""
    env = {"ORDERGATE_TOKENS_DECIDE": TOKENS["decide"][0], "ORDERGATE_TOKENS_AUDIT": TOKENS["audit"][0],
           **{f"ORDERGATE_{key.upper()}": str(value) for key, value in LIMITS.items()}}
    databases = {}
    answers = {}
    for server_name in ("granian", "gunicorn"):
        (tmp_path / server_name).mkdir()
        server = LiveServer(tmp_path / server_name, "--server", server_name, "--workers", "1", "--threads", "4",
                            env=env)
        try:
            answers[server_name] = [_ask(server.url, path, headers, body) for _, path, headers, body in CASES]
        finally:
            server.stop()
        databases[server_name] = f"sqlite:///{tmp_path / server_name / 'serve.sqlite'}"
    for case, granian, gunicorn in zip(CASES, answers["granian"], answers["gunicorn"], strict=True):
        assert granian == gunicorn, case[0]
    statuses = {case[0]: answer[0] for case, answer in zip(CASES, answers["granian"], strict=True)}
    assert (statuses["allowed"], statuses["text/plain"], statuses["no token"], statuses["oversized"]) \
        == (200, 415, 401, 413)
    assert statuses["request id twice"] == 400  # granian's repeated header reaches the check joined, as in WSGI
    logs = {}
    for server_name, url in databases.items():
        store = Store(url)
        try:
            logs[server_name] = [{k: r[k] for k in ("action", "input", "result", "caller", "request_id")}
                                 for r in store.query_decisions(limit=1000)]
        finally:
            store.dispose()
    assert len(logs["granian"]) >= 10
    assert logs["granian"] == logs["gunicorn"]
