"""The fault suite: kill -9 of every server process and a PostgreSQL outage, both under wrk load.
A decision answered 200 is in the decision log, whatever happens to the server or the database
(counted against the client's own log of the 200 answers)."""
from __future__ import annotations

import json
import os
import time

import pytest
from fault_helpers import Cluster, Load, Server, get, missing_from_log, post

from api.testing import ALLOWED, SHOP, write_rules

pytestmark = pytest.mark.slow

BODY = json.dumps(ALLOWED)


@pytest.fixture
def rules(tmp_path):
    return write_rules(tmp_path / "rules", SHOP)


def test_kill_9_of_every_server_process_under_load_loses_no_answered_decision(db_url, rules, tmp_path):
    server = Server(db_url, rules, tmp_path)
    try:
        load = Load(server.url, BODY, tmp_path, seconds=4)
        time.sleep(1.0)
        # a poison record (PostgreSQL text cannot hold NUL) is refused and blocks nothing behind it
        poison = json.dumps({"action": "order.create\u0000", "input": ALLOWED["input"]}).encode()
        status, body = post(server.url + "/v1/decisions", poison)
        assert status == 400 and json.loads(body)["error"]["reason"] == "not_recordable"
        time.sleep(1.0)
        processes = server.pids()
        assert len(processes) >= 3  # the master and its two workers
        server.kill9()
        load.wait()
    finally:
        server.stop()
    answered, _others = load.answers()
    assert len(answered) > 50, "the load did not get going before the kill"
    assert missing_from_log(db_url, answered) == set()


def test_a_postgres_outage_under_load_fails_closed_and_recovers_without_a_restart(rules, tmp_path):
    # a port of the tester's own range when several test runs share the machine
    cluster = Cluster(int(os.environ.get("ORDERGATE_FAULT_PG_PORT", "18310")))
    try:
        server = Server(cluster.url, rules, tmp_path)
        try:
            workers = server.pids()
            load = Load(server.url, BODY, tmp_path, seconds=9)
            time.sleep(2.0)
            cluster.stop()
            time.sleep(3.0)
            during = post(server.url + "/v1/decisions", BODY.encode())
            cluster.start()
            out = load.wait()
            # back without a restart: the same processes answer, and record again
            deadline = time.monotonic() + 20
            while get(server.url + "/readyz") != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            status, after = post(server.url + "/v1/decisions", BODY.encode())
            assert server.pids() == workers
        finally:
            server.stop()
        answered, others = load.answers()
        assert during[0] == 503 and json.loads(during[1])["error"]["code"] == "decision_log_unavailable"
        assert json.loads(during[1])["allow"] is False and json.loads(during[1])["decision_id"] is None
        assert others.get("503", 0) > 0, out
        assert set(others) <= {"503"}, others  # never a 500 or another status
        assert status == 200 and json.loads(after)["allow"] is True
        answered.add(json.loads(after)["decision_id"])
        assert len(answered) > 50
        assert missing_from_log(cluster.url, answered) == set()
    finally:
        cluster.destroy()
