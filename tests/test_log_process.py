"""The server's one decision-log writer process (`store/log_process.py`) and the workers' side of it.

Each guarantee of the in-process writer holds through the socket: an answer only after the commit,
a failed commit answered fail closed, `commit_timeout`, a full queue, `async`; and the ones of its
own: a writer process that dies answers every waiting and every later decision fail closed, and
the server's watcher starts a new one.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from test_store_helpers import record

from store import DecisionLogWriter, StoreError
from store.log_process import LogServer, LogWriterProcess, RemoteLogWriter


class Gated:
    """A store whose appends wait for ``gate`` and fail while ``failing`` is set."""

    def __init__(self, store) -> None:
        self.store = store
        self.gate = threading.Event()
        self.gate.set()
        self.failing = False
        self.appending = threading.Event()

    def append_decisions(self, records, more=None):
        self.appending.set()
        assert self.gate.wait(10)
        if self.failing:
            raise StoreError("append_decisions: database unavailable (test)")
        self.store.append_decisions(records, more=more)

    def ping(self):
        self.store.ping()


@pytest.fixture
def serve(tmp_path):
    """Start a LogServer over ``writer`` on a thread; yields a function that does so."""
    started: list[tuple[LogServer, threading.Event, threading.Thread]] = []

    def start(writer, name: str = "log.sock") -> str:
        path = str(tmp_path / name)
        server = LogServer(writer, path)
        stop = threading.Event()
        thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
        thread.start()
        started.append((server, stop, thread))
        return path

    yield start
    for server, stop, thread in started:
        stop.set()
        thread.join(5)
        server.close(timeout=5)


def _ids(store) -> set[str]:
    return {entry["decision_id"] for entry in store.query_decisions(limit=1000)}


def test_a_group_is_answered_once_its_transaction_committed(store, serve):
    gated = Gated(store)
    remote = RemoteLogWriter(serve(DecisionLogWriter(gated)))
    assert remote.record([record(1), record(2)]) == set()
    assert _ids(store) == {"d-000001", "d-000002"}
    # without waiting: the answer arrives only after the commit, with the group's token
    gated.gate.clear()
    told: list[tuple[object, set[str], set[str]]] = []
    arrived = threading.Event()

    def notify(settled):
        for token, failed in settled:
            told.append((token, failed, _ids(store)))
        arrived.set()

    group = remote.record_nowait([record(3)], notify, "request-3")
    assert not isinstance(group, set)
    assert gated.appending.wait(5)
    assert not arrived.wait(0.3)  # the transaction waits: no answer yet
    gated.gate.set()
    assert arrived.wait(5)
    assert told == [("request-3", set(), {"d-000001", "d-000002", "d-000003"})]
    stats = remote.stats()
    assert stats["healthy"] is True and stats["written"] == 3 and stats["writer_process"] is True
    assert remote.close(timeout=5)
    assert store.verify_chain().ok


def test_a_failed_commit_is_answered_fail_closed_and_nothing_is_written(store, serve):
    gated = Gated(store)
    gated.failing = True
    remote = RemoteLogWriter(serve(DecisionLogWriter(gated)))
    assert remote.record([record(1), record(2)]) == {"d-000001", "d-000002"}
    assert _ids(store) == set()
    stats = remote.stats()
    assert stats["healthy"] is False and stats["failed"] == 2 and "unavailable" in stats["last_error"]
    gated.failing = False
    assert remote.record([record(3)]) == set()
    assert _ids(store) == {"d-000003"}
    remote.close(timeout=5)


def test_commit_timeout_answers_fail_closed_and_a_late_commit_reaches_no_one(store, serve):
    gated = Gated(store)
    gated.gate.clear()
    remote = RemoteLogWriter(serve(DecisionLogWriter(gated)), commit_timeout=0.3)
    started = time.monotonic()
    assert remote.record([record(1)]) == {"d-000001"}
    assert 0.25 <= time.monotonic() - started < 3
    told: list = []
    group = remote.record_nowait([record(2)], told.extend, "two")
    assert remote.give_up(group) == {"d-000002"}
    gated.gate.set()  # the late commit may write them: the log holds more than was answered, never less
    assert remote.record([record(3)]) == set()
    assert told == [] and "d-000003" in _ids(store)
    assert remote.stats()["failed"] >= 2
    remote.close(timeout=5)


@pytest.mark.parametrize("on_full", ["fail_closed", "block"])
def test_a_full_queue_refuses_or_waits_as_on_full_says(store, serve, on_full):
    gated = Gated(store)
    gated.gate.clear()
    writer = DecisionLogWriter(gated, max_queue=1, on_full=on_full, block_timeout=0.3)
    remote = RemoteLogWriter(serve(writer))
    told: list = []
    first = remote.record_nowait([record(1)], told.extend, "first")
    assert gated.appending.wait(5)  # in flight: the queue's one place is taken
    started = time.monotonic()
    assert remote.record([record(2)]) == {"d-000002"}
    waited = time.monotonic() - started
    assert (waited >= 0.25) if on_full == "block" else (waited < 0.25)
    gated.gate.set()
    deadline = time.monotonic() + 5
    while not told and time.monotonic() < deadline:
        time.sleep(0.01)
    assert told == [("first", set())] and not isinstance(first, set)
    assert _ids(store) == {"d-000001"}
    assert remote.stats()["rejected"] == 1
    remote.close(timeout=5)


def _until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def _held_shut(store, serve, **bounds):
    """A writer process over ``store`` held shut (no transaction commits until ``gate.set()``),
    with these queue bounds: (the gated store, the remote writer)."""
    gated = Gated(store)
    gated.gate.clear()
    return gated, RemoteLogWriter(serve(DecisionLogWriter(gated, on_full="block", **bounds)), commit_timeout=30)


def test_groups_waiting_for_room_are_bounded_and_a_given_up_one_is_never_written(store, serve):
    gated, remote = _held_shut(store, serve, max_queue=1, block_timeout=30)
    told: list = []
    groups = [remote.record_nowait([record(i)], told.extend, i) for i in range(1, 3001)]
    assert gated.appending.wait(5)
    # the first is in its transaction, one waits for room (max_queue 1); the rest are refused at once
    assert _until(lambda: len(told) >= 2998)
    stats = remote.stats()
    assert stats["waiting_for_room"] <= 1 and stats["rejected"] >= 2998
    assert sorted(token for token, failed in told if failed) == list(range(3, 3001))
    # every caller stops waiting (its commit_timeout): the writer process is told, and skips them
    assert all(remote.give_up(group) for group in groups if not isinstance(group, set))
    assert _until(lambda: remote.stats()["waiting_for_room"] == 0)
    gated.gate.set()
    assert remote.record([record(9999)]) == set()  # the queue drained: what was left is written
    written = _ids(store)
    # only the group already in its transaction may still be written (the log holds more than was
    # answered, never less); none that waited for room
    assert written - {"d-000001"} == {"d-009999"}
    remote.close(timeout=5)


def test_a_group_that_waited_for_room_is_written_and_answered_after_its_commit(store, serve):
    gated, remote = _held_shut(store, serve, max_queue=1, block_timeout=10)
    told: list = []
    remote.record_nowait([record(1)], told.extend, "first")
    assert gated.appending.wait(5)
    second = remote.record_nowait([record(2)], told.extend, "second")
    assert not isinstance(second, set)
    assert _until(lambda: remote.stats()["waiting_for_room"] == 1)
    time.sleep(0.2)
    assert told == []
    gated.gate.set()
    assert _until(lambda: len(told) == 2)
    assert told == [("first", set()), ("second", set())]
    assert _ids(store) == {"d-000001", "d-000002"}
    remote.close(timeout=5)


def test_block_timeout_counts_from_each_groups_arrival(store, serve):
    gated, remote = _held_shut(store, serve, max_queue=3, block_timeout=0.5)
    told: list = []
    remote.record_nowait([record(1), record(2), record(3)], told.extend, "first")
    assert gated.appending.wait(5)
    started = time.monotonic()
    for i in range(4, 7):  # three groups wait together, each for 0.5 s from its own arrival
        remote.record_nowait([record(i)], told.extend, i)
    assert _until(lambda: len(told) == 3)
    assert time.monotonic() - started < 1.2
    assert sorted(told) == [(4, {"d-000004"}), (5, {"d-000005"}), (6, {"d-000006"})]
    gated.gate.set()
    remote.close(timeout=5)


def test_async_durability_answers_once_queued_in_the_writer_process(store, serve):
    gated = Gated(store)
    gated.gate.clear()
    remote = RemoteLogWriter(serve(DecisionLogWriter(gated, durability="async", flush_interval=0)))
    assert remote.record([record(1)]) == set()  # answered while its transaction waits
    assert _ids(store) == set()
    gated.gate.set()
    deadline = time.monotonic() + 5
    while not _ids(store) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _ids(store) == {"d-000001"}
    remote.close(timeout=5)


def test_a_lost_writer_answers_the_waiting_decisions_fail_closed_at_once(store, tmp_path):
    gated = Gated(store)
    path = str(tmp_path / "lost.sock")
    server = LogServer(DecisionLogWriter(gated), path)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    remote = RemoteLogWriter(path, commit_timeout=30)
    assert remote.record([record(i) for i in range(11, 16)]) == set()
    assert remote.stats()["written"] == 5
    gated.gate.clear()
    gated.appending.clear()
    told: list = []
    arrived = threading.Event()

    def notify(settled):
        told.extend(settled)
        arrived.set()

    remote.record_nowait([record(1)], notify, "waiting")
    assert gated.appending.wait(5)
    stop.set()
    thread.join(5)
    started = time.monotonic()
    server._listener.close()  # the writer process is gone: nobody listens, its connections end
    with server._lock:
        for sock in server._connections:
            sock.shutdown(2)
    assert arrived.wait(5) and time.monotonic() - started < 5
    assert told == [("waiting", {"d-000001"})]
    # nobody listens any more: refused at once, never waited for
    assert remote.record([record(2)]) == {"d-000002"}
    time.sleep(0.1)
    assert remote.record([record(3)]) == {"d-000003"}
    stats = remote.stats()
    assert stats["healthy"] is False and stats["writer_process"] is False and stats["rejected"] == 2
    # the counters stay as last received (never back to 0: a scraper would see a reset)
    assert stats["written"] == 5 and stats["failed"] == 1
    gated.gate.set()
    server.close(timeout=5)
    assert "d-000002" not in _ids(store) and "d-000003" not in _ids(store)


def test_the_writer_process_is_restarted_and_the_workers_reconnect(db_url, tmp_path):
    socket_path = str(tmp_path / "writer.sock")
    from store import Store

    setup = Store(db_url)
    setup.migrate()
    setup.dispose()
    process = LogWriterProcess({"database_url": db_url, "socket": socket_path, "writer": {},
                                "close_timeout": 5}, restart_delay=0.05)
    process.start()
    try:
        remote = RemoteLogWriter(socket_path)
        assert remote.record([record(1)]) == set()
        first = process.process.pid
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        answers = []
        while time.monotonic() < deadline:
            answers.append(remote.record([record(len(answers) + 2)]))
            if answers[-1] == set():
                break
            time.sleep(0.02)
        assert answers[-1] == set() and process.restarts == 1 and process.process.pid != first
        # every decision answered recorded is in the log; the others were answered fail closed
        recorded = {record(i + 2)["decision_id"] for i, failed in enumerate(answers) if not failed}
        store = Store(db_url)
        try:
            assert recorded | {"d-000001"} <= _ids(store)
            assert store.verify_chain().ok
        finally:
            store.dispose()
        remote.close(timeout=5)
    finally:
        process.stop(timeout=10)
    assert process.process.poll() is not None and not Path(socket_path).exists()


def test_a_writer_process_failing_again_and_again_is_restarted_with_back_off(db_url, tmp_path):
    from store import Store

    setup = Store(db_url)
    setup.migrate()
    setup.dispose()
    socket_path = str(tmp_path / "writer.sock")
    process = LogWriterProcess({"database_url": db_url, "socket": socket_path, "writer": {}, "close_timeout": 5},
                               restart_delay=0.05, max_restart_delay=0.4, stable_after=1.0)
    attempts: list[tuple[float, float]] = []
    spawn = process._spawn

    def timed():
        begun = time.monotonic()
        try:
            return spawn()
        finally:
            attempts.append((begun, time.monotonic()))

    process._spawn = timed
    process.start()
    attempts.clear()
    try:
        good = process.settings["socket"]
        process.settings["socket"] = str(tmp_path / "no" / "such" / "folder" / "w.sock")  # cannot start
        os.kill(process.process.pid, signal.SIGKILL)
        assert _until(lambda: len(attempts) >= 6, 60)
        waits = [attempts[i + 1][0] - attempts[i][1] for i in range(len(attempts) - 1)]
        # each failed start waits twice as long as the one before, up to max_restart_delay
        assert 0.08 <= waits[0] < 0.3 and waits[1] >= 0.18 and waits[2] >= 0.35 and max(waits) < 1.0, waits
        process.settings["socket"] = good
        assert _until(lambda: process.restarts == 1, 30)
        time.sleep(1.2)  # it stayed up longer than stable_after: the next restart waits restart_delay again
        attempts.clear()
        died = time.monotonic()
        os.kill(process.process.pid, signal.SIGKILL)
        assert _until(lambda: process.restarts == 2, 30)
        assert attempts[0][0] - died < 0.3
    finally:
        process.stop(timeout=10)


def test_sigterm_to_the_whole_service_leaves_the_writer_process_to_the_server(db_url, tmp_path):
    from store import Store

    setup = Store(db_url)
    setup.migrate()
    setup.dispose()
    socket_path = str(tmp_path / "writer.sock")
    process = LogWriterProcess({"database_url": db_url, "socket": socket_path, "writer": {}, "close_timeout": 5})
    process.start()
    try:
        remote = RemoteLogWriter(socket_path)
        os.kill(process.process.pid, signal.SIGTERM)  # as systemd stops a service: every process at once
        time.sleep(0.5)
        assert process.process.poll() is None and process.restarts == 0
        assert remote.record([record(1)]) == set()  # the workers finishing their requests still record
        remote.close(timeout=5)
    finally:
        process.stop(timeout=10)
    assert process.process.returncode == 0 and not Path(socket_path).exists()


def test_a_writer_process_that_cannot_start_is_one_clear_error(tmp_path):
    process = LogWriterProcess({"database_url": "sqlite:///" + str(tmp_path / "db.sqlite"),
                                "socket": str(tmp_path / "no" / "such" / "folder" / "w.sock"), "writer": {}},
                               start_timeout=30)
    with pytest.raises(RuntimeError, match="did not start"):
        process.start()
