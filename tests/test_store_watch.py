"""Running servers learn of a new activation: polling on both databases, NOTIFY on PostgreSQL."""
from __future__ import annotations

import queue

from test_store_helpers import mini_rules

from store import Store


def test_watcher_reports_each_activation(store):
    v1 = store.publish(mini_rules("1"), author="ana", message="v1")
    seen: queue.Queue = queue.Queue()
    on_pg = store.dialect == "postgresql"
    # on PostgreSQL the poll interval is far beyond the test's wait: only the NOTIFY can deliver
    watcher = store.watch_active(seen.put, interval=300 if on_pg else 0.05)
    try:
        assert watcher.listening == on_pg
        v2 = store.publish(mini_rules("2"), author="ana", message="v2")
        assert seen.get(timeout=30) == v2.id
        store.activate(v1.id, actor="ops", reason="rollback")
        assert seen.get(timeout=30) == v1.id
        if on_pg:
            assert watcher.listening
    finally:
        watcher.stop()
    assert not watcher.alive
    assert seen.empty()


def test_watcher_fires_initial_and_retries_a_failing_callback(db_url):
    s = Store(db_url)
    s.migrate()
    v1 = s.publish(mini_rules("1"), author="ana", message="v1")
    calls: queue.Queue = queue.Queue()
    failures = {"left": 2}

    def callback(vid):
        calls.put(vid)
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("could not load")

    with s.watch_active(callback, interval=0.02, fire_initial=True) as watcher:
        assert [calls.get(timeout=30) for _ in range(3)] == [v1.id] * 3  # failed twice, then taken
        assert "could not load" in (watcher.last_error or "")
    assert watcher.current == v1.id and watcher.changes == 1
    s.dispose()


def test_watcher_survives_a_database_that_does_not_answer():
    down = Store("postgresql+psycopg://postgres@127.0.0.1:1/test")
    seen: queue.Queue = queue.Queue()
    watcher = down.watch_active(seen.put, interval=0.02)
    try:
        assert watcher.alive
        assert watcher.last_error
    finally:
        watcher.stop()
    assert seen.empty()
    down.dispose()


def test_a_touched_signal_file_wakes_a_polling_watcher_at_once(tmp_path):
    from store.watch import touch_signal

    s = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    s.migrate()
    v1 = s.publish(mini_rules("1"), author="ana", message="v1")
    signal = tmp_path / ".activated"
    seen: queue.Queue = queue.Queue()
    # the poll interval is far beyond the test's wait: only the signal can deliver
    watcher = s.watch_active(seen.put, interval=300, signal=signal)
    try:
        v2 = s.publish(mini_rules("2"), author="ana", message="v2")
        touch_signal(signal, v2.id)
        assert seen.get(timeout=30) == v2.id
        s.activate(v1.id, actor="ops", reason="rollback")
        touch_signal(signal, v1.id)
        assert seen.get(timeout=30) == v1.id
    finally:
        watcher.stop()
    assert seen.empty()
    s.dispose()
