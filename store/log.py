"""The decision log: appending (one linear hash chain), querying, verifying the chain.

Every append locks the ``decision_log`` row of ``store_heads``, reads the last sequence number
and hash, and extends the chain; the head row keeps the last number and hash, so a removed tail is
detected too. ``verify`` streams the log in pages, each in a short read of its own, in bounded
memory.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, Iterator

import orjson
import sqlalchemy as sa

from . import chain
from .db import Database, first_line
from .errors import InvalidInput, RecordRefused, StoreError
from .schema import HEAD_DECISIONS, decision_rules, decisions, store_heads

MAX_QUERY_LIMIT = 10000
VERIFY_PAGE = 5000
_COLUMNS = ("seq", "decision_id", "time", "action", "allow", "policy_version", "input", "result", "prev_hash",
            "hash", "caller", "request_id")
_COLUMN_LIST = ", ".join(_COLUMNS)


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


def decision_dict(row: Any) -> dict[str, Any]:
    return {"seq": int(row.seq), "decision_id": row.decision_id, "time": row.time,
            "action": row.action, "allow": bool(row.allow), "policy_version": row.policy_version,
            "input": json.loads(row.input), "result": json.loads(row.result),
            "caller": row.caller, "request_id": row.request_id,
            "prev_hash": row.prev_hash, "hash": row.hash}


class DecisionLog:
    """The hash-chained decision log of one database."""

    def __init__(self, db: Database):
        self.db = db

    # -- appending --------------------------------------------------------------------------

    def append(self, records: list[Any]) -> None:
        """Append records to the log in one transaction, extending the hash chain.

        Every record is validated first (InvalidInput, nothing written); records already prepared
        by ``chain.prepare_record`` (the log writer's) were validated when they were queued. A
        record whose decision_id is already logged is skipped, so retrying a batch is safe.
        Raises RecordRefused when the database refuses the data itself (nothing written).
        """
        if isinstance(records, dict) or not isinstance(records, (list, tuple)):
            raise InvalidInput("append_decisions takes a list of records")
        prepared: list[chain.PreparedRecord] = []
        seen: set[str] = set()
        for rec in records:
            p = chain.prepare_record(rec)
            if p.decision_id in seen:
                continue
            seen.add(p.decision_id)
            prepared.append(p)
        if not prepared:
            return
        with self.db.write("append_decisions", HEAD_DECISIONS) as (conn, head):
            existing = self._logged_ids(conn, [p.decision_id for p in prepared])
            seq, prev = int(head.seq), head.hash or chain.GENESIS
            rows: list[tuple] = []
            rule_rows: list[tuple[str, int]] = []
            for p in prepared:
                if p.decision_id in existing:
                    continue
                seq += 1
                h = p.entry_hash(prev, seq)
                rows.append((seq, p.decision_id, p.time, p.action, p.allow, p.policy_version,
                             p.input_json, p.result_json, prev, h, p.caller, p.request_id))
                rule_rows += [(rid, seq) for rid in p.rules]
                prev = h
            if not rows:
                return
            self._insert(conn, rows, rule_rows)
            conn.execute(store_heads.update().where(store_heads.c.name == HEAD_DECISIONS)
                         .values(seq=seq, hash=prev))
            self.db.hook("append_before_commit")

    def _logged_ids(self, conn: sa.Connection, ids: list[str]) -> set[str]:
        """Which of ``ids`` are already in the log (one driver query per 500, no SQL compilation)."""
        existing: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            if self.db.dialect == "postgresql":
                rows = conn.exec_driver_sql("SELECT decision_id FROM decisions WHERE decision_id = ANY(%s)",
                                            (chunk,))
            else:
                rows = conn.exec_driver_sql("SELECT decision_id FROM decisions WHERE decision_id IN ("
                                            + ", ".join("?" * len(chunk)) + ")", tuple(chunk))
            existing.update(row[0] for row in rows)
        return existing

    def _insert(self, conn: sa.Connection, rows: list[tuple], rule_rows: list[tuple]) -> None:
        """The rows in the connection's transaction, through the driver: COPY on PostgreSQL,
        one prepared INSERT run over all rows on SQLite (no per-row SQLAlchemy work)."""
        if self.db.dialect != "postgresql":
            conn.exec_driver_sql(f"INSERT INTO decisions ({_COLUMN_LIST}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                                 rows)
            if rule_rows:
                conn.exec_driver_sql("INSERT INTO decision_rules (rule_id, seq) VALUES (?, ?)", rule_rows)
            return
        import psycopg

        cursor = conn.connection.cursor()
        try:
            with cursor.copy(f"COPY decisions ({_COLUMN_LIST}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            if rule_rows:
                with cursor.copy("COPY decision_rules (rule_id, seq) FROM STDIN") as copy:
                    for row in rule_rows:
                        copy.write_row(row)
        except (psycopg.DataError, psycopg.IntegrityError) as exc:  # rolled back by db.write
            raise RecordRefused(f"append_decisions: the database refused the data: {first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"append_decisions: database error: {first_line(exc)}") from exc
        finally:
            cursor.close()

    # -- reading ----------------------------------------------------------------------------

    def query(self, *, since: Any = None, until: Any = None, action: str | None = None,
              allow: bool | None = None, rule: str | None = None, version: str | None = None,
              caller: str | None = None, request_id: str | None = None, limit: int = 100,
              after_seq: int | None = None, before_seq: int | None = None, after_time: str | None = None,
              newest_first: bool = False, order: str = "seq") -> list[dict[str, Any]]:
        """Logged decisions matching every given filter (see ``Store.query_decisions``)."""
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidInput("limit must be a positive integer")
        if order not in ("seq", "time"):
            raise InvalidInput("order must be `seq` or `time`")
        limit = min(limit, MAX_QUERY_LIMIT)
        q = sa.select(decisions)
        if since is not None:
            q = q.where(decisions.c.time >= chain.normalize_time(since, "since"))
        if until is not None:
            q = q.where(decisions.c.time < chain.normalize_time(until, "until"))
        for column, value in ((decisions.c.action, action), (decisions.c.policy_version, version),
                              (decisions.c.caller, caller), (decisions.c.request_id, request_id)):
            if value is not None:
                q = q.where(column == value)
        if allow is not None:
            if not isinstance(allow, bool):
                raise InvalidInput("allow must be true or false")
            q = q.where(decisions.c.allow == allow)
        if rule is not None:
            q = q.where(decisions.c.seq.in_(
                sa.select(decision_rules.c.seq).where(decision_rules.c.rule_id == rule)))
        for name, value in (("after_seq", after_seq), ("before_seq", before_seq)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise InvalidInput(f"{name} must be an integer")
        if order == "time":
            # keyset paging on the (time, seq) index: a page reads its own rows, not the range again
            if after_time is not None:
                key = sa.tuple_(decisions.c.time, decisions.c.seq)
                q = q.where(key > sa.tuple_(sa.literal(chain.normalize_time(after_time, "after_time")),
                                            sa.literal(after_seq if after_seq is not None else -1)))
            q = q.order_by(decisions.c.time, decisions.c.seq)
        else:
            if after_seq is not None:
                q = q.where(decisions.c.seq > after_seq)
            if before_seq is not None:
                q = q.where(decisions.c.seq < before_seq)
            q = q.order_by(decisions.c.seq.desc() if newest_first else decisions.c.seq)
        with self.db.read("query_decisions") as conn:
            return [decision_dict(r) for r in conn.execute(q.limit(limit))]

    def get(self, decision_id: str) -> dict[str, Any] | None:
        if not isinstance(decision_id, str):
            return None
        with self.db.read("get_decision") as conn:
            row = conn.execute(sa.select(decisions).where(decisions.c.decision_id == decision_id)).one_or_none()
        return None if row is None else decision_dict(row)

    def count(self) -> int:
        with self.db.read("decision_count") as conn:
            return int(conn.execute(sa.select(store_heads.c.seq)
                                    .where(store_heads.c.name == HEAD_DECISIONS)).scalar_one())

    # -- verifying --------------------------------------------------------------------------

    def _pages(self, head_seq: int) -> Iterator[tuple[int, list[Any], dict[int, list[str]]]]:
        """The entries 1..head_seq in pages of VERIFY_PAGE, each page read in a short read of its
        own (entries up to the head never change; no snapshot of the whole log is held)."""
        select = f"SELECT {_COLUMN_LIST} FROM decisions WHERE seq >= {{p}} AND seq <= {{p}} ORDER BY seq"
        rules = "SELECT seq, rule_id FROM decision_rules WHERE seq >= {p} AND seq <= {p}"
        mark = "%s" if self.db.dialect == "postgresql" else "?"
        select, rules = select.replace("{p}", mark), rules.replace("{p}", mark)
        start = 1
        while start <= head_seq:
            end = min(head_seq, start + VERIFY_PAGE - 1)
            with self.db.read("verify_chain") as conn:
                # the driver's own cursor: plain tuples, no per-row SQLAlchemy work
                cursor = conn.connection.driver_connection.cursor()
                try:
                    cursor.execute(select, (start, end))
                    rows = cursor.fetchall()
                    cursor.execute(rules, (start, end))
                    by_seq: dict[int, list[str]] = {}
                    for rseq, rid in cursor.fetchall():
                        by_seq.setdefault(rseq, []).append(rid)
                finally:
                    cursor.close()
            yield end, rows, by_seq
            start = end + 1

    def verify(self) -> ChainReport:
        """Recompute the hash chain from the first entry to the head and report the first break."""
        with self.db.read("verify_chain") as conn:
            head = conn.execute(sa.select(store_heads).where(store_heads.c.name == HEAD_DECISIONS)).one()
        head_seq, head_hash = int(head.seq), head.hash or chain.GENESIS
        expected, prev, checked = 1, chain.GENESIS, 0
        last: Any = None
        for end, rows, rules_by_seq in self._pages(head_seq):
            for row in rows:
                seq = int(row[0])
                if seq != expected:
                    return ChainReport(False, checked, expected, None,
                                       f"entry {expected} is missing (next present entry is {seq})")
                broken = _check_entry(row, prev, rules_by_seq.get(seq, []))
                if broken == _PREV_MISMATCH and last is not None and _self_consistent(row):
                    # this entry still links to the hash its predecessor had when it was appended:
                    # the predecessor was replaced (content and hash rewritten together)
                    return ChainReport(False, checked - 1, seq - 1, last[1],
                                       "the entry was replaced: its hash is not the one the next entry "
                                       "was chained to")
                if broken:
                    return ChainReport(False, checked, seq, row[1], broken)
                prev, last = row[9], row
                checked += 1
                expected += 1
            if expected <= end:
                break
        if expected <= head_seq:
            return ChainReport(False, checked, expected, None,
                               f"entry {expected} is missing (the chain head says {head_seq} entries)")
        if prev != head_hash:
            if last is not None and head_seq and _self_consistent(last):
                return ChainReport(False, checked - 1, head_seq, last[1],
                                   "the entry was replaced: its hash is not the one the chain head keeps")
            return ChainReport(False, checked, head_seq or None, last[1] if last is not None else None,
                               "the chain head's hash does not match the last entry")
        with self.db.read("verify_chain") as conn:
            # one statement, so one snapshot: an entry beyond the head was not written by append
            beyond = conn.execute(sa.select(decisions.c.seq, decisions.c.decision_id).where(
                decisions.c.seq > sa.select(store_heads.c.seq).where(store_heads.c.name == HEAD_DECISIONS)
                .scalar_subquery()).order_by(decisions.c.seq).limit(1)).one_or_none()
        if beyond is not None:
            return ChainReport(False, checked, int(beyond[0]), beyond[1],
                               f"entry {beyond[0]} lies beyond the chain head: it was not appended through the log")
        return ChainReport(True, checked, None, None, f"chain ok: {checked} decisions")


_PREV_MISMATCH = "prev_hash does not match the previous entry's hash (an entry was removed or reordered)"


def _entry_hash(row: Any, prev: str) -> str:
    body = chain.hash_body(row[0], row[1], row[2], row[3], row[5], row[6], row[7], row[10], row[11])
    return sha256((prev + body).encode("utf-8")).hexdigest()


def _self_consistent(row: Any) -> bool:
    """The entry's hash matches its content chained to its own stored prev_hash."""
    try:
        return _entry_hash(row, row[8]) == row[9]
    except UnicodeEncodeError:
        return False


def _check_entry(row: Any, prev: str, indexed_rules: list[str]) -> str:
    """Why the entry (a row of ``_COLUMNS``) breaks the chain after ``prev``; "" when it does not."""
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
