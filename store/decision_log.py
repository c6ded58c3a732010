"""The decision-log writer: group commit, bounded in bytes and in records.

``record(records)`` queues prepared records; one background thread writes whatever is queued in
one transaction (``Store.append_decisions``: up to ``batch_size`` records, so many callers share a
commit) and reports each record's fate. Two durabilities:

- ``"commit"`` (the default): ``record()`` returns only once the transaction holding the records
  committed, with the ids of the records that were NOT written (the caller answers those fail
  closed). A transaction that fails fails its records at once: they are not retried, because
  their callers are told "not recorded". Nothing answered as recorded can be lost.
- ``"async"``: ``record()`` returns once the records are queued; a failed transaction is kept and
  retried with back-off. Decisions answered but not yet committed (``at_risk`` in ``stats()``) are
  lost when the process dies; records still unwritten at ``close()`` are counted in ``dropped``.

The queue is bounded by ``max_queue`` records and ``max_queue_bytes`` bytes of record text. When
records do not fit, ``on_full`` decides: ``"block"`` waits up to ``block_timeout`` seconds for
room, ``"fail_closed"`` refuses at once. A record the database refuses for its content
(``RecordRefused``) is isolated by splitting its transaction and set aside (``set_aside``), so it
never blocks the records behind it; in ``"commit"`` its caller is told it was not written.

The queue holds a caller's records together (one entry a group, its records and bytes counted for
the bounds). A transaction takes whole groups while they fit in ``batch_size``; the group that does
not is split: its first records fill the transaction, the rest stays at the head of the queue for
the next one (so ``batch_size`` holds exactly, and a caller of a group larger than ``batch_size``
is answered once its last transaction committed). A group settles at once when all its records in
a transaction share a fate (written, or failed with it).
"""
from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from .chain import PreparedRecord, prepare_record
from .errors import RecordRefused

log = logging.getLogger("ordergate.store")

ON_FULL = ("block", "fail_closed")
DURABILITY = ("commit", "async")
#: bytes a queued record costs besides its input and result text (ids, time, action, Python objects)
RECORD_OVERHEAD = 512


def records_size(records: list[PreparedRecord]) -> int:
    """The bytes ``records`` cost in the queue: their input and result text and ``RECORD_OVERHEAD`` each."""
    return sum([len(r.input_json) + len(r.result_json) for r in records]) + RECORD_OVERHEAD * len(records)


#: a queued part of a group: (its records, the group, their bytes as ``records_size`` counts them)
_Part = tuple[list[PreparedRecord], "_Group", int]


class _Group:
    """Records submitted together by one caller; ``failed`` holds the ids not written.

    How its caller learns their fate (durability ``commit``), once the last one is known:
    ``done``, a lock held until then (``record``): the caller waits on it alone, and the writer
    lets it go after leaving its own lock, so a commit wakes only the callers it answered, each
    once, and none of them then waits for the writer's lock; or ``notify`` (``record_nowait``):
    called by the writer thread with ``(token, failed)`` of every group of that ``notify`` the
    commit settled, one call a commit.
    """

    __slots__ = ("pending", "failed", "done", "notify", "token", "records")

    def __init__(self, records: list[PreparedRecord], wait: bool, notify: Any = None, token: Any = None) -> None:
        self.pending = len(records)
        self.records = records
        self.failed: set[str] = set()
        self.done: Any = None
        self.notify, self.token = notify, token
        if wait:
            self.done = threading.Lock()
            self.done.acquire()


#: the longest ``commit_timeout``: a day (waits on a lock or a loop timer need a finite number)
_LONGEST_WAIT = 86400.0


class DecisionLogWriter:
    def __init__(self, store: Any, *, durability: str = "commit", batch_size: int = 2000,
                 flush_interval: float = 0.05, max_queue: int = 50000, max_queue_bytes: int = 64 << 20,
                 on_full: str = "block", block_timeout: float | None = 10.0, commit_timeout: float = 30.0,
                 max_retry_delay: float = 2.0, start: bool = True):
        if on_full not in ON_FULL:
            raise ValueError(f"on_full must be one of {ON_FULL}, got {on_full!r}")
        if durability not in DURABILITY:
            raise ValueError(f"durability must be one of {DURABILITY}, got {durability!r}")
        if batch_size < 1 or max_queue < 1 or max_queue_bytes < 1 or flush_interval < 0:
            raise ValueError("batch_size, max_queue and max_queue_bytes must be positive, flush_interval >= 0")
        if not 0.0 <= float(commit_timeout) <= _LONGEST_WAIT:
            # a caller waits on a lock or an event loop timer for this long: both need a finite number
            raise ValueError(f"commit_timeout must be between 0 and {_LONGEST_WAIT:g} seconds, got {commit_timeout!r}")
        self._store = store
        self.durability = durability
        self.batch_size = int(batch_size)
        self.flush_interval = float(flush_interval) if durability == "async" else 0.0
        self.max_queue = int(max_queue)
        self.max_queue_bytes = int(max_queue_bytes)
        self.on_full = on_full
        self.block_timeout = block_timeout
        self.commit_timeout = float(commit_timeout)
        self.max_retry_delay = float(max_retry_delay)
        self._queue: deque[_Part] = deque()
        self._queued = 0  # records in the queue (its entries are parts of groups)
        self._queued_bytes = 0
        lock = threading.Lock()
        self._work = threading.Condition(lock)   # the writer thread waits here for records
        self._done = threading.Condition(lock)   # callers wait here for their commit or for room
        self._inflight = 0
        self._inflight_bytes = 0
        self._room_waiters = 0  # callers waiting for room in the queue (others wait for their commit)
        self._flush_waiters = 0  # flush() callers waiting for the queue to empty
        self._to_wake: list[_Group] = []  # groups answered, woken once the lock is let go
        self._closing = False
        self._abandon = False
        self._written = 0
        self._failed = 0
        self._failed_batches = 0
        self._rejected = 0
        self._set_aside = 0
        self._dropped = 0
        self._healthy = True
        self._last_error: str | None = None
        self._last_success: float | None = None
        # stores that can add records once they hold the chain head's lock (Store.append_decisions)
        try:
            self._more = "more" in inspect.signature(store.append_decisions).parameters
        except (TypeError, ValueError):  # pragma: no cover - not introspectable
            self._more = False
        self._thread = threading.Thread(target=self._run, name="ordergate-decision-log", daemon=True)
        if start:
            self._thread.start()

    # -- producer side ----------------------------------------------------------------------

    def record(self, records: Iterable[dict[str, Any] | PreparedRecord]) -> set[str]:
        """Log ``records``; the decision ids that are NOT recorded (answer those fail closed).

        Raises InvalidInput for a malformed record (nothing queued). With durability ``commit``
        this returns once the records' transaction committed (or failed, or ``commit_timeout``
        passed); with ``async`` once they are queued.
        """
        prepared = [prepare_record(r) for r in records]
        if not prepared:
            return set()
        group = _Group(prepared, self.durability == "commit")
        with self._done:
            queued = self._enqueue(group, wait=True)
        if not queued:
            return {p.decision_id for p in prepared}
        if self.durability == "async":
            return set()
        if group.done.acquire(timeout=self.commit_timeout):
            return group.failed
        return self.give_up(group)

    def record_nowait(self, records: Iterable[dict[str, Any] | PreparedRecord],
                      notify: Callable[[list[tuple[Any, set[str]]]], None], token: Any) -> set[str] | _Group | None:
        """Log ``records`` without waiting (for a caller that must not block, such as an event loop).

        Returns the ids NOT recorded when that is known at once (durability ``async``: an empty
        set once queued; no room and ``on_full`` ``"fail_closed"``, or closing: all of them);
        None when there is no room now and ``on_full`` is ``"block"`` (nothing queued: call
        ``record`` where waiting is allowed); else the pending group: the writer thread calls
        ``notify([(token, failed ids), ...])`` once per commit with every group of that
        ``notify`` the commit settled (``failed``: the ids NOT recorded), and ``give_up(group)``
        ends the wait at the caller's ``commit_timeout``. Raises InvalidInput as ``record`` does.
        """
        prepared = [prepare_record(r) for r in records]
        if not prepared:
            return set()
        commit = self.durability == "commit"
        group = _Group(prepared, False, notify if commit else None, token)
        with self._done:
            queued = self._enqueue(group, wait=False)
        if queued is None:
            return None
        if not queued:
            return {p.decision_id for p in prepared}
        return group if commit else set()

    def give_up(self, group: _Group) -> set[str]:
        """Stop waiting for ``group`` (its ``commit_timeout`` passed); the ids NOT recorded."""
        with self._done:
            if group.pending > 0:
                # not answered as recorded: the writer skips what is still queued; a record
                # already in a transaction may still be written (the log then holds a decision
                # its caller was refused, never the other way round)
                group.failed.update(rec.decision_id for rec in group.records)
                group.pending = -1
                self._failed += len(group.records)
            return group.failed

    def _enqueue(self, group: _Group, *, wait: bool) -> bool | None:
        """Queue ``group``'s records (under the lock): True once queued, False when refused for
        want of room (``wait``: after waiting for it as ``on_full`` says); None, with nothing
        queued, when it does not fit now, ``on_full`` is ``"block"`` and ``wait`` is False."""
        prepared = group.records
        total = records_size(prepared)
        room = self._wait_for_room(len(prepared), total, wait)
        if room is None:
            return None
        if not room:
            self._rejected += len(prepared)
            return False
        self._queue.append((prepared, group, total))
        self._queued += len(prepared)
        self._queued_bytes += total
        self._work.notify()
        return True

    def submit(self, record: dict[str, Any] | PreparedRecord) -> bool:
        """Log one record; True when it was recorded (``commit``) or queued (``async``)."""
        return not self.record([record])

    def _fits(self, count: int, size: int) -> bool:
        """Room for ``count`` records of ``size`` bytes, counting the transaction in flight too."""
        if not self._queue and not self._inflight:  # one group larger than the bounds passes alone
            return True
        return (self._queued + self._inflight + count <= self.max_queue
                and self._queued_bytes + self._inflight_bytes + size <= self.max_queue_bytes)

    def _wait_for_room(self, count: int, size: int, wait: bool = True) -> bool | None:
        """Room for ``count`` records of ``size`` bytes (under the lock): True, False (none), or
        None when there is none now and ``on_full`` says wait but ``wait`` is False."""
        if self._closing:
            return False
        if self._fits(count, size):
            return True
        if self.on_full == "fail_closed":
            return False
        if not wait:
            return None
        deadline = None if self.block_timeout is None else time.monotonic() + self.block_timeout
        while not self._closing and not self._fits(count, size):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._room_waiters += 1
            try:
                self._done.wait(remaining)
            finally:
                self._room_waiters -= 1
        return not self._closing

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written or failed. False when the timeout passed first."""
        with self._done:
            self._flush_waiters += 1
            try:
                return self._done.wait_for(lambda: not self._queue and not self._inflight, timeout)
            finally:
                self._flush_waiters -= 1

    def close(self, timeout: float | None = 10.0) -> bool:
        """Stop accepting, write what is queued (up to ``timeout``), stop the thread.

        Returns True when nothing was left unwritten. Records still queued after ``timeout`` are
        failed (``commit``: their callers are answered fail closed) or counted as ``dropped``
        (``async``: they were answered already) and reported in the log.
        """
        with self._done:
            self._closing = True
            self._work.notify_all()
            self._done.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._done:
            self._abandon = True
            self._work.notify_all()
        if self._thread.is_alive():
            self._thread.join(max(self.max_retry_delay, 1.0) + 1.0)
        with self._done:
            left = sum(len(records) for records, _group, _size in self._queue)
            self._settle(list(self._queue), written=False)
            self._queue.clear()
            self._queued = self._queued_bytes = 0
            self._done.notify_all()
            answered = self._answered()
        _wake(answered)
        if left:
            log.error("decision log writer closed with %d unwritten decision(s) (%s): last error %s",
                      left, "counted as dropped" if self.durability == "async" else "callers refused",
                      self._last_error)
        return not left

    def stats(self) -> dict[str, Any]:
        with self._done:
            queued = self._queued
            return {
                "durability": self.durability,
                "queued": queued,
                "queued_bytes": self._queued_bytes + self._inflight_bytes,
                "written": self._written,
                "failed": self._failed,
                "failed_batches": self._failed_batches,
                "rejected": self._rejected,
                "set_aside": self._set_aside,
                "dropped": self._dropped,
                "at_risk": queued + self._inflight if self.durability == "async" else 0,
                "healthy": self._healthy,
                "last_error": self._last_error,
                "max_queue": self.max_queue,
                "max_queue_bytes": self.max_queue_bytes,
                "on_full": self.on_full,
                "running": self._thread.is_alive(),
                "seconds_since_last_write": (None if self._last_success is None
                                             else round(time.monotonic() - self._last_success, 3)),
            }

    @property
    def healthy(self) -> bool:
        with self._done:
            return self._healthy

    # -- writer thread ----------------------------------------------------------------------

    def _settle(self, parts: list[_Part], *, written: bool) -> None:
        """Record the fate of the records of ``parts`` (under the lock); the groups now answered
        are woken by ``_wake(self._answered())`` once the lock is let go."""
        for records, group, _size in parts:
            count = len(records)
            if written:
                self._written += count
            elif group.pending < 0:  # its caller stopped waiting and was answered fail closed
                continue
            elif self.durability == "async":
                self._dropped += count
            else:
                self._failed += count
                group.failed.update([rec.decision_id for rec in records])
            if group.pending > 0:
                group.pending -= count
                if not group.pending and (group.done is not None or group.notify is not None):
                    self._to_wake.append(group)

    def _settle_apart(self, parts: list[_Part], set_aside: list[PreparedRecord]) -> None:
        """Settle ``parts`` written but for the ``set_aside`` records (under the lock)."""
        refused = {id(rec) for rec in set_aside}
        self._set_aside += len(set_aside)
        for part in parts:
            records, group, _size = part
            kept = [rec for rec in records if id(rec) not in refused]
            if len(kept) == len(records):
                self._settle([part], written=True)
                continue
            self._settle([([rec for rec in records if id(rec) in refused], group, 0)], written=False)
            if kept:
                self._settle([(kept, group, 0)], written=True)

    def _answered(self) -> list[_Group]:
        """The groups settled since the last call (under the lock)."""
        answered, self._to_wake = self._to_wake, []
        return answered

    def _append(self, batch: list[PreparedRecord], more: Any = None) -> list[PreparedRecord]:
        """Write ``batch``; the records the database refuses for their content are set aside.

        A batch refused for a data reason (``RecordRefused``: not a connection problem) is split
        in halves until the refused records stand alone, so one poison record never blocks the
        records behind it; every other error propagates. Returns the records set aside, each
        reported in the log. ``more`` (first try only, see ``_joining``) adds to ``batch``.
        """
        try:
            if more is not None:
                self._store.append_decisions(batch, more=more)
            else:
                self._store.append_decisions(batch)
            return []
        except RecordRefused as exc:
            if len(batch) == 1:
                log.error("decision log: the database refused decision %s; set aside: %s",
                          batch[0].decision_id, exc)
                return batch
        middle = len(batch) // 2
        return self._append(batch[:middle]) + self._append(batch[middle:])

    def _wake_others(self) -> None:
        """Wake the callers waiting for room or for the queue to empty (under the lock)."""
        if self._room_waiters or self._flush_waiters:
            self._done.notify_all()

    def _take_batch(self) -> list[_Part] | None:
        """The next batch (under the lock), None when the thread should stop."""
        while not self._queue and not self._closing:
            if not self._work.wait(None if self._healthy else self.max_retry_delay) and not self._healthy:
                return []  # idle and unhealthy: probe the database
        if self._abandon:
            return None
        if self.flush_interval and self._queued < self.batch_size and not self._closing:
            deadline = time.monotonic() + self.flush_interval
            while self._queued < self.batch_size and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._work.wait(remaining)
        batch: list[_Part] = []
        self._inflight, self._inflight_bytes = self._pop(self.batch_size, batch)
        if not batch and not self._queue and self._closing:
            return None
        if self._room_waiters:  # records whose caller stopped waiting were dropped: room
            self._done.notify_all()
        return batch

    def _pop(self, limit: int, batch: list[_Part]) -> tuple[int, int]:
        """Up to ``limit`` queued records added to ``batch`` (under the lock), skipping those whose
        caller stopped waiting: whole groups, and the first records of the group that does not fit
        (its rest stays at the head of the queue). Returns the records and bytes added."""
        queue = self._queue
        count = size = 0
        while queue and count < limit:
            records, group, part_size = queue.popleft()
            self._queued -= len(records)
            self._queued_bytes -= part_size
            if group.pending < 0:
                continue
            room = limit - count
            if len(records) > room:  # split: the rest waits for the next transaction, first in line
                rest = records[room:]
                rest_size = records_size(rest)
                queue.appendleft((rest, group, rest_size))
                self._queued += len(rest)
                self._queued_bytes += rest_size
                records, part_size = records[:room], part_size - rest_size
            batch.append((records, group, part_size))
            count += len(records)
            size += part_size
        return count, size

    def _joining(self, batch: list[_Part], records: list[PreparedRecord]) -> Any:
        """What the store calls once it holds the chain head's lock: the records queued while the
        transaction waited for it (another process was committing) join the transaction, up to
        ``batch_size``, instead of waiting for the next one. They are added to ``batch`` and to
        ``records`` (so that a transaction refused for its data is split with them)."""
        def more() -> list[PreparedRecord]:
            joined: list[PreparedRecord] = []
            with self._done:
                start = len(batch)
                count, size = self._pop(self.batch_size - len(records), batch)
                self._inflight += count
                self._inflight_bytes += size
            for part in batch[start:]:
                joined.extend(part[0])
            records.extend(joined)
            return joined
        return more

    def _probe(self) -> None:
        """Healthy again once the database answers, even with no decision to write."""
        with self._done:
            if self._healthy:
                return
        ping = getattr(self._store, "ping", None)
        try:
            if ping is not None:
                ping()
        except Exception:
            return
        with self._done:
            self._healthy = ping is not None or self._healthy

    def _run(self) -> None:
        delay = 0.05
        while True:
            with self._done:
                batch = self._take_batch()
            if batch is None:
                return
            if not batch:
                self._probe()
                continue
            try:
                records: list[PreparedRecord] = []
                for part in batch:
                    records.extend(part[0])
                more = self._joining(batch, records) if self._more else None
                set_aside = self._append(records, more)
            except Exception as exc:
                with self._done:
                    self._failed_batches += 1
                    self._healthy = False
                    self._last_error = f"{type(exc).__name__}: {exc}"
                    self._inflight = self._inflight_bytes = 0
                    if self.durability == "async":  # kept, at the head of the queue, and retried
                        self._queue.extendleft(reversed(batch))
                        self._queued += sum(len(part[0]) for part in batch)
                        self._queued_bytes += sum(part[2] for part in batch)
                    else:  # its callers are answered fail closed now
                        self._settle(batch, written=False)
                    self._wake_others()
                    answered = self._answered()
                _wake(answered)
                with self._done:
                    log.warning("decision log: a transaction of %d decision(s) failed (next try in %.2fs): %s",
                                len(records), delay, exc)
                    self._work.wait_for(lambda: self._abandon, delay)
                    if self._abandon:
                        return
                delay = min(delay * 2, self.max_retry_delay)
                continue
            delay = 0.05
            with self._done:
                if set_aside:
                    self._settle_apart(batch, set_aside)
                else:
                    self._settle(batch, written=True)
                self._inflight = self._inflight_bytes = 0
                self._healthy = True
                self._last_success = time.monotonic()
                self._wake_others()
                answered = self._answered()
            _wake(answered)


def _wake(groups: list[_Group]) -> None:
    """Let the callers of ``groups`` go (outside the writer's lock): release each waiting caller,
    and call each ``notify`` once with the ``(token, failed)`` of all its groups."""
    notified: dict[Any, list[tuple[Any, set[str]]]] = {}
    for group in groups:
        if group.done is not None:
            group.done.release()
        else:
            notified.setdefault(group.notify, []).append((group.token, group.failed))
    for notify, settled in notified.items():
        try:
            notify(settled)
        except Exception:  # a caller gone (its event loop closed) must not stop the writer
            log.exception("decision log: telling %d caller(s) their decisions' fate failed", len(settled))
