"""``Store``: the one entry point of the policy store, a thin facade over its four jobs:

- ``store.db``: database plumbing (engine, transactions, migrations) — ``Database``;
- ``store.versions``: stored versions, activations, compiled versions — ``Versions``, ``CompiledVersions``;
- ``store.publish``: the publish step (compile, test, store, activate) — ``publish``;
- ``store.log``: the hash-chained decision log — ``DecisionLog``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from . import publish as publishing
from .db import Database, default_database_url
from .log import ChainReport, DecisionLog
from .versions import CompiledVersions, Version, Versions

__all__ = ["ChainReport", "Store", "Version", "default_database_url"]


class Store:
    """Policy versions, activations and the decision log behind one database URL."""

    def __init__(self, url: str | None = None, *, migrate: bool = False, echo: bool = False):
        self.db = Database(url, echo=echo)
        self.versions = Versions(self.db)
        self.compiled = CompiledVersions(self.versions)
        self.log = DecisionLog(self.db)
        if migrate:
            self.migrate()

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def dialect(self) -> str:
        return self.db.dialect

    @property
    def engine(self) -> sa.Engine:
        return self.db.engine

    @property
    def _hooks(self) -> dict[str, Callable[[], None]]:
        """Test hooks run at fixed points inside write transactions."""
        return self.db.hooks

    def dispose(self) -> None:
        self.log.close()
        self.db.dispose()

    close = dispose

    def migrate(self) -> None:
        self.db.migrate()

    def schema_revision(self) -> str | None:
        return self.db.schema_revision()

    def schema_is_current(self) -> bool:
        return self.db.schema_is_current()

    def ping(self) -> None:
        self.db.ping()

    # -- versions ---------------------------------------------------------------------------

    def publish(self, files: Mapping[str, str], *, author: str, message: str, activate: bool = True,
                impact: Mapping[str, Any] | None = None,
                checking: Callable[[Callable[[], Any]], Any] | None = None) -> Version:
        """Compile, run the YAML tests, then store (and activate) in one transaction, with the
        summary of the impact report it passed when given; raises PublishRejected with every
        error when the candidate is broken (nothing is written). ``checking`` runs the check
        (see ``store.publish.publish``)."""
        return publishing.publish(self.db, self.versions, self.compiled, files, author=author, message=message,
                                  activate=activate, impact=impact, checking=checking)[0]

    def publish_initial(self, files: Mapping[str, str], *, author: str, message: str) -> tuple[Version, bool]:
        """Publish and activate into a store with no active version: ``(version, True)``; when a
        version is active by the time the publish holds the lock, nothing is written and the
        answer is ``(the active version, False)``."""
        return publishing.publish(self.db, self.versions, self.compiled, files, author=author, message=message,
                                  activate=True, unless_active=True)

    def activate(self, version_id: str, *, actor: str, reason: str = "") -> Version:
        """Make a stored version the active one (activating an older one is the rollback)."""
        return self.versions.activate(version_id, actor=actor, reason=reason)[0]

    def activate_from(self, version_id: str, *, actor: str, reason: str = "") -> tuple[Version, str | None]:
        """``activate``, also returning the version that was active, read in the same transaction."""
        return self.versions.activate(version_id, actor=actor, reason=reason)

    def active_version_id(self) -> str | None:
        return self.versions.active_version_id()

    def active_version(self) -> Version | None:
        vid = self.active_version_id()
        return None if vid is None else self.get_version(vid)

    def get_version(self, version_id: str, *, with_files: bool = True) -> Version:
        return self.versions.get(version_id, with_files=with_files)

    def list_versions(self) -> list[Version]:
        return self.versions.list()

    def resolve_version(self, ref: str) -> str:
        return self.versions.resolve(ref)

    def activation_history(self) -> list[dict[str, Any]]:
        return self.versions.activation_history()

    def policy_set(self, version_id: str) -> Any:
        """The compiled PolicySet of a stored version (cached by id)."""
        return self.compiled.get(version_id)

    # -- decision log -----------------------------------------------------------------------

    def append_decisions(self, records: list[Any], *, more: Callable[[], list[Any]] | None = None) -> None:
        """Append records to the log in one transaction, extending the hash chain (``more``: records
        to add once the chain head is locked, see ``DecisionLog.append``)."""
        self.log.append(records, more=more)

    def query_decisions(self, *, since: Any = None, until: Any = None, action: str | None = None,
                        allow: bool | None = None, rule: str | None = None, version: str | None = None,
                        caller: str | None = None, request_id: str | None = None, limit: int = 100,
                        after_seq: int | None = None, before_seq: int | None = None,
                        after_time: str | None = None, newest_first: bool = False,
                        order: str = "seq") -> list[dict[str, Any]]:
        """Logged decisions matching every given filter.

        ``since`` is inclusive, ``until`` exclusive (ISO strings or datetimes). ``order="seq"``
        (the default): by seq, oldest first unless ``newest_first``; ``after_seq`` / ``before_seq``
        page forwards / backwards. ``order="time"``: by (time, seq), paged with the last entry's
        ``after_time`` and ``after_seq`` (each page reads only its own rows of the time index).
        """
        return self.log.query(since=since, until=until, action=action, allow=allow, rule=rule, version=version,
                              caller=caller, request_id=request_id, limit=limit, after_seq=after_seq,
                              before_seq=before_seq, after_time=after_time, newest_first=newest_first,
                              order=order)

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        return self.log.get(decision_id)

    def decision_count(self) -> int:
        return self.log.count()

    def verify_chain(self, *, jobs: int = 1, chunk: int | None = None) -> ChainReport:
        """Recompute the hash chain from the first entry to the head and report the first break.

        ``jobs`` > 1: worker processes verify ranges of ``chunk`` entries (default
        ``store.log_verify.CHUNK``) when the log is longer than one; the report is the same.
        """
        return self.log.verify(jobs=jobs, chunk=chunk)

    # -- change notification ----------------------------------------------------------------

    def watch_active(self, callback: Callable[[str | None], Any], interval: float = 1.0, *,
                     fire_initial: bool = False, signal: Any = None):
        """Start a thread that calls ``callback(version_id)`` whenever the active version changes.

        Polls ``active_version_id()`` every ``interval`` seconds; on PostgreSQL it also LISTENs for
        the NOTIFY sent by every activation, for sub-second pickup; ``signal`` (a file the
        processes of one server touch after an activation) wakes it early. Returns the watcher
        (``.stop()``); a callback that raises is called again at the next tick.
        """
        from .watch import ActiveWatcher

        watcher = ActiveWatcher(self, callback, interval=interval, fire_initial=fire_initial, signal=signal)
        watcher.start()
        return watcher
