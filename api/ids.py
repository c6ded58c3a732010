"""Decision ids: ULIDs, many at a time.

A ULID is 48 bits of Unix time in milliseconds and 80 bits of randomness, written as 26
characters of Crockford's base 32 (the text python-ulid's ``str(ULID())`` gives, and
``ULID.from_str`` reads). As python-ulid does, ids made in the same millisecond by one process
increase: the randomness is drawn once per millisecond and counted up, so they sort in the order
they were made. Ids made together are consecutive numbers, so they share their first 22
characters: a batch writes those once and only the last four per id (from a table of every pair
of characters), a fraction of what python-ulid spends per id.
"""
from __future__ import annotations

import os
import threading
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: the two characters of every 10-bit number
_PAIRS = [_CROCKFORD[n >> 5] + _CROCKFORD[n & 31] for n in range(1024)]
#: a 128-bit id as 13 groups of 10 bits (the first with two leading zero bits): 26 characters
_SHIFTS = tuple(range(120, -1, -10))
_RANDOM_BITS = 80
_MAX_RANDOM = (1 << _RANDOM_BITS) - 1


class IdMaker:
    """Monotonic ULIDs of one process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._next = 0  # the randomness of the next id in ``_last_ms``

    def _numbers(self, count: int) -> tuple[int, int]:
        """(millisecond, first randomness) of ``count`` consecutive ids."""
        while True:
            ms = time.time_ns() // 1_000_000
            with self._lock:
                if ms > self._last_ms:
                    self._last_ms = ms
                    self._next = int.from_bytes(os.urandom(10), "big")
                if self._next + count - 1 <= _MAX_RANDOM:
                    first = self._next
                    self._next += count
                    return self._last_ms, first
                # the millisecond's randomness is used up (about never): wait for the next one
                self._last_ms += 1
                self._next = int.from_bytes(os.urandom(10), "big")
                wait = self._last_ms - ms
            time.sleep(wait / 1000)

    def new(self, count: int = 1) -> list[str]:
        """``count`` new ids, in increasing order."""
        if count <= 0:
            return []
        ms, first = self._numbers(count)
        pairs = _PAIRS
        ids = []
        head, prefix = -1, ""
        for number in range((ms << _RANDOM_BITS) | first, ((ms << _RANDOM_BITS) | first) + count):
            if number >> 20 != head:  # the first 22 characters (all but the last 20 bits)
                head = number >> 20
                prefix = "".join([pairs[(number >> shift) & 1023] for shift in _SHIFTS])[:22]
            ids.append(prefix + pairs[(number >> 10) & 1023] + pairs[number & 1023])
        return ids


_MAKER = IdMaker()
new_ids = _MAKER.new
