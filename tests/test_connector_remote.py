"""Remote mode: RemoteClient against loopback stubs; no decision means no mutation."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from connector import Connector, DecisionUnavailable, OrderBook, PolicyDenied, RemoteClient
from connector.orders import AppliedMutation, SalesOrder
from connector.sample import seed_all


@pytest.fixture
def book(db_url):
    st = OrderBook(db_url)
    seed_all(st)
    yield st
    st.dispose()


class Stub:
    """A decision service stub on 127.0.0.1: ``respond(body) -> (status, json_body)``."""

    def __init__(self, respond) -> None:
        stub = self
        self.requests: list[dict] = []
        self.headers: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                stub.headers.append(dict(self.headers))
                status, payload = respond(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def stub_factory():
    made: list[Stub] = []

    def make(respond) -> Stub:
        made.append(Stub(respond))
        return made[-1]
    yield make
    for s in made:
        s.close()


@pytest.fixture
def client_factory():
    made: list[RemoteClient] = []

    def make(*args, **kwargs) -> RemoteClient:
        made.append(RemoteClient(*args, **kwargs))
        return made[-1]
    yield make
    for c in made:
        c.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]     # nothing listens here once the socket is closed


def test_unreachable_service_fails_closed_after_bounded_retries(book, client_factory):
    sleeps: list[float] = []
    client = client_factory(f"http://127.0.0.1:{_closed_port()}", retries=2, backoff=0.05, sleep=sleeps.append)
    before = book.snapshot()
    with pytest.raises(DecisionUnavailable) as info:
        Connector(book, client).qad_erp.create_sales_order("10C1000", user="alice")
    assert "no decision" in str(info.value) and "ConnectionError" in str(info.value)
    assert client.attempts == 3 and sleeps == [0.05, 0.1]          # exponential backoff, bounded
    assert book.snapshot() == before


def test_5xx_is_retried_then_fails_closed(book, stub_factory, client_factory):
    stub = stub_factory(lambda body: (503, {"error": {"code": "unavailable"}}))
    client = client_factory(stub.url, retries=3, backoff=0.001)
    before = book.snapshot()
    with pytest.raises(DecisionUnavailable, match="HTTP 503"):
        Connector(book, client).dynamics_ax.update_line_quantity("SO-AX-1", 1, 30, user="alice")
    assert len(stub.requests) == 4
    assert book.snapshot() == before


def test_4xx_is_not_retried(book, stub_factory, client_factory):
    stub = stub_factory(lambda body: (401, {"error": {"code": "unauthorized", "message": "bad token"}}))
    client = client_factory(stub.url, token="wrong", retries=3, backoff=0.001)
    before = book.snapshot()
    with pytest.raises(DecisionUnavailable, match="HTTP 401"):
        Connector(book, client).qad_erp.create_sales_order("10C1000", user="alice")
    assert len(stub.requests) == 1
    assert stub.headers[0]["Authorization"] == "Bearer wrong"
    assert book.snapshot() == before


def test_timeout_counts_as_unreachable(book, stub_factory, client_factory):
    def slow(body):
        time.sleep(0.6)
        return 200, {}
    stub = stub_factory(slow)
    client = client_factory(stub.url, retries=1, backoff=0.001, timeout=(1.0, 0.15))
    before = book.snapshot()
    with pytest.raises(DecisionUnavailable, match="Timeout"):
        Connector(book, client).qad_erp.create_sales_order("10C1000", user="alice")
    assert len(stub.requests) == 2
    assert book.snapshot() == before


@pytest.mark.parametrize("body", [
    {"allow": "yes", "decision_id": "d"},                                   # not a boolean
    {"allow": True, "obligations": [], "rules": [], "error": None},         # no decision id to record
    {"allow": True, "decision_id": "d", "obligations": [{"params": {}}]},   # obligation without a name
    ["allow", True],
])
def test_malformed_body_fails_closed(book, stub_factory, client_factory, body):
    stub = stub_factory(lambda _: (200, body))
    client = client_factory(stub.url, retries=0)
    before = book.snapshot()
    with pytest.raises(DecisionUnavailable, match="malformed"):
        Connector(book, client).qad_erp.create_sales_order("10C1000", user="alice")
    assert book.snapshot() == before


def test_remote_decisions_are_applied_with_the_service_decision_id(book, stub_factory, client_factory, policy_set):
    ids = iter(f"01REMOTE{i:018d}" for i in range(100))

    def service(body):
        d = policy_set.decide(body["action"], body["input"]).to_dict()
        d["decision_id"] = next(ids)
        return (422 if d["error"] else 200), d
    stub = stub_factory(service)
    conn = Connector(book, client_factory(stub.url, token="t0k"))

    applied = conn.qad_erp.create_sales_order("10C1000", user="alice")
    assert applied.decision.decision_id == "01REMOTE000000000000000000"
    assert stub.requests[0]["action"] == "salesorder.create"
    assert stub.requests[0]["input"]["context"]["system"] == "qad_erp"
    with book.session() as s:
        order = s.scalar(sa.select(SalesOrder).where(SalesOrder.number == applied.result))
        assert order.decision_id == applied.decision.decision_id and order.bill_to == "10C1000"
        assert s.scalar(sa.select(AppliedMutation.action).where(
            AppliedMutation.decision_id == applied.decision.decision_id)) == "salesorder.create"

    before = book.snapshot()
    with pytest.raises(PolicyDenied) as info:
        conn.qad_erp.create_sales_order("10C4000", user="alice")
    assert info.value.decision.rules == ("CUS-03",)
    assert book.snapshot() == before


def test_422_decision_error_is_a_denial(book, stub_factory, client_factory):
    stub = stub_factory(lambda body: (422, {"decision_id": "x", "policy_version": "v", "allow": False,
                                            "obligations": [], "rules": [],
                                            "error": {"code": "missing_fact", "field": "resource.customer.code",
                                                      "message": "missing"}}))
    before = book.snapshot()
    with pytest.raises(PolicyDenied, match="missing_fact"):
        Connector(book, client_factory(stub.url, retries=3)).qad_erp.create_sales_order("10C1000", user="alice")
    assert len(stub.requests) == 1 and book.snapshot() == before


def test_one_5xx_then_success(book, stub_factory, client_factory, policy_set):
    answers = iter([(502, {}), None])

    def flaky(body):
        a = next(answers)
        if a is not None:
            return a
        d = policy_set.decide(body["action"], body["input"]).to_dict()
        d["decision_id"] = "01FLAKY"
        return 200, d
    stub = stub_factory(flaky)
    applied = Connector(book, client_factory(stub.url, retries=2, backoff=0.001)).qad_erp.create_sales_order(
        "10C1000", user="alice")
    assert len(stub.requests) == 2 and applied.decision.decision_id == "01FLAKY"


def test_against_the_real_decision_service_sharing_its_database(db_url, rules_dir):
    """The connector's tables live beside the service's in one database; the decision the service
    logged is the one recorded with the mutation."""
    import requests
    from werkzeug.serving import make_server

    from api.app import create_app
    from api.testing import test_config

    app = create_app(test_config(db_url, rules_dir))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    book = OrderBook(db_url)
    client = RemoteClient(f"http://127.0.0.1:{server.server_port}", retries=1)
    try:
        world = seed_all(book)
        conn = Connector(book, client)
        applied = conn.dynamics_ax.update_line_quantity("SO-AX-1", 1, 12, user="alice")
        assert applied.decision.rules == ("IC-06",) and applied.decision.policy_version.startswith("sha256:")
        before = book.snapshot()
        with pytest.raises(PolicyDenied) as info:
            conn.autotask.create_sales_order(world.autotask_opportunity_id, user="alice")
        assert info.value.decision.rules == ("STG-31",) and book.snapshot() == before
        with book.session() as s:
            row = s.scalar(
                sa.select(AppliedMutation).where(AppliedMutation.action == "salesorder_line.update_quantity")
            )
            assert row.decision_id == applied.decision.decision_id
        logged = None
        for _ in range(50):   # the service writes its decision log in batches
            r = requests.get(f"{client.url}/{applied.decision.decision_id}", timeout=5)
            if r.status_code == 200:
                logged = r.json()
                break
            time.sleep(0.1)
        assert logged is not None and logged["decision_id"] == applied.decision.decision_id
        assert logged["policy_version"] == row.policy_version == applied.decision.policy_version
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        app.extensions["ordergate"].close()
        book.dispose()
