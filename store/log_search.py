"""Searching the decision log page by page, newest first, for people; and checking one entry's
place in the hash chain without reading the whole log.

Paging is by key, never by OFFSET: a page continues after the (time, seq) or seq of the last entry
shown, so the thousandth page costs what the first does. Filters on columns use their indexes
(action, policy_version, caller, time; the rule index table for a rule); ``system`` and ``text``
look into the logged input: a substring match in SQL narrows the rows (the input is stored as
canonical JSON), then each candidate is checked exactly (``context.system`` equals the system; the
text occurs in a fact's value, not only in a key).
"""
from __future__ import annotations

import json
import time
import typing as t
from dataclasses import dataclass

import sqlalchemy as sa

from . import chain
from .errors import InvalidInput
from .log import _COLUMN_LIST, decision_dict
from .log_verify import check_entry as _check_entry
from .schema import HEAD_DECISIONS, decision_rules, decisions, store_heads

MAX_PAGE = 500
MAX_TEXT = 200
#: a search into the input reads the log in windows of this many entries...
SCAN_WINDOW = 10_000
#: ...and stops after this many entries or seconds, whichever comes first (the next page goes on)
SCAN_ROWS = 100_000
SCAN_SECONDS = 0.1


@dataclass(frozen=True)
class LogFilters:
    """What a search asks for; None (or empty) means any."""

    since: str | None = None
    until: str | None = None
    action: str | None = None
    system: str | None = None
    rule: str | None = None
    allow: bool | None = None
    version: str | None = None
    caller: str | None = None
    text: str | None = None

    @property
    def scans(self) -> bool:
        """It looks into the logged input, which no index covers (read in bounded windows)."""
        return self.system is not None or self.text is not None

    @property
    def by_time(self) -> bool:
        """Pages go in (time, seq) order on the time index: a time range, and nothing to scan for
        (a scan goes by seq, within the seqs of the time range)."""
        return (self.since is not None or self.until is not None) and not self.scans


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: after (``older``) or before (``newer``) the entry ``seq`` at ``time``."""

    seq: int
    time: str | None
    older: bool = True

    def encode(self) -> str:
        return f"{self.time}~{self.seq}" if self.time is not None else str(self.seq)

    @classmethod
    def decode(cls, text: str, *, older: bool, by_time: bool) -> Cursor:
        time_part, sep, seq_part = text.rpartition("~")
        if by_time != bool(sep) or not seq_part.isdigit() or len(seq_part) > 19 or len(time_part) > 40:
            raise InvalidInput("the page link does not belong to this search; start again from the newest")
        return cls(int(seq_part), chain.normalize_time(time_part, "cursor") if sep else None, older)


@dataclass(frozen=True)
class Page:
    entries: list[dict[str, t.Any]]
    older: Cursor | None      # the next page back in time, when there is one
    newer: Cursor | None      # the page before this one, when this is not the newest
    searched_to: int | None = None  # the entry a bounded scan stopped at before the page was full


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _json_fragment(value: str) -> str:
    """``value`` as it appears inside a JSON string of the canonical input (quotes escaped...)."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _where(filters: LogFilters, dialect: str) -> list[t.Any]:
    clauses: list[t.Any] = []
    c = decisions.c
    if filters.since is not None:
        clauses.append(c.time >= chain.normalize_time(filters.since, "since"))
    if filters.until is not None:
        clauses.append(c.time < chain.normalize_time(filters.until, "until"))
    for column, value in ((c.action, filters.action), (c.policy_version, filters.version), (c.caller, filters.caller)):
        if value is not None:
            clauses.append(column == value)
    if filters.allow is not None:
        clauses.append(c.allow == filters.allow)
    if filters.rule is not None:
        clauses.append(c.seq.in_(sa.select(decision_rules.c.seq).where(decision_rules.c.rule_id == filters.rule)))
    if filters.system is not None:
        clauses.append(c.input.like(_like('"system":' + json.dumps(filters.system, ensure_ascii=False)),
                                    escape="\\"))
    if filters.text is not None:
        pattern = _like(_json_fragment(filters.text))
        # case-insensitive on both: SQLite's LIKE already is (for ASCII), PostgreSQL has ILIKE
        clauses.append(c.input.ilike(pattern, escape="\\") if dialect == "postgresql"
                       else c.input.like(pattern, escape="\\"))
    return clauses


def _order(filters: LogFilters, cursor: Cursor | None) -> tuple[list[t.Any], list[t.Any], bool]:
    """The keyset condition, the ORDER BY, and whether rows come oldest first (a newer page)."""
    c = decisions.c
    ascending = cursor is not None and not cursor.older
    keys = [c.time, c.seq] if filters.by_time else [c.seq]
    where: list[t.Any] = []
    if cursor is not None:
        key: t.Any
        mark: t.Any
        if filters.by_time:
            key, mark = sa.tuple_(c.time, c.seq), sa.tuple_(sa.literal(cursor.time), sa.literal(cursor.seq))
        else:
            key, mark = c.seq, sa.literal(cursor.seq)
        where.append(key > mark if ascending else key < mark)
    return where, [k.asc() if ascending else k.desc() for k in keys], ascending


def _in_values(value: t.Any, needle: str) -> bool:
    """``needle`` (lower case) occurs in a scalar value somewhere in ``value``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif item is not None and needle in (item if isinstance(item, str) else json.dumps(item)).lower():
            return True
    return False


def _matches(entry: dict[str, t.Any], filters: LogFilters) -> bool:
    facts = entry["input"]
    if filters.system is not None:
        context = facts.get("context") if isinstance(facts, dict) else None
        if not isinstance(context, dict) or context.get("system") != filters.system:
            return False
    return filters.text is None or _in_values(facts, filters.text.lower())


@dataclass
class _Scan:
    """The rows of one page, read window by window (see ``search``)."""

    rows: list[dict[str, t.Any]]
    more: bool                  # entries beyond this page (in the direction read) may match
    stopped_at: int | None      # the last seq searched when the time or row budget ran out first


def _windows(conn: t.Any, query: t.Any, limit: int, cursor: Cursor | None, bounds: tuple[int, int]) -> _Scan:
    """Read ``query`` over windows of ``SCAN_WINDOW`` entries by seq within ``bounds``, from the
    cursor on, until the page is full, the bounds end, or ``SCAN_ROWS`` entries / ``SCAN_SECONDS``
    were searched."""
    first, last = bounds
    older = cursor is None or cursor.older
    edge = (cursor.seq - 1 if older else cursor.seq + 1) if cursor is not None else last
    rows: list[dict[str, t.Any]] = []
    started = time.perf_counter()
    searched = 0
    while first <= edge <= last:
        low, high = (max(first, edge - SCAN_WINDOW + 1), edge) if older else (edge, min(last, edge + SCAN_WINDOW - 1))
        window = query.where(decisions.c.seq.between(low, high)).limit(limit + 1 - len(rows))
        begun = time.perf_counter()
        rows += [decision_dict(r) for r in conn.execute(window)]
        now = time.perf_counter()
        searched += high - low + 1
        edge = low - 1 if older else high + 1
        if len(rows) > limit:
            return _Scan(rows, True, None)
        if not first <= edge <= last:
            break
        # stop before a window that would, at the pace of the last one, end past the time budget
        if searched >= SCAN_ROWS or (now - started) + (now - begun) > SCAN_SECONDS:
            return _Scan(rows, True, low if older else high)
    return _Scan(rows, False, None)


def _bounds(conn: t.Any, filters: LogFilters) -> tuple[int, int]:
    """The first and last seq a scan reads: the whole log, or the entries of the time range
    (found on the time index, without reading the entries)."""
    if filters.since is None and filters.until is None:
        head = conn.execute(sa.select(store_heads.c.seq).where(store_heads.c.name == HEAD_DECISIONS)).scalar()
        return 1, int(head or 0)
    in_range = _where(LogFilters(since=filters.since, until=filters.until), "")
    low, high = conn.execute(sa.select(sa.func.min(decisions.c.seq), sa.func.max(decisions.c.seq))
                             .where(*in_range)).one()
    return (int(low), int(high)) if low is not None else (1, 0)


def search(store: t.Any, filters: LogFilters, *, limit: int = 50, cursor: Cursor | None = None) -> Page:
    """One page of the logged decisions matching ``filters``, newest first.

    A search that looks into the input (``system``, ``text``) cannot use an index: it reads the log
    in windows of ``SCAN_WINDOW`` entries and stops after ``SCAN_ROWS`` entries or ``SCAN_SECONDS``,
    so that a page is answered in bounded time whatever the log's size; ``Page.searched_to`` then
    says how far back it looked, and the next page goes on from there.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"a page has 1 to {MAX_PAGE} entries")
    if filters.text is not None and len(filters.text) > MAX_TEXT:
        raise InvalidInput(f"the search text has at most {MAX_TEXT} characters")
    keyset, order, ascending = _order(filters, cursor)
    query = sa.select(decisions).where(*_where(filters, store.dialect), *keyset).order_by(*order)
    with store.db.read("search_decisions") as conn:
        if filters.scans:
            scan = _windows(conn, query, limit, cursor, _bounds(conn, filters))
        else:
            rows = [decision_dict(r) for r in conn.execute(query.limit(limit + 1))]
            scan = _Scan(rows, len(rows) > limit, None)
    rows = scan.rows[:limit]
    if ascending:
        rows.reverse()

    def at(row: dict[str, t.Any] | None, older: bool, seq: int | None = None) -> Cursor | None:
        if seq is not None:  # where a scan stopped: the next page goes on from there
            return Cursor(seq, None, older)
        return None if row is None else Cursor(row["seq"], row["time"] if filters.by_time else None, older)

    # going back: older pages exist when the read found more; newer ones when we came from one
    has_older = scan.more if not ascending else True
    has_newer = cursor is not None and (cursor.older or scan.more)
    first, last = (rows[0], rows[-1]) if rows else (None, None)
    older_cursor = at(last, True, scan.stopped_at if not ascending else None) if has_older else None
    newer_cursor = at(first, False, scan.stopped_at if ascending else None) if has_newer else None
    return Page([r for r in rows if _matches(r, filters)], older_cursor, newer_cursor,
                scan.stopped_at)


@dataclass(frozen=True)
class EntryCheck:
    """One entry's place in the chain: its own hash, its link to the entry before, the link of the
    entry after (or the chain head) to it."""

    seq: int
    ok: bool
    reason: str
    head_seq: int


def check_entry(store: t.Any, seq: int) -> EntryCheck:
    """Check entry ``seq`` and its two links, reading three entries (bounded, whatever the log size)."""
    select = f"SELECT {_COLUMN_LIST} FROM decisions WHERE seq >= {{p}} AND seq <= {{p}} ORDER BY seq"
    mark = "%s" if store.dialect == "postgresql" else "?"
    with store.db.read("check_entry") as conn:
        head = conn.execute(sa.select(store_heads).where(store_heads.c.name == HEAD_DECISIONS)).one()
        rules = [r for (r,) in conn.execute(sa.select(decision_rules.c.rule_id).where(decision_rules.c.seq == seq))]
        cursor = conn.connection.driver_connection.cursor()
        try:
            cursor.execute(select.replace("{p}", mark), (seq - 1, seq + 1))
            rows = {int(row[0]): row for row in cursor.fetchall()}
        finally:
            cursor.close()
    head_seq = int(head.seq)
    row = rows.get(seq)
    if row is None:
        return EntryCheck(seq, False, f"entry {seq} is not in the log", head_seq)
    if seq > head_seq:
        return EntryCheck(seq, False, f"entry {seq} lies beyond the chain head: it was not appended through the log",
                          head_seq)
    before = rows.get(seq - 1)
    if seq > 1 and before is None:
        return EntryCheck(seq, False, f"entry {seq - 1}, the one before, is missing", head_seq)
    broken = _check_entry(row, before[9] if before is not None else chain.GENESIS, rules)
    if broken:
        return EntryCheck(seq, False, broken, head_seq)
    after = rows.get(seq + 1)
    if seq < head_seq and (after is None or after[8] != row[9]):
        return EntryCheck(seq, False, f"entry {seq + 1} does not link to this entry's hash", head_seq)
    if seq == head_seq and (head.hash or chain.GENESIS) != row[9]:
        return EntryCheck(seq, False, "the chain head's hash is not this entry's hash", head_seq)
    return EntryCheck(seq, True, "its hash matches its content, it links to the entry before it, and the "
                                 "entry after it (or the chain head) links to it", head_seq)
