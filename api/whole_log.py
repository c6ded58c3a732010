"""One read of the whole decision log at a time in a server process.

A chain verify or an impact replay reads every logged decision: seconds to minutes on a long log.
The API and the workbench run them on the server's answering threads, so each process runs one
at a time; a second asked meanwhile is refused at once (the API answers 429 ``busy`` with a
``Retry-After``, the workbench a 429 page) instead of piling whole-log reads onto the threads that
answer decisions. Both hold the same lock: a replay from the API makes the workbench's wait too.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: seconds a refused caller is told to wait (``Retry-After``)
RETRY_AFTER = 10

_LOCK = threading.Lock()


@contextmanager
def one_at_a_time(busy: Callable[[], BaseException]) -> Iterator[None]:
    """Hold the whole-log lock while the block runs; raise ``busy()`` at once when it is held."""
    if not _LOCK.acquire(blocking=False):
        raise busy()
    try:
        yield
    finally:
        _LOCK.release()
