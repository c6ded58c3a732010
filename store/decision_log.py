"""Batched, never-dropping writer of the decision log.

``submit()`` validates a record and queues it; a background thread writes batches with
``Store.append_decisions``. A batch that fails (database down, lock timeout, ...) stays at the
head of the queue and is retried with back-off: records leave the queue only once written.
When the queue is full, ``on_full`` decides:

- ``"block"``: wait (up to ``block_timeout`` seconds, None = forever) for room while the writer is
  healthy; when it is unhealthy (its last batch failed) or the wait times out, return False.
- ``"fail_closed"``: return False at once.

``submit()`` returning False means the record was NOT queued: the caller must fail closed
(answer deny / 503), never allow without a log entry. ``stats()`` reports it all; ``dropped`` is
always 0 because nothing is ever discarded (records still queued at ``close()`` are reported).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from .chain import PreparedRecord, prepare_record
from .errors import RecordRefused

log = logging.getLogger("ordergate.store")

ON_FULL = ("block", "fail_closed")


class DecisionLogWriter:
    def __init__(self, store: Any, *, batch_size: int = 500, flush_interval: float = 0.05,
                 max_queue: int = 50000, on_full: str = "block", block_timeout: float | None = 10.0,
                 max_retry_delay: float = 2.0, start: bool = True):
        if on_full not in ON_FULL:
            raise ValueError(f"on_full must be one of {ON_FULL}, got {on_full!r}")
        if batch_size < 1 or max_queue < 1 or flush_interval < 0:
            raise ValueError("batch_size and max_queue must be positive, flush_interval >= 0")
        self._store = store
        self.batch_size = int(batch_size)
        self.flush_interval = float(flush_interval)
        self.max_queue = int(max_queue)
        self.on_full = on_full
        self.block_timeout = block_timeout
        self.max_retry_delay = float(max_retry_delay)
        self._queue: deque[PreparedRecord] = deque()
        self._cv = threading.Condition()
        self._inflight = 0
        self._closing = False
        self._abandon = False
        self._written = 0
        self._failed_batches = 0
        self._rejected = 0
        self._set_aside = 0
        self._healthy = True
        self._last_error: str | None = None
        self._last_success: float | None = None
        self._thread = threading.Thread(target=self._run, name="ordergate-decision-log", daemon=True)
        if start:
            self._thread.start()

    # -- producer side ----------------------------------------------------------------------

    def submit(self, record: dict[str, Any] | PreparedRecord, *, input_has_text_keys: bool = False) -> bool:
        """Queue one record. Raises InvalidInput for a malformed record; False = not queued.

        The record is validated and its input and result serialised to canonical JSON here, on
        the caller's thread, so a record that cannot be logged is refused to the caller (who has
        not answered yet) rather than failing in the writer; the writer thread only hashes and
        writes (``Store.append_decisions``), steps that cannot fail on a prepared record.
        ``input_has_text_keys``: see ``chain.prepare_record``.
        """
        rec = prepare_record(record, input_has_text_keys=input_has_text_keys)
        with self._cv:
            if self._closing:
                self._rejected += 1
                return False
            if len(self._queue) >= self.max_queue and self.on_full == "block":
                deadline = None if self.block_timeout is None else time.monotonic() + self.block_timeout
                while len(self._queue) >= self.max_queue and self._healthy and not self._closing:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    self._cv.wait(remaining)
            if len(self._queue) >= self.max_queue or self._closing:
                self._rejected += 1
                return False
            self._queue.append(rec)
            # wake the writer only when it has something to do: the first record (it waits for one)
            # or a full batch (it waits for one until flush_interval); waking it on every record
            # cost a thread switch and a GIL hand-off per decision
            if len(self._queue) == 1 or len(self._queue) >= self.batch_size:
                self._cv.notify_all()
            return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is written. False when the timeout passed first."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._queue and not self._inflight, timeout)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Stop accepting, write what is queued (up to ``timeout``), stop the thread.

        Returns True when everything was written; otherwise the unwritten records are reported
        in the log and in ``stats()["queued"]`` (they were never acknowledged as written).
        """
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._cv:
            self._abandon = True
            self._cv.notify_all()
            left = len(self._queue)
        if self._thread.is_alive():
            self._thread.join(max(self.max_retry_delay, 1.0) + 1.0)
        if left:
            log.error("decision log writer closed with %d unwritten decision(s): last error %s",
                      left, self._last_error)
        return left == 0

    def stats(self) -> dict[str, Any]:
        with self._cv:
            return {
                "queued": len(self._queue),
                "written": self._written,
                "failed_batches": self._failed_batches,
                "dropped": 0,
                "rejected": self._rejected,
                "set_aside": self._set_aside,
                "healthy": self._healthy,
                "last_error": self._last_error,
                "max_queue": self.max_queue,
                "on_full": self.on_full,
                "running": self._thread.is_alive(),
                "seconds_since_last_write": (None if self._last_success is None
                                             else round(time.monotonic() - self._last_success, 3)),
            }

    @property
    def healthy(self) -> bool:
        with self._cv:
            return self._healthy

    # -- writer thread ----------------------------------------------------------------------

    def _append(self, batch: list[PreparedRecord]) -> list[PreparedRecord]:
        """Write ``batch``; the records the database refuses for their content are set aside.

        A batch refused for a data reason (``RecordRefused``: not a connection problem) is split
        in halves until the refused records stand alone, so one poison record never blocks the
        records behind it; every other error propagates (the batch is kept and retried). Returns
        the records set aside, each reported in the log.
        """
        try:
            self._store.append_decisions(batch)
            return []
        except RecordRefused as exc:
            if len(batch) == 1:
                log.error("decision log: the database refused decision %s; set aside: %s",
                          batch[0].decision_id, exc)
                return batch
        middle = len(batch) // 2
        return self._append(batch[:middle]) + self._append(batch[middle:])

    def _run(self) -> None:
        delay = 0.05
        while True:
            with self._cv:
                while not self._queue and not self._closing:
                    self._cv.wait()
                if not self._queue or self._abandon:
                    return
                if len(self._queue) < self.batch_size and not self._closing and self.flush_interval:
                    deadline = time.monotonic() + self.flush_interval
                    while len(self._queue) < self.batch_size and not self._closing:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._cv.wait(remaining)
                batch = [self._queue[i] for i in range(min(self.batch_size, len(self._queue)))]
                self._inflight = len(batch)
            try:
                set_aside = self._append(batch)
            except Exception as exc:  # kept in the queue and retried
                with self._cv:
                    self._inflight = 0
                    self._failed_batches += 1
                    self._healthy = False
                    self._last_error = f"{type(exc).__name__}: {exc}"
                    self._cv.notify_all()
                    log.warning("decision log batch of %d failed (retrying in %.2fs): %s",
                                len(batch), delay, exc)
                    self._cv.wait_for(lambda: self._abandon, delay)
                    if self._abandon:
                        return
                delay = min(delay * 2, self.max_retry_delay)
                continue
            delay = 0.05
            with self._cv:
                for _ in batch:
                    self._queue.popleft()
                self._inflight = 0
                self._written += len(batch) - len(set_aside)
                self._set_aside += len(set_aside)
                self._healthy = True
                self._last_success = time.monotonic()
                self._cv.notify_all()
