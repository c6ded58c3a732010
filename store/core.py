"""The store: policy versions, activations and the decision log, on SQLite or PostgreSQL.

Write paths serialise on a row of ``store_heads`` (``SELECT ... FOR UPDATE`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), so activations form one history and the decision log one linear
hash chain however many processes and hosts write to the same database.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from . import chain
from .errors import InvalidInput, PublishRejected, RecordRefused, StoreError, VersionNotFound
from .schema import (
    HEAD_ACTIVE, HEAD_DECISIONS, activations, decision_rules, decisions, policy_files,
    policy_versions, store_heads,
)

log = logging.getLogger("ordergate.store")

DEFAULT_SQLITE_URL = "sqlite:///var/ordergate.sqlite"
NOTIFY_CHANNEL = "ordergate_active"
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK_KEY = 0x6F72646572676174  # "ordergat"
_MAX_QUERY_LIMIT = 10000
_VERIFY_PAGE = 2000


def default_database_url() -> str:
    """``ORDERGATE_DATABASE_URL``, else a SQLite file ``var/ordergate.sqlite`` under the cwd."""
    return os.environ.get("ORDERGATE_DATABASE_URL") or DEFAULT_SQLITE_URL


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Version:
    id: str
    author: str
    created_at: datetime
    message: str
    parent: str | None
    file_count: int = 0
    files: dict[str, str] | None = field(default=None, compare=False, repr=False)

    def to_dict(self, *, with_files: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "author": self.author,
            "created_at": chain.format_time(self.created_at),
            "message": self.message,
            "parent": self.parent,
            "file_count": self.file_count,
        }
        if with_files:
            out["files"] = dict(self.files or {})
        return out


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


def _version_from_row(row: Any, files: dict[str, str] | None = None) -> Version:
    return Version(id=row.id, author=row.author, created_at=row.created_at, message=row.message,
                   parent=row.parent, file_count=row.file_count, files=files)


def _check_text(value: Any, what: str, *, max_len: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    if not allow_empty and not value.strip():
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > max_len:
        raise InvalidInput(f"{what} is longer than {max_len} characters")
    return value


class Store:
    """Policy versions, activations and the decision log behind one database URL."""

    def __init__(self, url: str | None = None, *, migrate: bool = False, echo: bool = False):
        self.url = url or default_database_url()
        try:
            parsed = make_url(self.url)
        except Exception as exc:
            raise StoreError(f"not a database URL: {self.url!r} ({exc})") from None
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"unsupported database {self.dialect!r}: use sqlite:/// or postgresql+psycopg://")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            database = parsed.database
            if not database or database == ":memory:":
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
            if "connect_timeout" not in parsed.query:
                kwargs["connect_args"] = {"connect_timeout": 5}
        try:
            self._engine = sa.create_engine(parsed, **kwargs)
        except Exception as exc:
            raise StoreError(f"cannot use database {self._safe_url()}: {exc}") from None
        if self.dialect == "sqlite":
            self._install_sqlite_hooks()
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_size = 16
        # test hooks: name -> callable, run at fixed points inside write transactions
        self._hooks: dict[str, Callable[[], None]] = {}
        if migrate:
            self.migrate()

    # -- plumbing ---------------------------------------------------------------------------

    def _safe_url(self) -> str:
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # pragma: no cover
            return "<database>"

    def _install_sqlite_hooks(self) -> None:
        @event.listens_for(self._engine, "connect")
        def _on_connect(dbapi_conn, _record):  # pragma: no cover - trivial
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 30000")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = FULL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        @event.listens_for(self._engine, "begin")
        def _on_begin(conn):
            mode = conn.get_execution_options().get("ordergate_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

    def _hook(self, name: str) -> None:
        fn = self._hooks.get(name)
        if fn is not None:
            fn()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except sa.exc.OperationalError as exc:
            raise StoreError(f"{what}: database unavailable or schema missing ({self._safe_url()}): "
                             f"{_first_line(exc.orig)}") from exc
        except (sa.exc.DataError, sa.exc.IntegrityError) as exc:
            raise RecordRefused(f"{what}: the database refused the data: {_first_line(exc.orig)}") from exc
        except sa.exc.SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None) or exc
            raise StoreError(f"{what}: database error: {_first_line(orig)}") from exc

    @contextmanager
    def _read(self, what: str) -> Iterator[sa.Connection]:
        with self._errors(what), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self, what: str, head: str) -> Iterator[tuple[sa.Connection, Any]]:
        """One write transaction holding the lock of ``head``; yields (connection, head row)."""
        with self._errors(what), self._engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(ordergate_begin="IMMEDIATE")
            with conn.begin():
                row = conn.execute(
                    sa.select(store_heads).where(store_heads.c.name == head).with_for_update()
                ).one_or_none()
                if row is None:
                    raise StoreError(f"{what}: the store's schema is not initialised; run migrations")
                yield conn, row

    def dispose(self) -> None:
        self._engine.dispose()

    close = dispose

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    # -- schema -----------------------------------------------------------------------------

    def _alembic_config(self):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return cfg

    def migrate(self) -> None:
        """Run the Alembic migrations to head. Safe to call from several processes at once."""
        from alembic import command

        cfg = self._alembic_config()
        with self._errors("migrate"), self._engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(ordergate_begin="IMMEDIATE")
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")

    def schema_revision(self) -> str | None:
        """The database's Alembic revision (None on an empty database)."""
        from alembic.runtime.migration import MigrationContext

        with self._read("schema_revision") as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def schema_is_current(self) -> bool:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(self._alembic_config()).get_current_head()
        return self.schema_revision() == head

    def ping(self) -> None:
        """Raise StoreError unless the database answers and holds the store's tables."""
        with self._read("ping") as conn:
            conn.execute(sa.select(store_heads.c.seq).where(store_heads.c.name == HEAD_ACTIVE)).all()

    # -- versions ---------------------------------------------------------------------------

    def publish(self, files: Mapping[str, str], *, author: str, message: str,
                activate: bool = True) -> Version:
        """Compile, run the YAML tests, then store (and activate) in one transaction.

        Raises PublishRejected with every error when the candidate is broken; nothing is written.
        The id is ``PolicySet.version``, a hash of the rule files (paths relative to the folder,
        tests not included): content already stored under that id is kept as it was (first
        author, message, files) and, with ``activate``, made active again. ``parent`` is the
        version active when the publish commits (publishes are serialised on the active-version
        lock).
        """
        import engine as policy_engine

        if not isinstance(files, Mapping) or not files:
            raise InvalidInput("files must be a non-empty mapping of relative path -> text")
        for path, text in files.items():
            if not isinstance(path, str) or not path or not isinstance(text, str):
                raise InvalidInput(f"files must map path strings to text; got {path!r}")
            if len(path) > 500:
                raise InvalidInput(f"file path longer than 500 characters: {path[:60]!r}...")
        author = _check_text(author, "author", max_len=200)
        message = _check_text(message, "message", max_len=10000)
        files = {str(k): str(v) for k, v in files.items()}

        try:
            ps = policy_engine.compile_files(files)
        except policy_engine.PolicyErrors as exc:
            raise PublishRejected(errors=[e.to_dict() for e in exc.errors]) from None
        try:
            report = policy_engine.run_tests(ps, files)
        except policy_engine.PolicyErrors as exc:
            raise PublishRejected(errors=[e.to_dict() for e in exc.errors]) from None
        if not report.passed:
            failures: list[dict[str, Any]] = [_test_failure(r) for r in report.failures]
            failures += [{"kind": "uncovered", "rule": rid,
                          "message": f"no test makes rule {rid} fire"} for rid in report.uncovered]
            raise PublishRejected(test_failures=failures)

        version_id = ps.version
        with self._write("publish", HEAD_ACTIVE) as (conn, head):
            existing = conn.execute(
                sa.select(policy_versions).where(policy_versions.c.id == version_id)
            ).one_or_none()
            if existing is None:
                conn.execute(policy_versions.insert().values(
                    id=version_id, author=author, message=message, created_at=_now(),
                    parent=head.value, file_count=len(files)))
                conn.execute(policy_files.insert(), [
                    {"version_id": version_id, "path": p, "content": t} for p, t in sorted(files.items())])
            self._hook("publish_before_activate")
            if activate and head.value != version_id:
                self._activate_locked(conn, head, version_id, actor=author,
                                      reason=f"publish: {message}" if existing is None else f"republish: {message}")
            self._hook("publish_before_commit")
            row = conn.execute(
                sa.select(policy_versions).where(policy_versions.c.id == version_id)).one()
            stored = dict(conn.execute(
                sa.select(policy_files.c.path, policy_files.c.content)
                .where(policy_files.c.version_id == version_id)).all())
        self._remember(version_id, ps)
        return _version_from_row(row, stored)

    def _activate_locked(self, conn: sa.Connection, head: Any, version_id: str, *, actor: str,
                         reason: str) -> None:
        now = _now()
        result = conn.execute(activations.insert().values(
            version_id=version_id, previous_version_id=head.value, actor=actor, reason=reason,
            activated_at=now))
        activation_id = result.inserted_primary_key[0]
        conn.execute(store_heads.update().where(store_heads.c.name == HEAD_ACTIVE)
                     .values(value=version_id, seq=activation_id))
        if self.dialect == "postgresql":
            # delivered at commit, to every listener of the database
            conn.execute(sa.text("SELECT pg_notify(:c, :v)"), {"c": NOTIFY_CHANNEL, "v": version_id})

    def activate(self, version_id: str, *, actor: str, reason: str = "") -> Version:
        """Make a stored version the active one (activating an older one is the rollback).

        Activating the version that is already active records nothing and returns it.
        """
        if not isinstance(version_id, str) or not version_id:
            raise InvalidInput("version id must be a non-empty string")
        actor = _check_text(actor, "actor", max_len=200)
        reason = _check_text(reason, "reason", max_len=10000, allow_empty=True)
        with self._write("activate", HEAD_ACTIVE) as (conn, head):
            row = conn.execute(
                sa.select(policy_versions).where(policy_versions.c.id == version_id)).one_or_none()
            if row is None:
                raise VersionNotFound(version_id)
            if head.value != version_id:
                self._activate_locked(conn, head, version_id, actor=actor, reason=reason)
            self._hook("activate_before_commit")
        return _version_from_row(row)

    def active_version_id(self) -> str | None:
        with self._read("active_version_id") as conn:
            return conn.execute(
                sa.select(store_heads.c.value).where(store_heads.c.name == HEAD_ACTIVE)).scalar_one_or_none()

    def active_version(self) -> Version | None:
        vid = self.active_version_id()
        return None if vid is None else self.get_version(vid)

    def get_version(self, version_id: str, *, with_files: bool = True) -> Version:
        with self._read("get_version") as conn:
            row = conn.execute(
                sa.select(policy_versions).where(policy_versions.c.id == version_id)).one_or_none()
            if row is None:
                raise VersionNotFound(version_id)
            files = None
            if with_files:
                files = dict(conn.execute(
                    sa.select(policy_files.c.path, policy_files.c.content)
                    .where(policy_files.c.version_id == version_id)
                    .order_by(policy_files.c.path)).all())
        return _version_from_row(row, files)

    def list_versions(self) -> list[Version]:
        """Every stored version, newest first, without file bodies (``files`` is None)."""
        with self._read("list_versions") as conn:
            rows = conn.execute(sa.select(policy_versions).order_by(
                policy_versions.c.created_at.desc(), policy_versions.c.id)).all()
        return [_version_from_row(r) for r in rows]

    def resolve_version(self, ref: str) -> str:
        """A full id, or an unambiguous prefix of the hex digest (with or without ``sha256:``)."""
        if not isinstance(ref, str) or not ref.strip():
            raise InvalidInput("version reference must be a non-empty string")
        ref = ref.strip()
        with self._read("resolve_version") as conn:
            if conn.execute(sa.select(policy_versions.c.id).where(policy_versions.c.id == ref)).first():
                return ref
            prefix = ref if ref.startswith("sha256:") else "sha256:" + ref
            like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            ids = conn.execute(sa.select(policy_versions.c.id)
                               .where(policy_versions.c.id.like(like, escape="\\")).limit(2)).scalars().all()
        if not ids:
            raise VersionNotFound(ref)
        if len(ids) > 1:
            raise VersionNotFound(ref, f"version reference {ref!r} is ambiguous")
        return ids[0]

    def activation_history(self) -> list[dict[str, Any]]:
        """Every activation, newest first: {id, version_id, previous_version_id, actor, reason, activated_at}."""
        with self._read("activation_history") as conn:
            rows = conn.execute(sa.select(activations).order_by(activations.c.id.desc())).all()
        return [{"id": r.id, "version_id": r.version_id, "previous_version_id": r.previous_version_id,
                 "actor": r.actor, "reason": r.reason, "activated_at": chain.format_time(r.activated_at)}
                for r in rows]

    def _remember(self, version_id: str, ps: Any) -> None:
        with self._cache_lock:
            self._cache[version_id] = ps
            self._cache.move_to_end(version_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def policy_set(self, version_id: str):
        """The compiled PolicySet of a stored version (cached by id)."""
        with self._cache_lock:
            ps = self._cache.get(version_id)
            if ps is not None:
                self._cache.move_to_end(version_id)
                return ps
        import engine as policy_engine

        version = self.get_version(version_id)
        try:
            ps = policy_engine.compile_files(version.files or {})
        except policy_engine.PolicyErrors as exc:
            raise StoreError(f"stored version {version_id} no longer compiles: {exc.errors[0]}") from None
        if ps.version != version_id:
            raise StoreError(f"stored files of {version_id} compile to {ps.version}: "
                             "the stored files were altered or the engine's hashing changed")
        self._remember(version_id, ps)
        return ps

    # -- decision log -----------------------------------------------------------------------

    def append_decisions(self, records: list[Any]) -> None:
        """Append records to the log in one transaction, extending the hash chain.

        Every record is validated first (InvalidInput, nothing written); records already prepared
        by ``chain.prepare_record`` (the log writer's) were validated when they were queued. A
        record whose decision_id is already logged is skipped, so retrying a batch is safe.
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
        with self._write("append_decisions", HEAD_DECISIONS) as (conn, head):
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
                             p.input_json, p.result_json, prev, h))
                rule_rows += [(rid, seq) for rid in p.rules]
                prev = h
            if not rows:
                return
            self._insert_log_rows(conn, rows, rule_rows)
            conn.execute(store_heads.update().where(store_heads.c.name == HEAD_DECISIONS)
                         .values(seq=seq, hash=prev))
            self._hook("append_before_commit")

    _DECISION_COLUMNS = "seq, decision_id, time, action, allow, policy_version, input, result, prev_hash, hash"

    def _logged_ids(self, conn: sa.Connection, ids: list[str]) -> set[str]:
        """Which of ``ids`` are already in the log (one driver query per 500, no SQL compilation)."""
        existing: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            if self.dialect == "postgresql":
                rows = conn.exec_driver_sql("SELECT decision_id FROM decisions WHERE decision_id = ANY(%s)",
                                            (chunk,))
            else:
                rows = conn.exec_driver_sql("SELECT decision_id FROM decisions WHERE decision_id IN ("
                                            + ", ".join("?" * len(chunk)) + ")", tuple(chunk))
            existing.update(row[0] for row in rows)
        return existing

    def _insert_log_rows(self, conn: sa.Connection, rows: list[tuple], rule_rows: list[tuple]) -> None:
        """The rows in the connection's transaction, through the driver: COPY on PostgreSQL,
        one prepared INSERT run over all rows on SQLite (no per-row SQLAlchemy work)."""
        if self.dialect != "postgresql":
            conn.exec_driver_sql(f"INSERT INTO decisions ({self._DECISION_COLUMNS}) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            if rule_rows:
                conn.exec_driver_sql("INSERT INTO decision_rules (rule_id, seq) VALUES (?, ?)", rule_rows)
            return
        import psycopg

        cursor = conn.connection.cursor()
        try:
            with cursor.copy(f"COPY decisions ({self._DECISION_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            if rule_rows:
                with cursor.copy("COPY decision_rules (rule_id, seq) FROM STDIN") as copy:
                    for row in rule_rows:
                        copy.write_row(row)
        except (psycopg.DataError, psycopg.IntegrityError) as exc:  # rolled back by _write
            raise RecordRefused(f"append_decisions: the database refused the data: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"append_decisions: database error: {_first_line(exc)}") from exc
        finally:
            cursor.close()

    @staticmethod
    def _decision_dict(row: Any) -> dict[str, Any]:
        return {"seq": int(row.seq), "decision_id": row.decision_id, "time": row.time,
                "action": row.action, "allow": bool(row.allow), "policy_version": row.policy_version,
                "input": json.loads(row.input), "result": json.loads(row.result),
                "prev_hash": row.prev_hash, "hash": row.hash}

    def query_decisions(self, *, since: Any = None, until: Any = None, action: str | None = None,
                        allow: bool | None = None, rule: str | None = None,
                        version: str | None = None, limit: int = 100,
                        after_seq: int | None = None, before_seq: int | None = None,
                        newest_first: bool = False) -> list[dict[str, Any]]:
        """Logged decisions matching every given filter, by seq (oldest first unless newest_first).

        ``since`` is inclusive, ``until`` exclusive (ISO strings or datetimes); ``after_seq`` /
        ``before_seq`` page forwards / backwards.
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidInput("limit must be a positive integer")
        limit = min(limit, _MAX_QUERY_LIMIT)
        q = sa.select(decisions)
        if since is not None:
            q = q.where(decisions.c.time >= chain.normalize_time(since, "since"))
        if until is not None:
            q = q.where(decisions.c.time < chain.normalize_time(until, "until"))
        if action is not None:
            q = q.where(decisions.c.action == action)
        if allow is not None:
            if not isinstance(allow, bool):
                raise InvalidInput("allow must be true or false")
            q = q.where(decisions.c.allow == allow)
        if version is not None:
            q = q.where(decisions.c.policy_version == version)
        if rule is not None:
            q = q.where(decisions.c.seq.in_(
                sa.select(decision_rules.c.seq).where(decision_rules.c.rule_id == rule)))
        for name, value in (("after_seq", after_seq), ("before_seq", before_seq)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise InvalidInput(f"{name} must be an integer")
        if after_seq is not None:
            q = q.where(decisions.c.seq > after_seq)
        if before_seq is not None:
            q = q.where(decisions.c.seq < before_seq)
        q = q.order_by(decisions.c.seq.desc() if newest_first else decisions.c.seq).limit(limit)
        with self._read("query_decisions") as conn:
            return [self._decision_dict(r) for r in conn.execute(q)]

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        if not isinstance(decision_id, str):
            return None
        with self._read("get_decision") as conn:
            row = conn.execute(sa.select(decisions).where(decisions.c.decision_id == decision_id)).one_or_none()
        return None if row is None else self._decision_dict(row)

    def decision_count(self) -> int:
        with self._read("decision_count") as conn:
            return int(conn.execute(sa.select(store_heads.c.seq)
                                    .where(store_heads.c.name == HEAD_DECISIONS)).scalar_one())

    def verify_chain(self) -> ChainReport:
        """Recompute the hash chain from the first entry to the head and report the first break."""
        with self._read("verify_chain") as conn:
            if self.dialect == "postgresql":  # one snapshot for the head and every page
                conn.execution_options(isolation_level="REPEATABLE READ")
            head = conn.execute(sa.select(store_heads).where(store_heads.c.name == HEAD_DECISIONS)).one()
            head_seq, head_hash = int(head.seq), head.hash or chain.GENESIS
            expected_seq, prev, checked = 1, chain.GENESIS, 0
            last_id: str | None = None
            while expected_seq <= head_seq:
                page_end = min(head_seq, expected_seq + _VERIFY_PAGE - 1)
                rows = conn.execute(sa.select(decisions)
                                    .where(decisions.c.seq >= expected_seq, decisions.c.seq <= page_end)
                                    .order_by(decisions.c.seq)).all()
                rules_by_seq: dict[int, list[str]] = {}
                for rseq, rid in conn.execute(
                        sa.select(decision_rules.c.seq, decision_rules.c.rule_id)
                        .where(decision_rules.c.seq >= expected_seq, decision_rules.c.seq <= page_end)):
                    rules_by_seq.setdefault(int(rseq), []).append(rid)
                for row in rows:
                    seq = int(row.seq)
                    if seq != expected_seq:
                        return ChainReport(False, checked, expected_seq, None,
                                           f"entry {expected_seq} is missing (next present entry is {seq})")
                    broken = self._check_entry(row, prev, rules_by_seq.get(seq, []))
                    if broken:
                        return ChainReport(False, checked, seq, row.decision_id, broken)
                    prev, last_id = row.hash, row.decision_id
                    checked += 1
                    expected_seq += 1
                if expected_seq <= page_end:
                    return ChainReport(False, checked, expected_seq, None,
                                       f"entry {expected_seq} is missing (the chain head says {head_seq} entries)")
            # one snapshot (REPEATABLE READ / a SQLite read transaction): an entry beyond the head
            # was not written by append_decisions
            beyond = conn.execute(sa.select(sa.func.min(decisions.c.seq))
                                  .where(decisions.c.seq > head_seq)).scalar()
            if beyond is not None:
                bid = conn.execute(sa.select(decisions.c.decision_id)
                                   .where(decisions.c.seq == beyond)).scalar()
                return ChainReport(False, checked, int(beyond), bid,
                                   f"entry {beyond} lies beyond the chain head ({head_seq}): "
                                   "it was not appended through the log")
            if prev != head_hash:
                return ChainReport(False, checked, head_seq or None, last_id,
                                   "the chain head's hash does not match the last entry")
        return ChainReport(True, checked, None, None, f"chain ok: {checked} decisions")

    @staticmethod
    def _check_entry(row: Any, prev: str, indexed_rules: list[str]) -> str:
        if row.prev_hash != prev:
            return "prev_hash does not match the previous entry's hash (an entry was removed or reordered)"
        try:
            record = {"decision_id": row.decision_id, "time": row.time, "action": row.action,
                      "input": json.loads(row.input), "result": json.loads(row.result),
                      "policy_version": row.policy_version}
        except ValueError:
            return "input or result is not valid JSON"
        if chain.entry_hash(prev, int(row.seq), record) != row.hash:
            return "hash does not match the entry's content (the entry was altered)"
        result = record["result"]
        if not isinstance(result, dict) or bool(row.allow) != result.get("allow"):
            return "the allow column disagrees with the logged result"
        if sorted(indexed_rules) != chain.rule_ids(result):
            return "the rule index disagrees with the logged result"
        return ""

    # -- change notification ----------------------------------------------------------------

    def watch_active(self, callback: Callable[[str | None], Any], interval: float = 1.0, *,
                     fire_initial: bool = False):
        """Start a thread that calls ``callback(version_id)`` whenever the active version changes.

        Polls ``active_version_id()`` every ``interval`` seconds; on PostgreSQL it also LISTENs for
        the NOTIFY sent by every activation, for sub-second pickup. Returns the watcher
        (``.stop()``); a callback that raises is called again at the next tick.
        """
        from .watch import ActiveWatcher

        watcher = ActiveWatcher(self, callback, interval=interval, fire_initial=fire_initial)
        watcher.start()
        return watcher


def _test_failure(result: Any) -> dict[str, Any]:
    loc = getattr(result, "location", None)
    file = getattr(result, "file", None) or getattr(loc, "file", None)
    line = getattr(result, "line", None) or getattr(loc, "line", None)
    return {"kind": "failed", "name": result.name, "file": file, "line": line,
            "location": f"{file}:{line}" if file and line else file,
            "problems": [str(p) for p in (getattr(result, "problems", None) or ())]}


def _first_line(exc: Any) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
