"""One decision-log writer for every worker of a server, in a process of its own.

``ordergate serve`` starts ``python -m store.log_process`` (``LogWriterProcess``) before its
workers: a ``DecisionLogWriter`` on the server's database behind a Unix socket in the server's
private state folder (``LogServer``). Each worker hands its prepared records to it through that
socket (``RemoteLogWriter``, the worker's ``Runtime.writer``) instead of committing them itself,
so the decisions of all the workers share one group commit: no two writers take turns on the
chain head's lock, and no worker thread waits for its process's interpreter lock to commit.

The guarantees are the writer's own (``store.decision_log``): with durability ``commit`` the
writer process answers a group once its transaction committed (or failed: its ids are then
answered fail closed); with ``async`` once it is queued there. A worker whose connection to the
writer process breaks (the process died) answers every decision still waiting fail closed, and
every later one too until the process is back (``LogWriterProcess`` restarts it). What a worker
stopped waiting for (its ``commit_timeout``) may still be written: the log then holds a decision
its caller was refused, never the other way round.

Wire format, both ways: frames of a 4-byte big-endian length and a ``marshal`` payload (the
socket sits in a folder only the server's user can enter; ``marshal`` reads plain values only).
Worker to writer: ``(token, [record fields, ...])`` to record, ``(0, token)`` for the writer's
stats, ``(-1, token)`` to cancel a group its worker stopped waiting for; writer to worker:
``[(token, failed ids or the stats), ...]``, one frame per commit.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import marshal
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, cast

from .chain import PreparedRecord, prepare_record
from .decision_log import _wake, records_size

log = logging.getLogger("ordergate.store")

_LENGTH = struct.Struct("!I")
#: the largest frame either side accepts (a batch of 1,000 decisions of 1 MiB bodies fits)
MAX_FRAME = 1 << 30
#: seconds a worker waits for the writer process's stats (``/readyz``, ``/metrics``)
STATS_TIMEOUT = 2.0
#: seconds between a worker's attempts to reach a writer process that does not answer
RECONNECT_INTERVAL = 0.05
#: seconds a worker's send may block before its connection counts as broken
SEND_TIMEOUT = 5.0
#: seconds between the backlog's looks for room in the writer's queue (a group arriving or
#: leaving wakes it at once)
ROOM_POLL = 0.01
_STATS = 0
_CANCEL = -1
#: the token of each group a worker sends (0 asks for the stats)
_KEYS = itertools.count(1)


def _frame(value: Any) -> bytes:
    data = marshal.dumps(value)
    return _LENGTH.pack(len(data)) + data


#: what travels of a record, in this order both ways
_FIELDS = ("decision_id", "time", "action", "policy_version", "input_json", "result_json", "allow",
           "rules", "caller", "request_id")


def _fields(rec: PreparedRecord) -> tuple:
    row = {name: getattr(rec, name) for name in _FIELDS}
    row["allow"], row["rules"] = bool(rec.allow), list(rec.rules)  # plain values for marshal
    return tuple(row[name] for name in _FIELDS)


def _record(row: Any) -> PreparedRecord:
    return PreparedRecord(**dict(zip(_FIELDS, row, strict=True)))


class _Frames:
    """Reads whole frames from a blocking socket; None at the end of the stream."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()

    def read(self) -> Any:
        buffer = self._buffer
        while True:
            if len(buffer) >= 4:
                (size,) = _LENGTH.unpack_from(buffer)
                if size > MAX_FRAME:
                    raise OSError(f"a frame of {size} bytes is larger than {MAX_FRAME}")
                if len(buffer) >= 4 + size:
                    value = marshal.loads(bytes(buffer[4:4 + size]))
                    del buffer[:4 + size]
                    return value
            chunk = self._sock.recv(1 << 18)
            if not chunk:
                return None
            buffer += chunk


# -- the writer process's side -------------------------------------------------------------------


class _Arrival:
    """A group as it arrived from a worker, until the writer holds it (or it is answered)."""

    __slots__ = ("peer", "token", "records", "size", "deadline", "cancelled", "backlogged")

    def __init__(self, peer: _Peer, token: int, records: list[PreparedRecord], block_timeout: float | None) -> None:
        self.peer, self.token, self.records = peer, token, records
        self.size = records_size(records)
        # ``block_timeout`` counts from the group's arrival, however long others waited before it
        self.deadline = None if block_timeout is None else time.monotonic() + block_timeout
        self.cancelled = False
        self.backlogged = False


class _Peer:
    """One worker's connection: how to answer it, and its groups not answered yet (by token:
    an ``_Arrival`` until the writer holds the group, then the writer's pending group)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sending = threading.Lock()
        self.groups: dict[int, Any] = {}

    def send(self, settled: list[tuple[int, Any]]) -> None:
        frame = _frame(settled)
        # the worker gone: nobody waits for these answers
        with self.sending, contextlib.suppress(OSError):
            self.sock.sendall(frame)


class LogServer:
    """Serves ``writer`` (a ``DecisionLogWriter``) to the workers connecting to ``path``.

    One thread a connection reads the records a worker sends and queues them with
    ``writer.record_nowait``; the writer's thread sends each worker the fate of its groups once a
    commit settled them (one frame a commit). A group that finds no room in the queue (``on_full``
    ``block``) waits in one backlog, first come first served, for at most ``block_timeout`` from
    its arrival; the backlog holds at most ``max_queue`` records and ``max_queue_bytes`` bytes
    (the writer's own bounds): a group past them is refused at once (fail closed). A worker that
    stopped waiting for a group (its ``commit_timeout``) cancels it: the writer skips it
    (``writer.give_up``) and a group still in the backlog leaves it; so do a lost worker's groups.
    """

    def __init__(self, writer: Any, path: str) -> None:
        self.writer = writer
        self.path = path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a socket left by a writer process that died
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        os.chmod(path, 0o600)
        self._listener.listen(64)
        self._connections: set[socket.socket] = set()
        self._lock = threading.Condition()  # the connections, every peer's groups and the backlog
        self._backlog: deque[_Arrival] = deque()
        self._backlog_records = 0
        self._backlog_bytes = 0
        self._refused = 0  # decisions refused here: the backlog was full, or their block_timeout passed
        self._stopping = False
        self._room = threading.Thread(target=self._wait_for_room, name="ordergate-log-room", daemon=True)
        self._room.start()

    def serve(self, stop: threading.Event) -> None:
        """Accept workers until ``stop`` is set."""
        self._listener.settimeout(0.2)
        while not stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if stop.is_set():
                    return
                raise
            sock.settimeout(None)
            with self._lock:
                self._connections.add(sock)
            threading.Thread(target=self._serve_worker, args=(sock,), name="ordergate-log-peer", daemon=True).start()

    def close(self, timeout: float) -> bool:
        """Stop accepting, refuse the backlog, write what is queued (answering its workers), close."""
        with contextlib.suppress(OSError):
            self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._room.join(5)
        clean = self.writer.close(timeout=timeout)
        with self._lock:
            for sock in self._connections:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        return clean

    def stats(self) -> dict[str, Any]:
        """The writer's stats, with the backlog and the decisions refused here."""
        stats = self.writer.stats()
        with self._lock:
            stats["rejected"] = int(stats.get("rejected") or 0) + self._refused
            stats["waiting_for_room"] = self._backlog_records
        return stats

    # -- one worker's connection --------------------------------------------------------------

    def _serve_worker(self, sock: socket.socket) -> None:
        peer = _Peer(sock)
        frames = _Frames(sock)
        try:
            while True:
                message = frames.read()
                if message is None:
                    return
                token, body = message
                if token == _STATS:  # (0, the token to answer with)
                    peer.send([(body, self.stats())])
                elif token == _CANCEL:  # (-1, the token of the group its worker stopped waiting for)
                    self._cancel(peer, body)
                else:
                    self._arrived(peer, token, [_record(row) for row in body])
        except (OSError, ValueError, EOFError, TypeError) as exc:
            log.error("decision log: a worker's connection failed: %s", exc)
        finally:
            with self._lock:
                self._connections.discard(sock)
            # nobody waits for its groups any more: the writer skips what it has not written yet
            for group in self._forget(peer):
                self.writer.give_up(group)
            with contextlib.suppress(OSError):
                sock.close()

    def _arrived(self, peer: _Peer, token: int, records: list[PreparedRecord]) -> None:
        arrival = _Arrival(peer, token, records, self.writer.block_timeout)
        with self._lock:
            peer.groups[token] = arrival
            backlog = bool(self._backlog)  # first come first served: none overtakes the backlog
            if backlog and not self._backlog_takes(arrival):
                del peer.groups[token]
                self._refused += len(records)
                refused = True
            else:
                refused = False
        if refused:
            peer.send([(token, [rec.decision_id for rec in records])])
        elif not backlog and not self._hand_over(arrival):
            with self._lock:
                if self._backlog_takes(arrival) or arrival.cancelled:
                    return
                peer.groups.pop(token, None)
                self._refused += len(records)
            peer.send([(token, [rec.decision_id for rec in records])])

    def _backlog_takes(self, arrival: _Arrival) -> bool:
        """Put ``arrival`` in the backlog (under the lock) unless it is full: True when it did."""
        if arrival.cancelled or self._stopping:  # closing: nobody would hand it over
            return False
        writer = self.writer
        if self._backlog and (self._backlog_records + len(arrival.records) > writer.max_queue
                              or self._backlog_bytes + arrival.size > writer.max_queue_bytes):
            return False
        arrival.backlogged = True
        self._backlog.append(arrival)
        self._backlog_records += len(arrival.records)
        self._backlog_bytes += arrival.size
        self._lock.notify_all()
        return True

    def _hand_over(self, arrival: _Arrival) -> bool:
        """Queue ``arrival`` with the writer; False, with nothing queued, when there is no room now."""
        peer, token = arrival.peer, arrival.token

        def committed(settled: list[tuple[int, set[str]]]) -> None:
            with self._lock:
                for answered, _failed in settled:
                    peer.groups.pop(answered, None)
            peer.send([(answered, list(failed)) for answered, failed in settled])

        group = self.writer.record_nowait(arrival.records, committed, token)
        if group is None:
            return False
        with self._lock:
            mine = peer.groups.get(token) is arrival
            if isinstance(group, set):
                if mine:
                    del peer.groups[token]
            elif mine:
                peer.groups[token] = group  # until its commit answers it, or it is cancelled
        if isinstance(group, set):  # known at once: queued (async) or refused
            peer.send([(token, list(group))])
        elif arrival.cancelled:  # cancelled while it was handed over
            self.writer.give_up(group)
        return True

    def _cancel(self, peer: _Peer, token: int) -> None:
        with self._lock:
            waiting = peer.groups.pop(token, None)
            if isinstance(waiting, _Arrival):
                self._drop(waiting)
                waiting = None
        if waiting is not None:
            self.writer.give_up(waiting)

    def _drop(self, arrival: _Arrival) -> None:
        """``arrival`` is answered elsewhere (under the lock): it leaves the backlog's count."""
        if not arrival.cancelled and arrival.backlogged:
            self._backlog_records -= len(arrival.records)
            self._backlog_bytes -= arrival.size
            self._lock.notify_all()
        arrival.cancelled = True

    def _forget(self, peer: _Peer) -> list[Any]:
        """A worker gone: its arrivals leave the backlog; its groups the writer holds (returned)."""
        with self._lock:
            held = []
            for waiting in peer.groups.values():
                if isinstance(waiting, _Arrival):
                    self._drop(waiting)
                else:
                    held.append(waiting)
            peer.groups.clear()
        return held

    # -- the backlog ----------------------------------------------------------------------------

    def _wait_for_room(self) -> None:
        """The backlog's thread: hand its groups to the writer in turn, as room appears."""
        while True:
            with self._lock:
                expired = self._expired()
                while not expired and not self._backlog and not self._stopping:
                    self._lock.wait()
                head = self._backlog[0] if self._backlog else None
                stopping = self._stopping
            _refuse(expired)
            if stopping:
                with self._lock:
                    left = list(self._backlog)
                    for arrival in left:
                        self._drop(arrival)
                    self._backlog.clear()
                _refuse([(a.peer, a.token, a.records) for a in left])
                return
            if head is None:
                continue
            if head.cancelled or self._hand_over(head):
                self._pop(head)
            else:  # no room yet: look again soon (or at once, when a group arrives or leaves)
                with self._lock:
                    self._lock.wait(ROOM_POLL)

    def _pop(self, head: _Arrival | None) -> None:
        with self._lock:
            if self._backlog and self._backlog[0] is head:
                self._backlog.popleft()
                if head is not None and not head.cancelled:
                    self._backlog_records -= len(head.records)
                    self._backlog_bytes -= head.size
                    head.cancelled = True  # counted out of the backlog
            self._lock.notify_all()

    def _expired(self) -> list[tuple[_Peer, int, list[PreparedRecord]]]:
        """The groups whose ``block_timeout`` passed (under the lock), out of the backlog."""
        now = time.monotonic()
        expired = []
        for arrival in list(self._backlog):
            if arrival.cancelled:
                continue
            if arrival.deadline is None or arrival.deadline > now:
                break  # the backlog is in order of arrival: the ones behind came later
            self._drop(arrival)
            arrival.peer.groups.pop(arrival.token, None)
            self._refused += len(arrival.records)
            expired.append((arrival.peer, arrival.token, arrival.records))
        while self._backlog and self._backlog[0].cancelled:
            self._backlog.popleft()
        return expired


def _refuse(groups: list[tuple[_Peer, int, list[PreparedRecord]]]) -> None:
    """Answer ``groups`` fail closed: none of their records is written."""
    for peer, token, records in groups:
        peer.send([(token, [rec.decision_id for rec in records])])


def main() -> None:
    """``python -m store.log_process``: the settings arrive as one JSON line on stdin.

    Prints ``ready`` once it accepts workers. Stops (writing what is queued) when the server
    writes ``stop`` on stdin (once its workers are gone), or when stdin ends: every process that
    could hand it records (the server and its workers, which inherit the pipe) is gone. SIGTERM,
    SIGINT and SIGHUP are the server's to handle: a stop (systemd sends SIGTERM to every process
    of the service at once), a Ctrl-C or a graceful reload stops or replaces the workers, which
    still need their writer meanwhile. SIGKILL ends it at once: its workers then answer every
    decision waiting for it fail closed.
    """
    from . import Store
    from .decision_log import DecisionLogWriter

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("ordergate").setLevel(logging.INFO)
    settings = json.loads(sys.stdin.readline())
    stop = threading.Event()

    def told_to_stop() -> None:
        with contextlib.suppress(Exception):
            for line in sys.stdin:
                if line.strip() == "stop":
                    break
        stop.set()

    store = Store(settings["database_url"])
    writer = DecisionLogWriter(store, **settings["writer"])
    server = LogServer(writer, settings["socket"])
    threading.Thread(target=told_to_stop, name="ordergate-log-stdin", daemon=True).start()
    print("ready", flush=True)
    try:
        server.serve(stop)
    finally:
        if not server.close(timeout=float(settings.get("close_timeout", 25.0))):
            log.error("decision log writer process: decisions still unwritten at exit: %s", writer.stats())
        store.dispose()


# -- the worker's side ---------------------------------------------------------------------------


class _Waiting:
    """One group a worker waits for: its ids, and how its caller hears their fate."""

    __slots__ = ("key", "link", "ids", "notify", "token", "done", "failed")

    def __init__(self, ids: list[str], notify: Any = None, token: Any = None) -> None:
        self.key = next(_KEYS)  # never reused: a late answer can only reach its own group
        self.link: _Link | None = None
        self.ids, self.notify, self.token = ids, notify, token
        self.failed: Any = None
        self.done: threading.Lock | None = None
        if notify is None:
            self.done = threading.Lock()
            self.done.acquire()


class _Link:
    """One connection to the writer process and the groups waiting for its answers."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sending = threading.Lock()
        self.pending: dict[int, _Waiting] = {}
        self.broken = False


class RemoteLogWriter:
    """A worker's decision-log writer: hands records to the server's writer process.

    The same calls as ``DecisionLogWriter`` (``record``, ``record_nowait``, ``give_up``,
    ``stats``, ``healthy``, ``close``). One thread reads the writer process's answers and tells
    the waiting callers (``notify`` once per answer frame, as the writer does once per commit).
    When the writer process cannot be reached or its connection breaks, the decisions are
    answered not recorded (fail closed) until it is back.
    """

    def __init__(self, path: str, *, durability: str = "commit", on_full: str = "block",
                 commit_timeout: float = 30.0, max_queue: int = 0, max_queue_bytes: int = 0) -> None:
        self.path = path
        self.durability = durability
        self.on_full = on_full
        self.commit_timeout = float(commit_timeout)
        self._limits = {"max_queue": max_queue, "max_queue_bytes": max_queue_bytes}
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._last_attempt = 0.0
        self._closing = False
        self._failed = 0     # waiting decisions answered fail closed here (connection lost, timeout)
        self._rejected = 0   # decisions refused here: the writer process could not be reached
        self._last_error: str | None = None
        self._last_stats: dict[str, Any] | None = None  # the writer process's, as last received

    # -- recording ------------------------------------------------------------------------------

    def record(self, records: Iterable[dict[str, Any] | PreparedRecord]) -> set[str]:
        """Log ``records``; the ids NOT recorded, once their fate is known (or ``commit_timeout`` passed)."""
        prepared = [prepare_record(r) for r in records]
        if not prepared:
            return set()
        waiting = _Waiting([p.decision_id for p in prepared])
        refused = self._send(prepared, waiting)
        if refused is not None:
            return refused
        assert waiting.done is not None
        if waiting.done.acquire(timeout=self.commit_timeout):
            return waiting.failed
        return self.give_up(waiting)

    def record_nowait(self, records: Iterable[dict[str, Any] | PreparedRecord],
                      notify: Callable[[list[tuple[Any, set[str]]]], None], token: Any) -> set[str] | _Waiting:
        """Log ``records`` without waiting: the ids NOT recorded when known at once (the writer
        process cannot be reached), else the pending group: ``notify([(token, failed ids)])`` is
        called (on the reader thread) once their fate is known; ``give_up(group)`` ends the wait."""
        prepared = [prepare_record(r) for r in records]
        if not prepared:
            return set()
        waiting = _Waiting([p.decision_id for p in prepared], notify, token)
        refused = self._send(prepared, waiting)
        return waiting if refused is None else refused

    def give_up(self, waiting: _Waiting) -> set[str]:
        """Stop waiting for ``waiting`` (its ``commit_timeout`` passed): every id counts as NOT
        recorded unless its answer already arrived (it may still be written)."""
        with self._lock:
            link = waiting.link
            claimed = link is not None and link.pending.pop(waiting.key, None) is not None
            if claimed or waiting.failed is None:
                waiting.failed = set(waiting.ids)
                self._failed += len(waiting.ids)
            failed = waiting.failed
        if claimed and link is not None and not link.broken:
            # the writer process skips what it has not written yet (a lost connection does too)
            with link.sending, contextlib.suppress(OSError):
                link.sock.sendall(_frame((_CANCEL, waiting.key)))
        return failed

    def _send(self, prepared: list[PreparedRecord], waiting: _Waiting) -> set[str] | None:
        """Send a group; None once sent, else the ids NOT recorded (the writer process is out of reach)."""
        frame = _frame((waiting.key, [_fields(p) for p in prepared]))
        link = self._connected()
        if link is not None and self._deliver(link, waiting, frame):
            return None
        with self._lock:
            self._rejected += len(waiting.ids)
        return set(waiting.ids)

    def _deliver(self, link: _Link, waiting: _Waiting, frame: bytes) -> bool:
        """Send ``frame`` for ``waiting`` on ``link``: True once it waits there for its answer."""
        waiting.link = link
        link.pending[waiting.key] = waiting
        try:
            with link.sending:
                link.sock.sendall(frame)
        except OSError as exc:
            link.pending.pop(waiting.key, None)
            self._broken(link, f"sending to the decision log writer process failed: {exc}")
            return False
        # the connection broke while this was sent: nobody will answer it there
        return not (link.broken and link.pending.pop(waiting.key, None) is not None)

    # -- the connection -------------------------------------------------------------------------

    def _connected(self) -> _Link | None:
        """The live connection to the writer process, made now if there is none (at most every
        ``RECONNECT_INTERVAL``); None when the writer process cannot be reached."""
        link = self._link
        if link is not None and not link.broken:
            return link
        with self._lock:
            link = self._link
            if link is not None and not link.broken:
                return link
            now = time.monotonic()
            if self._closing or now - self._last_attempt < RECONNECT_INTERVAL:
                return None
            self._last_attempt = now
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
            except OSError as exc:
                sock.close()
                self._last_error = f"the decision log writer process does not answer: {exc.strerror or exc}"
                return None
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(SEND_TIMEOUT), 0))
            link = self._link = _Link(sock)
            self._last_error = None
        threading.Thread(target=self._read, args=(link,), name="ordergate-log-answers", daemon=True).start()
        return link

    def _read(self, link: _Link) -> None:
        """The reader thread of one connection: tell each waiting caller its group's fate."""
        frames = _Frames(link.sock)
        reason = "the decision log writer process closed the connection"
        try:
            while True:
                settled = frames.read()
                if settled is None:
                    break
                _answer(link, settled)
        except (OSError, ValueError, EOFError, TypeError) as exc:
            reason = f"reading the decision log writer process's answers failed: {exc}"
        self._broken(link, reason)

    def _broken(self, link: _Link, reason: str) -> None:
        """The connection is lost: every group still waiting on it is answered fail closed."""
        with self._lock:
            if link.broken:
                return
            link.broken = True
            left = list(link.pending.values())
            link.pending.clear()
            self._failed += sum(len(w.ids) for w in left)
            if not self._closing:
                self._last_error = reason
        with contextlib.suppress(OSError):
            link.sock.close()
        if left and not self._closing:
            log.error("decision log: %s; %d waiting decision(s) answered fail closed", reason,
                      sum(len(w.ids) for w in left))
        elif not self._closing:
            log.error("decision log: %s", reason)
        _tell([(w, set(w.ids)) for w in left])

    # -- state ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The writer process's stats (every worker's decisions), with this worker's own refusals
        added; ``healthy`` False when the writer process does not answer."""
        remote = self._remote_stats()
        with self._lock:
            mine = {"failed": self._failed, "rejected": self._rejected}
            error = self._last_error
            if remote is not None:
                self._last_stats = dict(remote)
            last = self._last_stats
        if remote is None:
            # the counters as last received (a counter reported as 0 then back would look like a
            # reset to a scraper), marked unhealthy; zeros only before any answer arrived
            remote = {"durability": self.durability, "queued": 0, "queued_bytes": 0, "written": 0, "failed": 0,
                      "failed_batches": 0, "rejected": 0, "set_aside": 0, "dropped": 0, "at_risk": 0,
                      "on_full": self.on_full, "seconds_since_last_write": None, **self._limits, **(last or {}),
                      "healthy": False, "running": False,
                      "last_error": error or "the decision log writer process does not answer"}
        remote["failed"] = int(remote.get("failed") or 0) + mine["failed"]
        remote["rejected"] = int(remote.get("rejected") or 0) + mine["rejected"]
        remote["writer_process"] = remote.get("running", False)
        return remote

    def _remote_stats(self) -> dict[str, Any] | None:
        waiting = _Waiting([])
        link = self._connected()
        if link is None or not self._deliver(link, waiting, _frame((_STATS, waiting.key))):
            return None
        assert waiting.done is not None
        if not waiting.done.acquire(timeout=STATS_TIMEOUT):
            link.pending.pop(waiting.key, None)
            return None
        return waiting.failed if isinstance(waiting.failed, dict) else None

    @property
    def healthy(self) -> bool:
        return bool(self.stats().get("healthy"))

    def close(self, timeout: float | None = 10.0) -> bool:
        """Wait (up to ``timeout``) for the answers of the groups still waiting, then disconnect.
        True when none was left waiting (those left are answered fail closed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        link = self._link
        while link is not None and link.pending and not link.broken:
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        with self._lock:
            self._closing = True
            left = 0 if link is None or link.broken else len(link.pending)
        if link is not None:
            self._broken(link, "closed")
        return not left


def _answer(link: _Link, settled: list[tuple[int, Any]]) -> None:
    """Hand each answered group its fate (on the reader thread)."""
    told: list[tuple[_Waiting, Any]] = []
    for token, outcome in settled:
        waiting = link.pending.pop(token, None)
        if waiting is not None:
            told.append((waiting, outcome if isinstance(outcome, dict) else set(outcome)))
    _tell(told)


def _tell(told: list[tuple[_Waiting, Any]]) -> None:
    """Give each waiting group its outcome, then release its caller or call its ``notify`` (once
    for all of its groups), as the in-process writer does."""
    for waiting, outcome in told:
        waiting.failed = outcome
    _wake(cast(Any, [waiting for waiting, _outcome in told]))  # a _Waiting has what _wake reads of a group


# -- the server's side: starting, watching and stopping the writer process ------------------------


class LogWriterProcess:
    """The writer process of one ``ordergate serve``, restarted whenever it exits unasked.

    ``settings``: ``database_url``, ``socket`` (a path in a folder only this user can enter),
    ``writer`` (``DecisionLogWriter`` keyword arguments) and ``close_timeout``.
    """

    def __init__(self, settings: dict[str, Any], *, start_timeout: float = 60.0, restart_delay: float = 0.2,
                 max_restart_delay: float = 5.0, stable_after: float = 10.0) -> None:
        self.settings = settings
        self.start_timeout = start_timeout
        #: the first restart waits ``restart_delay``; each one after a process that failed again
        #: (exited within ``stable_after`` seconds, or did not start) twice as long, up to
        #: ``max_restart_delay``
        self.restart_delay = restart_delay
        self.max_restart_delay = max(max_restart_delay, restart_delay)
        self.stable_after = stable_after
        self.process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._owner = os.getpid()  # a forked worker leaving through the same code stops nothing
        self.restarts = 0

    def start(self) -> None:
        """Start the process and wait until it accepts workers; raises RuntimeError when it does not."""
        self.process = self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="ordergate-log-process", daemon=True)
        self._watcher.start()

    def _spawn(self) -> subprocess.Popen:
        # -P: the folder the server was started in is no place to import the writer from
        process = subprocess.Popen([sys.executable, "-P", "-m", "store.log_process"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, close_fds=True)
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps(self.settings).encode() + b"\n")
            process.stdin.flush()
            ready, _, _ = select.select([process.stdout], [], [], self.start_timeout)
            line = process.stdout.readline() if ready else b""
        except OSError:
            line = b""
        if line.strip() != b"ready":
            with contextlib.suppress(OSError):
                process.kill()
            process.wait()
            _release(process)
            raise RuntimeError("the decision log writer process did not start (its errors are above)")
        return process

    def _watch(self) -> None:
        delay = self.restart_delay
        started = time.monotonic()
        while not self._stopping.is_set():
            process = self.process
            assert process is not None
            code = process.wait()
            if self._stopping.is_set():
                return
            _release(process)
            if time.monotonic() - started >= self.stable_after:
                delay = self.restart_delay  # it ran a while: this is a new failure, not the same one
            log.error("ordergate: the decision log writer process exited (%s); restarting it in %.2gs "
                      "(meanwhile decisions are answered fail closed)", code, delay)
            while not self._stopping.wait(delay):
                delay = min(delay * 2, self.max_restart_delay)
                try:
                    self.process = self._spawn()
                except (RuntimeError, OSError) as exc:
                    log.error("ordergate: %s; trying again in %.2gs", exc, delay)
                    continue
                started = time.monotonic()
                self.restarts += 1
                log.warning("ordergate: the decision log writer process is back")
                break

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the process once the workers are gone: it writes what is queued first."""
        if os.getpid() != self._owner:
            return
        self._stopping.set()
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(OSError, ValueError):  # it ignores SIGTERM: asked on its stdin
                assert process.stdin is not None
                process.stdin.write(b"stop\n")
                process.stdin.flush()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("ordergate: the decision log writer process did not stop in %g s; killed", timeout)
                process.kill()
                process.wait()
        _release(process)
        if self._watcher is not None:
            self._watcher.join(5)


def _release(process: subprocess.Popen) -> None:
    """Close our ends of an exited writer process's pipes."""
    for stream in (process.stdin, process.stdout):
        with contextlib.suppress(OSError):
            if stream is not None:
                stream.close()


if __name__ == "__main__":
    main()
