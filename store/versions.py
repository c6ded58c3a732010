"""Policy versions and activations: reading stored versions, switching the active one (the
rollback is activating an older one), and the cache of compiled versions."""
from __future__ import annotations

import builtins
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from . import chain
from .db import Database
from .errors import InvalidInput, StoreError, VersionNotFound
from .schema import HEAD_ACTIVE, activations, policy_files, policy_versions, store_heads

NOTIFY_CHANNEL = "ordergate_active"


def now() -> datetime:
    return datetime.now(UTC)


def check_text(value: Any, what: str, *, max_len: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    if not allow_empty and not value.strip():
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > max_len:
        raise InvalidInput(f"{what} is longer than {max_len} characters")
    return value


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

    @classmethod
    def from_row(cls, row: Any, files: dict[str, str] | None = None) -> Version:
        return cls(id=row.id, author=row.author, created_at=row.created_at, message=row.message,
                   parent=row.parent, file_count=row.file_count, files=files)


class Versions:
    """Stored versions and the activation history of one database."""

    def __init__(self, db: Database):
        self.db = db

    def activate_locked(self, conn: sa.Connection, head: Any, version_id: str, *, actor: str, reason: str) -> None:
        """Record an activation inside a write transaction holding the active-version lock."""
        result = conn.execute(activations.insert().values(
            version_id=version_id, previous_version_id=head.value, actor=actor, reason=reason,
            activated_at=now()))
        key = result.inserted_primary_key
        assert key is not None  # a single-row insert always has its key
        activation_id = key[0]
        conn.execute(store_heads.update().where(store_heads.c.name == HEAD_ACTIVE)
                     .values(value=version_id, seq=activation_id))
        if self.db.dialect == "postgresql":
            # delivered at commit, to every listener of the database
            conn.execute(sa.text("SELECT pg_notify(:c, :v)"), {"c": NOTIFY_CHANNEL, "v": version_id})

    def activate(self, version_id: str, *, actor: str, reason: str = "") -> tuple[Version, str | None]:
        """Make a stored version the active one; returns it and the version active before, read
        in the same transaction. Activating the active version records nothing."""
        if not isinstance(version_id, str) or not version_id:
            raise InvalidInput("version id must be a non-empty string")
        actor = check_text(actor, "actor", max_len=200)
        reason = check_text(reason, "reason", max_len=10000, allow_empty=True)
        with self.db.write("activate", HEAD_ACTIVE) as (conn, head):
            row = conn.execute(
                sa.select(policy_versions).where(policy_versions.c.id == version_id)).one_or_none()
            if row is None:
                raise VersionNotFound(version_id)
            previous = head.value
            if head.value != version_id:
                self.activate_locked(conn, head, version_id, actor=actor, reason=reason)
            self.db.hook("activate_before_commit")
        return Version.from_row(row), previous

    def active_version_id(self) -> str | None:
        with self.db.read("active_version_id") as conn:
            return conn.execute(
                sa.select(store_heads.c.value).where(store_heads.c.name == HEAD_ACTIVE)).scalar_one_or_none()

    def get(self, version_id: str, *, with_files: bool = True) -> Version:
        with self.db.read("get_version") as conn:
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
        return Version.from_row(row, files)

    def list(self) -> list[Version]:
        """Every stored version, newest first, without file bodies (``files`` is None)."""
        with self.db.read("list_versions") as conn:
            rows = conn.execute(sa.select(policy_versions).order_by(
                policy_versions.c.created_at.desc(), policy_versions.c.id)).all()
        return [Version.from_row(r) for r in rows]

    def resolve(self, ref: str) -> str:
        """A full id, or an unambiguous prefix of the hex digest (with or without ``sha256:``)."""
        if not isinstance(ref, str) or not ref.strip():
            raise InvalidInput("version reference must be a non-empty string")
        ref = ref.strip()
        with self.db.read("resolve_version") as conn:
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

    def activation_history(self) -> builtins.list[dict[str, Any]]:
        """Every activation, newest first: {id, version_id, previous_version_id, actor, reason, activated_at}."""
        with self.db.read("activation_history") as conn:
            rows = conn.execute(sa.select(activations).order_by(activations.c.id.desc())).all()
        return [{"id": r.id, "version_id": r.version_id, "previous_version_id": r.previous_version_id,
                 "actor": r.actor, "reason": r.reason, "activated_at": chain.format_time(r.activated_at)}
                for r in rows]


class CompiledVersions:
    """The compiled PolicySet of stored versions, the most recently used kept in memory."""

    def __init__(self, versions: Versions, size: int = 16):
        self._versions = versions
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def remember(self, version_id: str, ps: Any) -> None:
        with self._lock:
            self._cache[version_id] = ps
            self._cache.move_to_end(version_id)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)

    def cached(self, version_id: str) -> Any:
        """The compiled PolicySet of ``version_id`` when it is in memory, else None."""
        with self._lock:
            ps = self._cache.get(version_id)
            if ps is not None:  # a use keeps it in memory as ``get`` does: the active version is never the oldest
                self._cache.move_to_end(version_id)
            return ps

    def get(self, version_id: str) -> Any:
        """The compiled PolicySet of a stored version (compiled once, then cached by id)."""
        with self._lock:
            ps = self._cache.get(version_id)
            if ps is not None:
                self._cache.move_to_end(version_id)
                return ps
        import engine as policy_engine

        version = self._versions.get(version_id)
        try:
            ps = policy_engine.compile_files(version.files or {})
        except policy_engine.PolicyErrors as exc:
            raise StoreError(f"stored version {version_id} no longer compiles: {exc.errors[0]}") from None
        if ps.version != version_id:
            raise StoreError(f"stored files of {version_id} compile to {ps.version}: "
                             "the stored files were altered or the engine's hashing changed")
        self.remember(version_id, ps)
        return ps
