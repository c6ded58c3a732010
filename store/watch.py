"""Active-version watcher: polling everywhere, LISTEN/NOTIFY on PostgreSQL, and a signal file
that the processes of one server touch after an activation (a cheap wake-up on SQLite)."""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("ordergate.store")

SIGNAL_STEP = 0.02  # seconds between two looks at the signal file (one stat call)


def touch_signal(path: str | Path, version_id: str) -> None:
    """Wake every watcher that follows ``path``: replace the file with one naming ``version_id``."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    partial.write_text(version_id, encoding="utf-8")
    partial.replace(target)  # a new inode: watchers see the change even within one mtime tick


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


class ActiveWatcher:
    """Calls ``callback(version_id)`` from its own thread when the active version changes.

    The version it compares against is the one active when it started (``fire_initial=True``
    calls back once with it at start). A NOTIFY only wakes the watcher: it always re-reads the
    active version from its own database/schema, so notifications from other schemas sharing
    the server are harmless. Without LISTEN, a ``signal`` file (see ``touch_signal``) wakes it
    within ``SIGNAL_STEP`` instead of the next poll; the file only wakes, it is never trusted
    for the version.
    """

    def __init__(self, store: Any, callback: Callable[[str | None], Any], *, interval: float = 1.0,
                 fire_initial: bool = False, signal: str | Path | None = None):
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._store = store
        self._callback = callback
        self.interval = float(interval)
        self._fire_initial = fire_initial
        self._signal = Path(signal) if signal is not None else None
        self._signalled = _stamp(self._signal) if self._signal is not None else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ordergate-active-watcher", daemon=True)
        self._listen_conn: Any = None
        self.current: str | None = None
        self.listening = False
        self.last_error: str | None = None
        self.changes = 0

    def start(self) -> ActiveWatcher:
        # LISTEN before reading the initial version: an activation in between is not missed
        self._open_listener()
        try:
            initial = self._store.active_version_id()
        except Exception as exc:  # DB down at start: the first successful poll reports it
            self.last_error = str(exc)
            initial = None
            self._fire_initial = True
        if not self._fire_initial:
            self.current = initial
        else:
            self.current = object()  # type: ignore[assignment]  # anything != a real id
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self._close_listener()

    close = stop

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> ActiveWatcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------------

    def _open_listener(self) -> None:
        if self._store.dialect != "postgresql" or self._listen_conn is not None:
            return
        from .versions import NOTIFY_CHANNEL

        try:
            fairy = self._store.engine.raw_connection()
            conn = fairy.driver_connection
            conn.autocommit = True
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self._listen_conn = fairy
            self.listening = True
        except Exception as exc:
            self.last_error = f"LISTEN failed, polling only: {exc}"
            log.warning("active watcher: %s", self.last_error)

    def _close_listener(self) -> None:
        fairy, self._listen_conn = self._listen_conn, None
        self.listening = False
        if fairy is not None:
            with contextlib.suppress(Exception):
                fairy.invalidate()  # never hand a LISTENing autocommit connection back to the pool

    def _wait(self) -> None:
        """Sleep up to one interval, waking early on a NOTIFY or on stop."""
        if self._listen_conn is None:
            if self._signal is None:
                self._stop.wait(self.interval)
            else:
                self._wait_for_signal(self._signal)
            return
        try:
            conn = self._listen_conn.driver_connection
            step = min(self.interval, 0.25)  # bounded so stop() is honoured promptly
            waited = 0.0
            while waited < self.interval and not self._stop.is_set():
                for _ in conn.notifies(timeout=step, stop_after=1):
                    return
                waited += step
        except Exception as exc:
            self.last_error = f"LISTEN connection lost, polling: {exc}"
            log.warning("active watcher: %s", self.last_error)
            self._close_listener()
            self._stop.wait(self.interval)

    def _wait_for_signal(self, signal: Path) -> None:
        """Sleep up to one interval, waking early when the signal file changes or on stop."""
        deadline = time.monotonic() + self.interval
        while not self._stop.wait(min(SIGNAL_STEP, max(deadline - time.monotonic(), 0.0))):
            stamp = _stamp(signal)
            if stamp != self._signalled:
                self._signalled = stamp
                return
            if time.monotonic() >= deadline:
                return

    def _run(self) -> None:
        while not self._stop.is_set():
            self._open_listener()
            try:
                vid = self._store.active_version_id()
            except Exception as exc:
                self.last_error = str(exc)
                log.warning("active watcher: cannot read the active version: %s", exc)
            else:
                if vid != self.current:
                    try:
                        self._callback(vid)
                    except Exception as exc:  # retried at the next tick
                        self.last_error = f"callback failed for {vid}: {exc}"
                        log.exception("active watcher: callback failed for %s", vid)
                    else:
                        self.current = vid
                        self.changes += 1
            if self._stop.is_set():
                break
            self._wait()
        self._close_listener()
