"""The decision log: appending (one linear hash chain), querying, verifying the chain.

Every append locks the ``decision_log`` row of ``store_heads``, reads the last sequence number
and hash, and extends the chain; the head row keeps the last number and hash, so a removed tail is
detected too. ``verify`` streams the log in pages, each in a short read of its own, in bounded
memory.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from . import chain, log_verify
from .db import Database, first_line
from .errors import InvalidInput, RecordRefused, StoreError
from .log_verify import ChainReport
from .schema import HEAD_DECISIONS, decision_rules, decisions, store_heads

MAX_QUERY_LIMIT = 10000
_COLUMNS = ("seq", "decision_id", "time", "action", "allow", "policy_version", "input", "result", "prev_hash",
            "hash", "caller", "request_id")
_COLUMN_LIST = ", ".join(_COLUMNS)
# the append's statements, in PostgreSQL's parameter style (SQLite's: each %s as ?)
_HEAD_SQL = "SELECT seq, hash FROM store_heads WHERE name = %s"
_INSERT_SQL = f"INSERT INTO decisions ({_COLUMN_LIST}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
_INSERT_RULES_SQL = "INSERT INTO decision_rules (rule_id, seq) VALUES (%s, %s)"
_SET_HEAD_SQL = "UPDATE store_heads SET seq = %s, hash = %s WHERE name = %s"
#: PostgreSQL: a group of more rows than this goes through COPY (fewer: INSERTs in the commit's round trip)
COPY_FROM = 200


def decision_dict(row: Any) -> dict[str, Any]:
    return {"seq": int(row.seq), "decision_id": row.decision_id, "time": row.time,
            "action": row.action, "allow": bool(row.allow), "policy_version": row.policy_version,
            "input": json.loads(row.input), "result": json.loads(row.result),
            "caller": row.caller, "request_id": row.request_id,
            "prev_hash": row.prev_hash, "hash": row.hash}


def _filtered(q: Any, *, since: Any, until: Any, action: str | None, allow: bool | None, rule: str | None,
              version: str | None, caller: str | None, request_id: str | None) -> Any:
    """``q`` narrowed to the decisions matching every given filter."""
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
        q = q.where(decisions.c.seq.in_(sa.select(decision_rules.c.seq).where(decision_rules.c.rule_id == rule)))
    return q


class DecisionLog:
    """The hash-chained decision log of one database."""

    def __init__(self, db: Database):
        self.db = db
        # the appender's own DBAPI connection, kept between appends (no pool checkout, no
        # SQLAlchemy statement work per transaction); one append at a time uses it
        self._raw: Any = None
        self._raw_lock = threading.Lock()

    # -- appending --------------------------------------------------------------------------

    def append(self, records: list[Any], *, more: Callable[[], list[Any]] | None = None) -> None:
        """Append records to the log in one transaction, extending the hash chain.

        Every record is validated first (InvalidInput, nothing written); records already prepared
        by ``chain.prepare_record`` (the log writer's) were validated when they were queued. A
        record whose decision_id is already logged is skipped, so retrying a batch is safe.
        Raises RecordRefused when the database refuses the data itself (nothing written).

        The transaction goes through the driver on a connection kept for appending, with fixed
        SQL: on SQLite one ``executemany`` per table; on PostgreSQL two round trips, one that
        locks and reads the chain head (and which ids are logged already), one that sends the
        rows, the new head and the commit (large groups use ``COPY`` instead).

        ``more``: called once the chain head is locked, returns further records (prepared) to
        write in the same transaction: what a log writer queued while it waited for the lock.
        """
        if isinstance(records, dict) or not isinstance(records, (list, tuple)):
            raise InvalidInput("append_decisions takes a list of records")
        seen: set[str] = set()
        prepared = _unique(records, seen)
        if not prepared:
            return
        for p in prepared:  # the hashed text, before the chain head is locked: only the hashes after
            p.hashed_text()
        joining = (lambda: _unique(more(), seen)) if more is not None else (lambda: [])
        with self._raw_lock, self.db.writer_lock("append_decisions"):
            conn = self._connection()
            try:
                if self.db.dialect == "postgresql":
                    self._append_postgres(conn.driver_connection, prepared, joining)
                else:
                    self._append_sqlite(conn.driver_connection, prepared, joining)
            except BaseException as exc:
                self._abort(exc)
                raise self._error(exc) from exc

    def close(self) -> None:
        """Give the appender's connection back (``Store.dispose``)."""
        with self._raw_lock:
            raw, self._raw = self._raw, None
            if raw is not None:
                with contextlib.suppress(Exception):  # closing a broken connection
                    raw.close()

    def _connection(self) -> Any:
        if self._raw is None:
            with self.db.errors("append_decisions"):
                self._raw = self.db.engine.raw_connection()
        return self._raw

    def _abort(self, exc: BaseException) -> None:
        """Roll back after a failed append; a connection that cannot is discarded (a new one next time)."""
        raw = self._raw
        if raw is None:
            return
        dbapi = self._dbapi()
        broken = isinstance(exc, dbapi.Error) and not isinstance(exc, (dbapi.IntegrityError, dbapi.DataError))
        if not broken:
            try:
                raw.driver_connection.rollback()
                return
            except Exception:
                pass
        self._raw = None
        with contextlib.suppress(Exception):
            raw.invalidate()

    def _error(self, exc: BaseException) -> BaseException:
        """A driver exception as the store's (as ``Database.errors`` maps SQLAlchemy's)."""
        dbapi = self._dbapi()
        if not isinstance(exc, dbapi.Error):
            return exc
        if isinstance(exc, (dbapi.IntegrityError, dbapi.DataError)):
            return RecordRefused(f"append_decisions: the database refused the data: {first_line(exc)}")
        if isinstance(exc, (dbapi.OperationalError, dbapi.InterfaceError)):
            return StoreError(f"append_decisions: database unavailable or schema missing ({self.db.safe_url()}): "
                              f"{first_line(exc)}")
        return StoreError(f"append_decisions: database error: {first_line(exc)}")

    def _dbapi(self) -> Any:
        """The driver's module (its exception classes)."""
        return self.db.engine.dialect.dbapi

    @staticmethod
    def _chain(prepared: list[chain.PreparedRecord], existing: set[str], head: Any, *, sqlite: bool = False
               ) -> tuple[list[tuple], list[tuple], int, str]:
        """The rows extending the chain after ``head`` (seq, hash), skipping the ``existing`` ids.

        ``sqlite``: ``allow`` as the integer SQLite stores (the driver binds an int as it is, a
        bool through its adapter lookup, for every row).
        """
        if head is None:
            raise StoreError("append_decisions: the store's schema is not initialised; run migrations")
        seq, prev = int(head[0]), head[1] or chain.GENESIS
        if existing:
            prepared = [p for p in prepared if p.decision_id not in existing]
        hashes = chain.chain_hashes(prepared, prev, seq + 1)
        rows: list[tuple] = []
        rule_rows: list[tuple[str, int]] = []
        for p, h in zip(prepared, hashes, strict=True):
            seq += 1
            rows.append((seq, p.decision_id, p.time, p.action, (1 if p.allow else 0) if sqlite else p.allow,
                         p.policy_version, p.input_json, p.result_json, prev, h, p.caller, p.request_id))
            for rid in p.rules:
                rule_rows.append((rid, seq))
            prev = h
        return rows, rule_rows, seq, prev

    def _append_sqlite(self, conn: Any, prepared: list[chain.PreparedRecord],
                       joining: Callable[[], list[chain.PreparedRecord]]) -> None:
        cursor = conn.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
            head = cursor.execute(_HEAD_SQL.replace("%s", "?"), (HEAD_DECISIONS,)).fetchone()
            prepared = prepared + joining()
            try:
                # a record is new nearly always (its id was made for it): written without looking
                # its id up first; the unique index on decision_id refuses one logged already
                self._write_sqlite(cursor, prepared, set(), head)
            except sqlite3.IntegrityError as exc:
                if "decision_id" not in str(exc):
                    raise
                # a retried record: the transaction again, without the ids logged already
                cursor.execute("ROLLBACK")
                cursor.execute("BEGIN IMMEDIATE")
                head = cursor.execute(_HEAD_SQL.replace("%s", "?"), (HEAD_DECISIONS,)).fetchone()
                self._write_sqlite(cursor, prepared, _logged_sqlite(cursor, prepared), head)
            cursor.execute("COMMIT")
        finally:
            cursor.close()

    def _write_sqlite(self, cursor: Any, prepared: list[chain.PreparedRecord], existing: set[str], head: Any) -> None:
        """The rows of ``prepared`` (less the ``existing`` ids) and the new chain head, written by
        ``cursor`` in the transaction it holds."""
        rows, rule_rows, seq, prev = self._chain(prepared, existing, head, sqlite=True)
        if rows:
            _insert_sqlite(cursor, _INSERT_SQL, rows)
            if rule_rows:
                _insert_sqlite(cursor, _INSERT_RULES_SQL, rule_rows)
            cursor.execute(_SET_HEAD_SQL.replace("%s", "?"), (seq, prev, HEAD_DECISIONS))
            self.db.hook("append_before_commit")

    def _append_postgres(self, conn: Any, prepared: list[chain.PreparedRecord],
                         joining: Callable[[], list[chain.PreparedRecord]]) -> None:
        cursor = conn.cursor()
        logged_sql = "SELECT decision_id FROM decisions WHERE decision_id = ANY(%s)"
        try:
            with conn.pipeline():  # the head and the logged ids in one round trip
                cursor.execute(_HEAD_SQL + " FOR UPDATE", (HEAD_DECISIONS,))
                logged = conn.cursor()
                logged.execute(logged_sql, ([p.decision_id for p in prepared],))
                head = cursor.fetchone()
                existing = {row[0] for row in logged.fetchall()}
            joined = joining()
            if joined:  # queued while this transaction waited for the lock
                logged.execute(logged_sql, ([p.decision_id for p in joined],))
                existing.update(row[0] for row in logged.fetchall())
                prepared = prepared + joined
            rows, rule_rows, seq, prev = self._chain(prepared, existing, head)
            extends = bool(rows)
            if len(rows) > COPY_FROM:
                with cursor.copy(f"COPY decisions ({_COLUMN_LIST}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                if rule_rows:
                    with cursor.copy("COPY decision_rules (rule_id, seq) FROM STDIN") as copy:
                        for rule_row in rule_rows:
                            copy.write_row(rule_row)
                rows = rule_rows = []
            with conn.pipeline():  # the rows, the new head and the commit in one round trip
                if rows:
                    cursor.executemany(_INSERT_SQL, rows)
                if rule_rows:
                    cursor.executemany(_INSERT_RULES_SQL, rule_rows)
                if extends:
                    cursor.execute(_SET_HEAD_SQL, (seq, prev, HEAD_DECISIONS))
                    self.db.hook("append_before_commit")
                conn.commit()
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
        q = _filtered(sa.select(decisions), since=since, until=until, action=action, allow=allow, rule=rule,
                      version=version, caller=caller, request_id=request_id)
        for name, number in (("after_seq", after_seq), ("before_seq", before_seq)):
            if number is not None and (not isinstance(number, int) or isinstance(number, bool)):
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
            return [decision_dict(r) for r in conn.execute(q.limit(min(limit, MAX_QUERY_LIMIT)))]

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

    def verify(self, *, jobs: int = 1, chunk: int | None = None) -> ChainReport:
        """Recompute the hash chain from the first entry to the head and report the first break
        (``log_verify.verify``: ``jobs`` worker processes for a long log, the same report)."""
        return log_verify.verify(self.db, jobs=jobs, chunk=chunk)


#: SQLite: rows go in multi-row INSERTs of these sizes (largest first), so the driver keeps one
#: prepared statement per size and steps (and lets the GIL go, and must take it back) once per
#: statement, not per row; a statement's parameters stay within the driver's limit
_SQLITE_INSERT_SIZES = (512, 256, 128, 64, 32, 16, 8, 4, 2, 1)
_SQLITE_INSERTS: dict[tuple[str, int], str] = {}


def _insert_sqlite(cursor: Any, insert: str, rows: list[tuple]) -> None:
    """``rows`` inserted with ``insert`` (one row's INSERT, PostgreSQL's parameter style) on SQLite."""
    if not rows:
        return
    width = len(rows[0])
    most = cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width
    start = 0
    for size in _SQLITE_INSERT_SIZES:
        if len(rows) - start < size or size > most:
            continue
        sql = _SQLITE_INSERTS.get((insert, size))
        if sql is None:
            head, _, values = insert.partition(" VALUES ")
            sql = _SQLITE_INSERTS[(insert, size)] = f"{head} VALUES {', '.join([values.replace('%s', '?')] * size)}"
        while len(rows) - start >= size:
            cursor.execute(sql, list(itertools.chain.from_iterable(rows[start:start + size])))
            start += size
    if start != len(rows):  # never silently short: the transaction fails and nothing is answered as logged
        raise StoreError(f"append_decisions: {len(rows) - start} row(s) of {width} values do not fit in one "
                         f"SQLite statement (at most {most * width} values)")


def _logged_sqlite(cursor: Any, prepared: list[chain.PreparedRecord]) -> set[str]:
    """The decision ids of ``prepared`` that the log holds already (SQLite)."""
    existing: set[str] = set()
    ids = [p.decision_id for p in prepared]
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        cursor.execute("SELECT decision_id FROM decisions WHERE decision_id IN (" + ", ".join("?" * len(chunk)) + ")",
                       chunk)
        existing.update(row[0] for row in cursor.fetchall())
    return existing


def _unique(records: Any, seen: set[str]) -> list[chain.PreparedRecord]:
    """``records`` prepared (validated), without the decision ids in ``seen`` (which gets theirs)."""
    prepared: list[chain.PreparedRecord] = []
    for rec in records:
        p = rec if type(rec) is chain.PreparedRecord else chain.prepare_record(rec)
        if p.decision_id in seen:
            continue
        seen.add(p.decision_id)
        prepared.append(p)
    return prepared
