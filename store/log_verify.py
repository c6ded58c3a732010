"""Verifying the decision log's hash chain: streamed, in bounded memory, on one core or several.

``verify`` recomputes every entry's hash from its stored content and the hash of the entry before
it, from the first entry to the chain head, and reports the first break exactly (which entry, what
is wrong). The log is read in pages of ``VERIFY_PAGE`` entries, each in a short read of its own
(entries up to the head never change), through the driver's cursor (plain tuples).

Per entry, the common case costs little: the text hashed is built from the stored texts with the
parts shared by many entries (action, version, caller) cached, the hash compared as hex text, and
the result's ``allow`` and rule ids read once per distinct result text. Anything out of the common
case (an unexpected seq or link, a field that JSON escapes, a mismatch) goes to the exact check
(``check_entry``), which names what is wrong.

With ``jobs`` > 1 the chain is cut into ranges of ``chunk`` entries, verified by worker processes:
each range's entries are checked against each other, starting from the link its first entry
stores; the parent then checks that each range's first link is the hash the range before it
ended with. Every range intact and every boundary linked is exactly the condition the sequential
scan checks; anything else (a break, a worker's error) runs the sequential scan, which finds and
describes the first break, so the report never depends on ``jobs``.
"""
from __future__ import annotations

import json
import multiprocessing
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import orjson

from . import chain
from .errors import StoreError
from .schema import HEAD_DECISIONS

VERIFY_PAGE = 5000
#: the entries a worker process verifies at a time (``jobs`` > 1)
CHUNK = 50000
#: a result text's checks are remembered for this many distinct texts (then forgotten, all at once)
_RESULT_CACHE = 4096
_COLUMN_LIST = ("seq, decision_id, time, action, allow, policy_version, input, result, prev_hash, hash, "
                "caller, request_id")
_PREV_MISMATCH = "prev_hash does not match the previous entry's hash (an entry was removed or reordered)"
#: a character that JSON text escapes (``json.encoder.encode_basestring``, ensure_ascii=False)
_ESCAPED = re.compile(r'[\x00-\x1f"\\]')
_quote = json.encoder.encode_basestring  # type: ignore[attr-defined]
# the rule ids a page's query asks for at once (a parameter each)
_RULES_PER_QUERY = 500


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    first_broken_id: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "first_broken_seq": self.first_broken_seq,
                "first_broken_id": self.first_broken_id, "reason": self.reason}


# -- the exact check of one entry -------------------------------------------------------------


def _entry_hash(row: Any, prev: str) -> str:
    body = chain.hash_body(row[0], row[1], row[2], row[3], row[5], row[6], row[7], row[10], row[11])
    return sha256((prev + body).encode("utf-8")).hexdigest()


def self_consistent(row: Any) -> bool:
    """The entry's hash matches its content chained to its own stored prev_hash."""
    try:
        return _entry_hash(row, row[8]) == row[9]
    except UnicodeEncodeError:
        return False


def check_entry(row: Any, prev: str, indexed_rules: list[str]) -> str:
    """Why the entry (a row of ``_COLUMN_LIST``) breaks the chain after ``prev``; "" when it does not."""
    if row[8] != prev:
        return _PREV_MISMATCH
    try:
        if _entry_hash(row, prev) != row[9]:
            return "hash does not match the entry's content (the entry was altered)"
        result = orjson.loads(row[7])
    except (ValueError, UnicodeEncodeError):
        return "the entry's text is not valid JSON or UTF-8 (the entry was altered)"
    if not isinstance(result, dict) or bool(row[4]) != result.get("allow"):
        return "the allow column disagrees with the logged result"
    rules = result.get("rules") or []
    if indexed_rules != rules and sorted(indexed_rules) != chain.rule_ids(result):
        return "the rule index disagrees with the logged result"
    return ""


# -- the common case, fast --------------------------------------------------------------------


class _Fast:
    """Whether an entry certainly passes ``check_entry``: True only when it would return "".

    Builds the same text ``chain.hash_body`` does (the same quoting), with the quoted parts that
    many entries share cached; a result text's ``allow`` and rules are parsed once.
    """

    def __init__(self) -> None:
        self.heads: dict[tuple[str, str | None, str | None], tuple[str, str]] = {}
        self.results: dict[str, tuple[Any, ...]] = {}

    def ok(self, row: Any, prev: str, indexed: list[str]) -> bool:
        try:
            return self._ok(row, prev, indexed)
        except (TypeError, UnicodeEncodeError):  # a column of another type, a lone surrogate: the exact check says
            return False

    def _ok(self, row: Any, prev: str, indexed: list[str]) -> bool:
        seq, did, time, action, allow, version, input_json, result_json, _, stored, caller, rid = row
        key = (action, version, caller)
        parts = self.heads.get(key)
        if parts is None:
            parts = self.heads[key] = _parts(action, version, caller)
        if _ESCAPED.search(did + time if rid is None else did + time + rid):
            return False
        who = "" if rid is None else f'"request_id":"{rid}",'
        text = (f'{prev}{parts[0]}"decision_id":"{did}","input":{input_json},{parts[1]}{who}'
                f'"result":{result_json},"seq":{seq},"time":"{time}"}}')
        if sha256(text.encode("utf-8")).hexdigest() != stored:
            return False
        checks = self.results.get(result_json)
        if checks is None:
            checks = self._result(result_json)
        return (bool(checks) and bool(allow) == checks[0]
                and (indexed == checks[1] or sorted(indexed) == checks[2]))

    def _result(self, result_json: str) -> tuple[Any, ...]:
        """A result text's allow, rules and sorted rule ids; () when not a dict with a boolean allow."""
        try:
            result = orjson.loads(result_json)
        except ValueError:
            result = None
        checks: tuple[Any, ...] = ()
        if isinstance(result, dict) and isinstance(result.get("allow"), bool):
            rules = result.get("rules") or []
            checks = (result["allow"], rules, chain.rule_ids(result))
        if len(self.results) >= _RESULT_CACHE:
            self.results.clear()
        self.results[result_json] = checks
        return checks


def _parts(action: str, version: str | None, caller: str | None) -> tuple[str, str]:
    """The quoted text before ``"decision_id"`` and the policy_version member, as ``chain.hash_body``."""
    who = "" if caller is None else f'"caller":{_quote(caller)},'
    return (f'{{"action":{_quote(action)},{who}',
            f'"policy_version":{"null" if version is None else _quote(version)},')


# -- reading ----------------------------------------------------------------------------------


class _Reader:
    """The log's rows through the driver's cursor, a page per short read."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.postgres = db.dialect == "postgresql"
        self.mark = "%s" if self.postgres else "?"
        self.rule_ids: list[str] = []

    def _cursor_run(self, what: str, fn: Any) -> Any:
        """``fn(cursor)`` on a driver cursor of a pooled connection; driver errors as StoreError."""
        driver_error = self.db.engine.dialect.dbapi.Error
        try:
            with self.db.read(what) as conn:
                driver = conn.connection.driver_connection
                assert driver is not None  # a checked-out pooled connection has its driver's connection
                cursor = driver.cursor()
                try:
                    return fn(cursor)
                finally:
                    cursor.close()
        except driver_error as exc:
            raise StoreError(f"{what}: database error: {str(exc).splitlines()[0]}") from exc

    def head(self) -> tuple[int, str]:
        """The chain head (last seq, its hash), and the rule ids indexed so far (read after the head)."""
        def read(cursor: Any) -> tuple[int, str]:
            cursor.execute(f"SELECT seq, hash FROM store_heads WHERE name = {self.mark}", (HEAD_DECISIONS,))
            row = cursor.fetchone()
            if row is None:
                raise StoreError("verify_chain: the store's schema is not initialised; run migrations")
            # every distinct rule id, one index look-up each (the index is on rule_id, seq)
            cursor.execute("WITH RECURSIVE r(id) AS (SELECT MIN(rule_id) FROM decision_rules UNION ALL "
                           "SELECT (SELECT MIN(rule_id) FROM decision_rules WHERE rule_id > r.id) FROM r "
                           "WHERE r.id IS NOT NULL) SELECT id FROM r WHERE id IS NOT NULL")
            self.rule_ids = [rid for (rid,) in cursor.fetchall()]
            return int(row[0]), row[1] or chain.GENESIS
        result: tuple[int, str] = self._cursor_run("verify_chain", read)
        return result

    def pages(self, start: int, end: int) -> Iterator[tuple[int, list[Any], dict[int, list[str]]]]:
        """The entries start..end in pages of VERIFY_PAGE: (last seq of the page, rows, rule ids by seq)."""
        select = (f"SELECT {_COLUMN_LIST} FROM decisions WHERE seq >= {self.mark} AND seq <= {self.mark} "
                  "ORDER BY seq")
        while start <= end:
            stop = min(end, start + VERIFY_PAGE - 1)

            def read(cursor: Any, first: int = start, last: int = stop) -> tuple[list[Any], dict[int, list[str]]]:
                cursor.execute(select, (first, last))
                rows = cursor.fetchall()
                return rows, self._rules(cursor, first, last)
            rows, rules = self._cursor_run("verify_chain", read)
            yield stop, rows, rules
            start = stop + 1

    def _rules(self, cursor: Any, first: int, last: int) -> dict[int, list[str]]:
        """The rule index of entries first..last, by seq: a range of the (rule_id, seq) index per rule id."""
        by_seq: dict[int, list[str]] = {}
        ids = self.rule_ids
        for i in range(0, len(ids), _RULES_PER_QUERY):
            chunk = ids[i:i + _RULES_PER_QUERY]
            if self.postgres:
                cursor.execute("SELECT seq, rule_id FROM decision_rules WHERE rule_id = ANY(%s) "
                               "AND seq >= %s AND seq <= %s", (chunk, first, last))
            else:
                cursor.execute(f"SELECT seq, rule_id FROM decision_rules WHERE rule_id IN "
                               f"({', '.join('?' * len(chunk))}) AND seq >= ? AND seq <= ?", (*chunk, first, last))
            for seq, rid in cursor.fetchall():
                by_seq.setdefault(seq, []).append(rid)
        return by_seq

    def beyond(self) -> Any:
        """The first entry past the chain head, read in one statement (one snapshot), or None."""
        def read(cursor: Any) -> Any:
            cursor.execute("SELECT seq, decision_id FROM decisions WHERE seq > (SELECT seq FROM store_heads "
                           f"WHERE name = {self.mark}) ORDER BY seq LIMIT 1", (HEAD_DECISIONS,))
            return cursor.fetchone()
        return self._cursor_run("verify_chain", read)

    def rules_beyond(self) -> int | None:
        """The first seq outside the chain (past its head, or below its first entry) that the rule
        index names (a rule row of no appended entry), or None: a range of the (rule_id, seq) index
        per rule id, each statement against the head it reads itself (entries appended meanwhile
        are not beyond it)."""
        def read(cursor: Any) -> int | None:
            found: list[int] = []
            head = f"(SELECT seq FROM store_heads WHERE name = {self.mark})"
            for i in range(0, len(self.rule_ids), _RULES_PER_QUERY):
                chunk = self.rule_ids[i:i + _RULES_PER_QUERY]
                if self.postgres:
                    cursor.execute(f"SELECT MIN(seq) FROM decision_rules WHERE rule_id = ANY(%s) "
                                   f"AND (seq > {head} OR seq < 1)", (chunk, HEAD_DECISIONS))
                else:
                    cursor.execute(f"SELECT MIN(seq) FROM decision_rules WHERE rule_id IN "
                                   f"({', '.join('?' * len(chunk))}) AND (seq > {head} OR seq < 1)",
                                   (*chunk, HEAD_DECISIONS))
                first = cursor.fetchone()[0]
                if first is not None:
                    found.append(int(first))
            return min(found) if found else None
        result: int | None = self._cursor_run("verify_chain", read)
        return result


# -- scanning ---------------------------------------------------------------------------------


@dataclass
class _Scan:
    """Where a scan of entries start..end stopped: the first break (a report) or the end."""

    broken: ChainReport | None
    expected: int        # the next seq the scan would have checked
    prev: str | None     # the hash of the last entry checked (the first entry's link, before any)
    last: Any            # the last entry checked (a row), or None
    first_link: str | None = None  # the prev_hash of the first entry of the range


def _scan(reader: _Reader, start: int, end: int, prev: str | None) -> _Scan:
    """Check the entries start..end in order, the first against ``prev`` (None: the link it stores)."""
    fast, expected, last, first_link = _Fast(), start, None, None
    none: list[str] = []
    for page_end, rows, rules_by_seq in reader.pages(start, end):
        for row in rows:
            seq = row[0]
            if prev is None:
                prev = first_link = row[8]
            indexed = rules_by_seq.get(seq, none)
            if seq == expected and row[8] == prev and fast.ok(row, prev, indexed):
                prev, last = row[9], row
                expected += 1
                continue
            broken = _exact(row, int(seq), expected, prev, indexed, last)
            if broken is not None:
                return _Scan(broken, expected, prev, last, first_link)
            prev, last = row[9], row
            expected += 1
        if expected <= page_end:  # the page ended early: entries missing
            break
    return _Scan(None, expected, prev, last, first_link)


def _exact(row: Any, seq: int, expected: int, prev: str | None, indexed: list[str], last: Any) -> ChainReport | None:
    """The report of an entry that breaks the chain (``expected`` - 1 entries before it are intact), or None."""
    checked = expected - 1
    if seq != expected:
        return ChainReport(False, checked, expected, None, f"entry {expected} is missing (next present entry is {seq})")
    broken = check_entry(row, prev or chain.GENESIS, indexed)
    if broken == _PREV_MISMATCH and last is not None and self_consistent(row):
        # this entry still links to the hash its predecessor had when it was appended:
        # the predecessor was replaced (content and hash rewritten together)
        return ChainReport(False, checked - 1, seq - 1, last[1],
                           "the entry was replaced: its hash is not the one the next entry was chained to")
    if broken:
        return ChainReport(False, checked, seq, row[1], broken)
    return None


def _ending(reader: _Reader, head_seq: int, head_hash: str, scan: _Scan) -> ChainReport:
    """The report once entries 1..head_seq were scanned: the head, and nothing beyond it."""
    if scan.broken is not None:
        return scan.broken
    expected, prev, last = scan.expected, scan.prev or chain.GENESIS, scan.last
    checked = expected - 1
    if expected <= head_seq:
        return ChainReport(False, checked, expected, None,
                           f"entry {expected} is missing (the chain head says {head_seq} entries)")
    if prev != head_hash:
        if last is not None and head_seq and self_consistent(last):
            return ChainReport(False, checked - 1, head_seq, last[1],
                               "the entry was replaced: its hash is not the one the chain head keeps")
        return ChainReport(False, checked, head_seq or None, last[1] if last is not None else None,
                           "the chain head's hash does not match the last entry")
    return _nothing_beyond(reader, checked)


def _nothing_beyond(reader: _Reader, checked: int) -> ChainReport:
    """The report of a chain whose ``checked`` entries verified: ok unless an entry or a rule row
    lies beyond the chain head (neither was appended through the log)."""
    beyond = reader.beyond()
    if beyond is not None:
        return ChainReport(False, checked, int(beyond[0]), beyond[1],
                           f"entry {beyond[0]} lies beyond the chain head: it was not appended through the log")
    stray = reader.rules_beyond()
    if stray is not None:
        where = "before the chain's first entry" if stray < 1 else "beyond the chain head"
        return ChainReport(False, checked, stray, None,
                           f"the rule index names entry {stray}, {where}: it was not appended through the log")
    return ChainReport(True, checked, None, None, f"chain ok: {checked} decisions")


# -- on several cores -------------------------------------------------------------------------


#: a worker process's own database (its own connections), opened once by ``_open_worker``
_worker_db: Any = None


def _open_worker(url: str) -> None:
    global _worker_db
    from .db import Database

    _worker_db = Database(url)


def _verify_range(start: int, end: int, rule_ids: list[str]) -> tuple[bool, str | None, str | None]:
    """In a worker process: whether entries start..end are intact among themselves, the link the
    first stores and the hash of the last."""
    reader = _Reader(_worker_db)
    reader.rule_ids = rule_ids
    scan = _scan(reader, start, end, None)
    return scan.broken is None and scan.expected == end + 1, scan.first_link, scan.prev


def _context() -> Any:
    """fork when this process runs one thread (the command line: cheap, safe); otherwise forkserver
    (a server's threads, held locks included, are never copied into a child)."""
    return multiprocessing.get_context("fork" if threading.active_count() == 1 else "forkserver")


def _all_ranges_linked(db: Any, reader: _Reader, head_seq: int, jobs: int, chunk: int) -> tuple[bool, str | None]:
    """Ranges of ``chunk`` entries verified by ``jobs`` worker processes: whether every range is intact
    and links to the one before (the first to GENESIS), and the hash of the last entry."""
    ranges = [(start, min(head_seq, start + chunk - 1)) for start in range(1, head_seq + 1, chunk)]
    prev: str | None = chain.GENESIS
    with ProcessPoolExecutor(max_workers=min(jobs, len(ranges)), mp_context=_context(),
                             initializer=_open_worker, initargs=(db.url,)) as pool:
        results = pool.map(_verify_range, [r[0] for r in ranges], [r[1] for r in ranges],
                           [reader.rule_ids] * len(ranges))
        try:
            for intact, first_link, last_hash in results:
                if not intact or first_link != prev:
                    return False, None
                prev = last_hash
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return True, prev


def verify(db: Any, *, jobs: int = 1, chunk: int | None = None) -> ChainReport:
    """Recompute the hash chain from the first entry to the head and report the first break.

    ``jobs`` > 1: worker processes verify ranges of ``chunk`` entries (a file or server database,
    at least two ranges; default ``CHUNK``); the report is the sequential scan's in every case.
    """
    chunk = CHUNK if chunk is None else chunk
    reader = _Reader(db)
    head_seq, head_hash = reader.head()
    in_memory = db.dialect == "sqlite" and db.lock_path is None
    if jobs > 1 and head_seq > chunk and not in_memory:
        try:
            linked, last_hash = _all_ranges_linked(db, reader, head_seq, jobs, chunk)
        except Exception:  # a worker that failed or could not run: the sequential scan finds out why
            linked, last_hash = False, None
        if linked and last_hash == head_hash:
            report = _nothing_beyond(reader, head_seq)
            if report.ok:
                return report
    return _ending(reader, head_seq, head_hash, _scan(reader, 1, head_seq, chain.GENESIS))
