"""Several processes on one store: concurrent publishes, concurrent appenders, a process killed
inside a write transaction. Each runs on SQLite and on PostgreSQL."""
from __future__ import annotations

import signal

from test_store_helpers import mini_rules, python, record

from store import Store

PUBLISH_SCRIPT = """
import sys, time
from pathlib import Path
from store import Store
from test_store_helpers import mini_rules
url, tags, barrier, pause = sys.argv[1], sys.argv[2].split(","), Path(sys.argv[3]), sys.argv[4]
s = Store(url)
if pause == "pause":
    def hook():
        print("in-transaction", flush=True)
        time.sleep(float(sys.argv[5]))
    s._hooks["publish_before_commit"] = hook
while not barrier.exists():
    time.sleep(0.005)
for tag in tags:
    v = s.publish(mini_rules(tag), author="proc-" + tag, message="concurrent " + tag)
    print("published", v.id, flush=True)
"""

APPEND_SCRIPT = """
import sys, time
from pathlib import Path
from store import Store
from test_store_helpers import record
url, prefix, batches, size, barrier = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
s = Store(url)
if len(sys.argv) > 6:
    def hook():
        print("in-transaction", flush=True)
        time.sleep(60)
    s._hooks["append_before_commit"] = hook
while not barrier.exists():
    time.sleep(0.005)
for b in range(batches):
    s.append_decisions([record(i, prefix=f"{prefix}-{b}") for i in range(size)])
print("done", flush=True)
"""


def _assert_linear_history(s: Store) -> None:
    hist = s.activation_history()
    for newer, older in zip(hist, hist[1:], strict=False):
        assert newer["previous_version_id"] == older["version_id"]
    assert hist[-1]["previous_version_id"] is None
    assert s.active_version_id() == hist[0]["version_id"]


def test_concurrent_publishes_from_two_processes_lose_nothing(store, tmp_path):
    barrier = tmp_path / "go"
    procs = [python(PUBLISH_SCRIPT, store.url, f"a{i},b{i},c{i}", str(barrier), "free")
             for i in range(2)]
    barrier.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(out)
    published = {line.split()[1] for out in outs for line in out.splitlines() if line.startswith("published")}
    assert len(published) == 6
    stored = {v.id for v in store.list_versions()}
    assert stored == published
    for vid in published:
        v = store.get_version(vid)
        assert v.files and len(v.files) == 2
    hist = store.activation_history()
    assert len(hist) == 6 and {h["version_id"] for h in hist} == published
    _assert_linear_history(store)
    assert store.active_version_id() in published


def test_a_publish_waits_for_the_one_in_progress_and_takes_it_as_parent(store, tmp_path):
    barrier = tmp_path / "go"
    barrier.touch()
    first = python(PUBLISH_SCRIPT, store.url, "slow", str(barrier), "pause", "1.0")
    assert first.stdout.readline().strip() == "in-transaction"  # holds the lock now
    second = python(PUBLISH_SCRIPT, store.url, "fast", str(barrier), "free")
    out2, err2 = second.communicate(timeout=120)
    out1, err1 = first.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, (err1, err2)
    slow_id = out1.split()[-1]
    fast_id = out2.split()[-1]
    assert store.get_version(fast_id).parent == slow_id
    assert store.active_version_id() == fast_id
    _assert_linear_history(store)


def test_killing_a_process_in_the_middle_of_a_publish_leaves_the_old_version_active(store, tmp_path):
    old = store.publish(mini_rules("old"), author="ana", message="old")
    history = store.activation_history()
    barrier = tmp_path / "go"
    barrier.touch()
    victim = python(PUBLISH_SCRIPT, store.url, "new", str(barrier), "pause", "120")
    assert victim.stdout.readline().strip() == "in-transaction"
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL

    fresh = Store(store.url)
    assert fresh.active_version_id() == old.id
    assert [v.id for v in fresh.list_versions()] == [old.id]
    assert fresh.activation_history() == history
    assert fresh.get_version(old.id).files == mini_rules("old")
    # the lock died with the process: the same candidate publishes normally afterwards
    new = fresh.publish(mini_rules("new"), author="ana", message="new")
    assert fresh.active_version_id() == new.id and new.parent == old.id
    fresh.dispose()


def test_concurrent_appending_processes_keep_one_linear_chain(store, tmp_path):
    barrier = tmp_path / "go"
    procs = [python(APPEND_SCRIPT, store.url, f"p{i}", "15", "10", str(barrier)) for i in range(3)]
    barrier.touch()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    report = store.verify_chain()
    assert report.ok, report.reason
    assert report.checked == 450
    ids = {r["decision_id"] for r in store.query_decisions(limit=1000)}
    assert len(ids) == 450
    assert {f"p{i}-{b}-{n:06d}" for i in range(3) for b in range(15) for n in range(10)} == ids


def test_killing_an_appender_mid_transaction_leaves_the_chain_intact(store, tmp_path):
    store.append_decisions([record(i) for i in range(3)])
    barrier = tmp_path / "go"
    barrier.touch()
    victim = python(APPEND_SCRIPT, store.url, "victim", "1", "5", str(barrier), "pause")
    assert victim.stdout.readline().strip() == "in-transaction"
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    fresh = Store(store.url)
    assert fresh.verify_chain().checked == 3
    fresh.append_decisions([record(i) for i in range(3, 6)])
    report = fresh.verify_chain()
    assert report.ok and report.checked == 6
    assert not [r for r in fresh.query_decisions() if r["decision_id"].startswith("victim")]
    fresh.dispose()


def test_migrations_from_several_processes_at_once(db_url, tmp_path):
    script = "import sys; from store import Store; s = Store(sys.argv[1]); s.migrate(); print(s.schema_is_current())"
    procs = [python(script, db_url) for _ in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "True"
    s = Store(db_url)
    assert s.active_version_id() is None
    s.dispose()



def test_two_servers_bootstrapping_an_empty_store_at_once_publish_once(db_url, tmp_path, monkeypatch, caplog):
    import logging
    import threading

    from api.runtime import bootstrap
    from store import publish as publishing

    rules = tmp_path / "rules"
    rules.mkdir()
    for path, text in mini_rules("1").items():
        (rules / path).parent.mkdir(parents=True, exist_ok=True)
        (rules / path).write_text(text)
    Store(db_url, migrate=True).dispose()
    both_compiled = threading.Barrier(2, timeout=60)
    compile_and_test = publishing.compile_and_test

    def compile_then_meet(files):
        ps = compile_and_test(files)
        both_compiled.wait()  # neither writes before both have seen an empty store and compiled
        return ps

    monkeypatch.setattr(publishing, "compile_and_test", compile_then_meet)
    answers: list[str] = []

    def start_server() -> None:
        s = Store(db_url)
        try:
            assert s.active_version_id() is None
            answers.append(bootstrap(s, rules, author="ordergate serve"))
        finally:
            s.dispose()

    caplog.set_level(logging.INFO, logger="ordergate.api")
    servers = [threading.Thread(target=start_server) for _ in range(2)]
    for server in servers:
        server.start()
    for server in servers:
        server.join(120)
    assert len(answers) == 2 and answers[0] == answers[1]
    said = [r.getMessage() for r in caplog.records if r.name == "ordergate.api"]
    assert sum("store was empty; published and activated" in m for m in said) == 1, said
    assert sum(f"another server published first: found version {answers[0]}" in m for m in said) == 1, said
    s = Store(db_url)
    assert [v.id for v in s.list_versions()] == [answers[0]]
    assert len(s.activation_history()) == 1
    s.dispose()
