"""Hot reload under load, replicas following activations, and readiness when the database is down."""
from __future__ import annotations

import threading
import time

import pytest

from api import create_app
from api.testing import ALLOWED, SHOP, SHOP_V2, test_config, write_rules

#: the obligation each version gives ALLOWED: a mix would mean a half-loaded version answered
OBLIGATION = {"v1": "notify", "v2": "audit_trail"}


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def rules(tmp_path):
    return write_rules(tmp_path / "rules", SHOP)


def test_activation_flips_under_load_fail_no_request(db_url, rules):
    from store import Store

    app = create_app(test_config(db_url, rules, watch_interval=0.05))
    admin = Store(db_url)  # another replica's view of the same database: activations come from outside
    try:
        v1 = app.extensions["ordergate"].active_version_id
        v2 = admin.publish(SHOP_V2, author="test", message="v2", activate=False).id
        names = {v1: "v1", v2: "v2"}
        stop = threading.Event()
        answers: list[tuple[int, str, list]] = []
        failures: list[str] = []

        def hammer() -> None:
            client = app.test_client()
            while not stop.is_set():
                try:
                    response = client.post("/v1/decisions", json=ALLOWED)
                    body = response.get_json()
                    answers.append((response.status_code, body["policy_version"], body["obligations"]))
                except Exception as exc:  # a failed request is what this test looks for
                    failures.append(repr(exc))

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for thread in threads:
            thread.start()
        seen = set()
        for flip in range(8):
            target = v2 if flip % 2 == 0 else v1
            admin.activate(target, actor="test", reason=f"flip {flip}")
            assert _wait_for(lambda target=target: app.extensions["ordergate"].active_version_id == target), (
                f"flip {flip} not seen"
            )
            seen.add(target)
            time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join()
        assert failures == []
        assert len(answers) > 50
        assert seen == {v1, v2}
        assert {status for status, _, _ in answers} == {200}
        assert {version for _, version, _ in answers} == {v1, v2}
        for _, version, obligations in answers:
            assert obligations == [{"name": OBLIGATION[names[version]], "params": {}}]
    finally:
        app.extensions["ordergate"].close()
        admin.dispose()


def test_a_replica_follows_an_activation_made_through_another(db_url, rules):
    first = create_app(test_config(db_url, rules))
    second = create_app(test_config(db_url, rules))
    try:
        one, two = first.test_client(), second.test_client()
        v1 = one.get("/v1/versions").get_json()["active"]
        assert two.get("/v1/versions").get_json()["active"] == v1  # the second did not publish again
        published = one.post("/v1/versions", json={"files": SHOP_V2, "message": "v2"}).get_json()
        assert _wait_for(
            lambda: two.post("/v1/decisions", json=ALLOWED).get_json()["policy_version"] == published["id"]
        )
        one.post(f"/v1/versions/{v1}/activate", json={"reason": "rollback"})
        assert _wait_for(lambda: two.get("/readyz").get_json()["policy_version"] == v1)
    finally:
        first.extensions["ordergate"].close()
        second.extensions["ordergate"].close()


def test_a_server_converges_when_another_replica_activates_right_after_it(db_url, rules):
    """Activate v2 here, then v1 elsewhere at once: this server must end on v1, not stay on v2."""
    from store import Store

    app = create_app(test_config(db_url, rules, watch_interval=0.5))
    other = Store(db_url)
    try:
        client = app.test_client()
        v1 = client.get("/v1/versions").get_json()["active"]
        v2 = client.post("/v1/versions", json={"files": SHOP_V2, "message": "v2", "activate": False}).get_json()["id"]
        for _ in range(3):
            answer = client.post(f"/v1/versions/{v2}/activate", json={}).get_json()
            assert answer["serving"] == v2  # the endpoint answers once this server decides with v2
            other.activate(v1, actor="elsewhere", reason="immediate rollback")
            assert _wait_for(lambda: app.extensions["ordergate"].active_version_id == v1, timeout=5)
            assert client.post("/v1/decisions", json=ALLOWED).get_json()["policy_version"] == v1
    finally:
        app.extensions["ordergate"].close()
        other.dispose()


def test_readiness_is_503_and_decisions_fail_closed_when_the_database_is_down(rules):
    dead = "postgresql+psycopg://postgres@127.0.0.1:9/ordergate?connect_timeout=2"  # discard port: nobody listens
    started = time.monotonic()
    # log_close_timeout: the refusals queued for the dead database are not waited for at the end
    app = create_app(test_config(dead, rules, startup_retry_interval=30, log_close_timeout=0.5))
    try:
        assert time.monotonic() - started < 10
        client = app.test_client()
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        body = ready.get_json()
        assert body["status"] == "not_ready" and body["policy_version"] is None
        assert any("store does not answer" in p for p in body["problems"])
        assert any("no policy version loaded" in p for p in body["problems"])
        decision = client.post("/v1/decisions", json=ALLOWED)
        assert decision.status_code == 503
        answer = decision.get_json()
        assert answer["allow"] is False and answer["error"]["code"] == "no_policy_loaded"
        versions = client.get("/v1/versions")
        assert versions.status_code == 503
        assert versions.get_json()["error"]["code"] == "store_unavailable"
    finally:
        app.extensions["ordergate"].close()


def test_the_service_comes_up_when_the_database_comes_back(tmp_path, rules):
    """Start-up against a database that fails, then recovers: the retry loop loads the version."""
    from store import Store, StoreError

    real = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    down = threading.Event()
    down.set()

    class Flaky:
        def __getattr__(self, name):
            attribute = getattr(real, name)
            if not callable(attribute):
                return attribute

            def call(*args, **kwargs):
                if down.is_set():
                    raise StoreError("database unavailable (test)")
                return attribute(*args, **kwargs)
            return call

    app = create_app(test_config("sqlite://", rules, store=Flaky(), startup_retry_interval=0.05))
    try:
        client = app.test_client()
        assert client.get("/readyz").status_code == 503
        assert client.post("/v1/decisions", json=ALLOWED).get_json()["allow"] is False
        refused = client.post("/v1/decisions", json=ALLOWED).get_json()
        down.clear()
        assert _wait_for(lambda: client.get("/readyz").status_code == 200)
        allowed = client.post("/v1/decisions", json=ALLOWED).get_json()
        assert allowed["allow"] is True and real.get_decision(allowed["decision_id"]) is not None
        # the refusals made while the log could not record them carry no id: nothing to look up
        assert refused["error"]["code"] == "no_policy_loaded" and refused["decision_id"] is None
    finally:
        app.extensions["ordergate"].close()
        real.dispose()


def test_a_live_gunicorn_server_flips_under_load_with_no_failed_request(tmp_path, rules):
    """The production path: several worker processes, each following activations made through the API."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import requests

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGATE_TOKENS_")}
    env["ORDERGATE_WATCH_INTERVAL"] = "0.2"
    ordergate = Path(sys.executable).with_name("ordergate")
    server = subprocess.Popen(
        [str(ordergate), "serve", "--port", str(port), "--workers", "2", "--threads", "2", "--rules", str(rules),
         "--database", f"sqlite:///{tmp_path / 'live.sqlite'}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        session = requests.Session()

        def ready():
            try:
                return session.get(f"{url}/readyz", timeout=5).status_code == 200
            except (requests.ConnectionError, requests.Timeout):  # a loaded machine answers late
                return False

        assert _wait_for(ready, timeout=60), "the server did not become ready"
        v1 = session.get(f"{url}/v1/versions").json()["active"]
        v2 = session.post(f"{url}/v1/versions", json={"files": SHOP_V2, "message": "v2", "activate": False}).json()[
            "id"
        ]
        names = {v1: "v1", v2: "v2"}
        answers: list[tuple[int, str, list]] = []
        failures: list[str] = []

        def hammer() -> None:
            own = requests.Session()
            while not stop.is_set():
                try:
                    response = own.post(f"{url}/v1/decisions", json=ALLOWED, timeout=10)
                    body = response.json()
                    answers.append((response.status_code, body["policy_version"], body["obligations"]))
                except Exception as exc:  # a failed request is what this test looks for
                    failures.append(repr(exc))

        threads.extend(threading.Thread(target=hammer, daemon=True) for _ in range(3))
        for thread in threads:
            thread.start()
        for flip, target in enumerate([v2, v1, v2, v1]):
            assert (
                session.post(f"{url}/v1/versions/{target}/activate", json={"reason": f"flip {flip}"}).status_code == 200
            )
            # every worker has switched once a run of answers all come from the target
            assert _wait_for(
                lambda target=target: all(
                    session.post(f"{url}/v1/decisions", json=ALLOWED).json()["policy_version"] == target
                    for _ in range(10)
                ),
                timeout=15,
            ), f"flip {flip} not followed"
        stop.set()
        for thread in threads:
            thread.join()
        assert failures == []
        assert len(answers) > 50
        assert {status for status, _, _ in answers} == {200}
        assert {version for _, version, _ in answers} == {v1, v2}
        for _, version, obligations in answers:
            assert obligations == [{"name": OBLIGATION[names[version]], "params": {}}]
    finally:
        stop.set()  # a failed assertion must not leave the hammers running against the next tests
        for thread in threads:
            thread.join(30)
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)


@pytest.mark.parametrize("on_full", ["fail_closed", "block"])
def test_the_real_log_writer_fails_closed_while_the_log_database_is_down_and_recovers(tmp_path, rules, on_full):
    """Appends fail: decisions fill the (tiny) queue, then are refused fail closed; /readyz and
    /metrics show it; once appends work again everything queued is written and decisions pass."""
    from store import Store, StoreError

    real = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    down = threading.Event()

    class LogDown:
        def __getattr__(self, name):
            return getattr(real, name)

        def append_decisions(self, records):
            if down.is_set():
                raise StoreError("append_decisions: database unavailable (test)")
            return real.append_decisions(records)

    app = create_app(test_config("sqlite://", rules, store=LogDown(), log_on_full=on_full, log_max_queue=2,
                                 log_batch_size=1, log_flush_interval=0))
    try:
        client = app.test_client()
        assert client.post("/v1/decisions", json=ALLOWED).status_code == 200
        down.set()
        answers = [client.post("/v1/decisions", json=ALLOWED) for _ in range(4)]
        assert _wait_for(lambda: client.get("/readyz").status_code == 503)
        answers += [client.post("/v1/decisions", json=ALLOWED) for _ in range(2)]
        statuses = [a.status_code for a in answers]
        assert 503 in statuses
        for answer in answers:
            body = answer.get_json()
            if answer.status_code == 503:
                assert body["allow"] is False and body["error"]["code"] == "decision_log_unavailable"
            else:
                assert answer.status_code == 200 and body["allow"] is True
        accepted = [a.get_json()["decision_id"] for a in answers if a.status_code == 200]
        metrics = client.get("/metrics").get_data(as_text=True)
        assert f"ordergate_decision_log_fail_closed_total {statuses.count(503)}" in metrics
        assert "ordergate_decision_log_healthy 0" in metrics
        down.clear()
        assert _wait_for(lambda: client.get("/readyz").status_code == 200)
        assert client.post("/v1/decisions", json=ALLOWED).status_code == 200
        assert app.extensions["ordergate"].writer.flush(timeout=10)
        for decision_id in accepted:  # every decision answered 200 reached the log
            assert real.get_decision(decision_id) is not None
        assert client.get("/v1/audit/verify").get_json()["ok"] is True
    finally:
        app.extensions["ordergate"].close()
        real.dispose()
