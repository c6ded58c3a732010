"""Database plumbing: one SQLAlchemy engine behind a URL, the error mapping, read and locked write
transactions, the migrations.

Write paths serialise on a row of ``store_heads`` (``SELECT ... FOR UPDATE`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), so activations form one history and the decision log one linear
hash chain however many processes and hosts write to the same database.
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from .errors import RecordRefused, StoreError
from .schema import HEAD_ACTIVE, store_heads

DEFAULT_SQLITE_URL = "sqlite:///var/ordergate.sqlite"
#: seconds a SQLite connection waits for a lock held by another program (its busy timeout)
SQLITE_LOCK_TIMEOUT = 30.0
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def newest_revision() -> str:
    """The head revision: migrations are named ``NNNN_what.py`` with ``revision = "NNNN"``, each
    following the one before (tests/test_store_helpers.py checks this against Alembic's own head)."""
    return max(p.name.split("_", 1)[0] for p in (_MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
_MIGRATION_LOCK_KEY = 0x6F72646572676174  # "ordergat"


def default_database_url() -> str:
    """``ORDERGATE_DATABASE_URL``, else a SQLite file ``var/ordergate.sqlite`` under the cwd."""
    return os.environ.get("ORDERGATE_DATABASE_URL") or DEFAULT_SQLITE_URL


def first_line(exc: Any) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Database:
    """The engine of one database URL (SQLite or PostgreSQL) and its transactions."""

    def __init__(self, url: str | None = None, *, echo: bool = False):
        self.url = url or default_database_url()
        try:
            parsed = make_url(self.url)
        except Exception as exc:
            raise StoreError(f"not a database URL: {self.url!r} ({exc})") from None
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"unsupported database {self.dialect!r}: use sqlite:/// or postgresql+psycopg://")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        #: SQLite file: the file whose lock every writer of the database takes first (``writer_lock``)
        self.lock_path: Path | None = None
        if self.dialect == "sqlite":
            database = parsed.database
            if not database or database == ":memory:":
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                path = Path(database).expanduser()
                path.parent.mkdir(parents=True, exist_ok=True)
                self.lock_path = path.resolve().with_name(path.name + "-writer.lock")
                kwargs["connect_args"] = {"timeout": SQLITE_LOCK_TIMEOUT}
        else:
            kwargs["pool_pre_ping"] = True
            if "connect_timeout" not in parsed.query:
                kwargs["connect_args"] = {"connect_timeout": 5}
        try:
            self.engine = sa.create_engine(parsed, **kwargs)
        except Exception as exc:
            raise StoreError(f"cannot use database {self.safe_url()}: {exc}") from None
        if self.dialect == "sqlite":
            self._install_sqlite_hooks()
        # test hooks: name -> callable, run at fixed points inside write transactions
        self.hooks: dict[str, Callable[[], None]] = {}

    def safe_url(self) -> str:
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # pragma: no cover
            return "<database>"

    def _install_sqlite_hooks(self) -> None:
        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_conn, _record):  # pragma: no cover - trivial
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 30000")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = FULL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn):
            mode = conn.get_execution_options().get("ordergate_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

    @contextmanager
    def writer_lock(self, what: str) -> Iterator[None]:
        """SQLite (a file): hold the database's writer lock, a lock on a file next to it.

        Every write transaction of every ordergate process takes it before ``BEGIN IMMEDIATE``, so
        writers queue in the kernel and the next one is woken the moment the previous one commits.
        Without it, a writer that found the database locked retried in SQLite's busy handler, which
        sleeps 1 to 100 ms between tries: two processes appending to the decision log waited on
        each other's sleeps rather than on each other's commits (p99 near a second). Each holder
        keeps the lock for one transaction; the lock dies with its process. SQLite's own busy
        timeout (30 s) still applies to writers that do not take this lock (another program).
        Nothing to do on PostgreSQL (its row locks wake waiters at once) or for an in-memory
        database (one process).
        """
        if self.lock_path is None:
            yield
            return
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"{what}: cannot open the writer lock {self.lock_path}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def hook(self, name: str) -> None:
        fn = self.hooks.get(name)
        if fn is not None:
            fn()

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Database exceptions as StoreError (RecordRefused when the data itself was refused)."""
        try:
            yield
        except StoreError:
            raise
        except sa.exc.OperationalError as exc:
            raise StoreError(f"{what}: database unavailable or schema missing ({self.safe_url()}): "
                             f"{first_line(exc.orig)}") from exc
        except (sa.exc.DataError, sa.exc.IntegrityError) as exc:
            raise RecordRefused(f"{what}: the database refused the data: {first_line(exc.orig)}") from exc
        except sa.exc.SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None) or exc
            raise StoreError(f"{what}: database error: {first_line(orig)}") from exc

    @contextmanager
    def read(self, what: str) -> Iterator[sa.Connection]:
        with self.errors(what), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self, what: str, head: str) -> Iterator[tuple[sa.Connection, Any]]:
        """One write transaction holding the lock of ``head``; yields (connection, head row)."""
        with self.writer_lock(what), self.errors(what), self.engine.connect() as conn:
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
        self.engine.dispose()

    # -- schema -----------------------------------------------------------------------------

    def _alembic_config(self):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return cfg

    def migrate(self) -> None:
        """Run the Alembic migrations to head. Safe to call from several processes at once.

        A database already at the newest revision is answered by one query, without importing
        Alembic (a third of a store command's start-up).
        """
        if self._at_head():
            return
        from alembic import command

        cfg = self._alembic_config()
        with self.writer_lock("migrate"), self.errors("migrate"), self.engine.connect() as conn:
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

        with self.read("schema_revision") as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def _at_head(self) -> bool:
        try:
            with self.engine.connect() as conn:
                stored = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        except sa.exc.DBAPIError:  # no table yet, or no database: the migration says what is wrong
            return False
        return stored == [newest_revision()]

    def schema_is_current(self) -> bool:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(self._alembic_config()).get_current_head()
        return self.schema_revision() == head

    def ping(self) -> None:
        """Raise StoreError unless the database answers and holds the store's tables."""
        with self.read("ping") as conn:
            conn.execute(sa.select(store_heads.c.seq).where(store_heads.c.name == HEAD_ACTIVE)).all()

