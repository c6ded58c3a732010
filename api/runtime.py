"""What one server process holds: the store, the active PolicySet, the decision log writer.

``PolicyHolder`` keeps the active policy as one immutable ``Loaded`` value behind one attribute.
A new version is compiled completely *before* the attribute is rebound, and a request reads the
attribute once, so no request ever sees a half-loaded version (rebinding an attribute is atomic
in CPython; the lock only keeps two loaders from racing each other).
"""
from __future__ import annotations

import logging
import os
import threading
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("ordergate.api")


@dataclass(frozen=True)
class Loaded:
    """The active version: the store's id and the compiled PolicySet (never half of one)."""

    version_id: str
    policy_set: t.Any


class PolicyHolder:
    def __init__(self) -> None:
        self._loaded: Loaded | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> Loaded | None:
        return self._loaded

    def swap(self, loaded: Loaded) -> Loaded | None:
        with self._lock:
            previous, self._loaded = self._loaded, loaded
        return previous


COMPILED = "compiled"


class StartupError(RuntimeError):
    """The service cannot start at all (e.g. the shipped rules do not compile)."""


def writer_options(config: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The ``DecisionLogWriter`` settings of a merged configuration (a worker's own writer, or
    the writer process of ``ordergate serve``)."""
    return {
        "durability": config["log_durability"],
        "batch_size": int(config["log_batch_size"]),
        "flush_interval": float(config["log_flush_interval"]),
        "max_queue": int(config["log_max_queue"]),
        "max_queue_bytes": int(config["log_max_queue_bytes"]),
        "on_full": config["log_on_full"],
        "block_timeout": float(config["log_block_timeout"]),
        "commit_timeout": float(config["log_commit_timeout"]),
    }


class Runtime:
    """The per-process state behind the app; built by ``create_app``."""

    def __init__(self, config: t.Mapping[str, t.Any], metrics: t.Any) -> None:
        self.config = config
        self.metrics = metrics
        self.holder = PolicyHolder()
        self.store: t.Any = None
        self.writer: t.Any = None
        self._watcher: t.Any = None
        self._retry: threading.Thread | None = None
        self._closed = threading.Event()
        self.startup_error: str | None = None
        self._owns_store = False
        self.workers = ServerWorkers(config.get("server_state_dir"))
        from api.compiled import Artifacts, engine_build

        self.artifacts = Artifacts.of_server(config.get("server_state_dir"))
        if self.artifacts is not None:
            engine_build()  # now, of the engine this process imported (not of files replaced on disk later)

    # -- start-up -------------------------------------------------------------------------------

    def start(self) -> None:
        store = self.config.get("store")
        if store is None:
            from store import Store

            store = Store(self.config["database_url"])
            self._owns_store = True
        self.store = store
        writer = self.config.get("decision_log_writer")
        if writer is None and self.config.get("log_socket"):
            # `ordergate serve`: the server's one writer process commits every worker's decisions
            from store.log_process import RemoteLogWriter

            writer = RemoteLogWriter(
                self.config["log_socket"], durability=self.config["log_durability"],
                on_full=self.config["log_on_full"], commit_timeout=float(self.config["log_commit_timeout"]),
                max_queue=int(self.config["log_max_queue"]),
                max_queue_bytes=int(self.config["log_max_queue_bytes"]))
        if writer is None:
            from store.decision_log import DecisionLogWriter

            writer = DecisionLogWriter(store, **writer_options(self.config))
        self.writer = writer
        try:
            self._initialise()
        except StartupError:
            raise
        except Exception as exc:  # the database does not answer: come up not-ready, keep trying
            self._note_startup_failure(exc)
            self._retry = threading.Thread(target=self._retry_loop, name="ordergate-startup", daemon=True)
            self._retry.start()

    def _note_startup_failure(self, exc: BaseException) -> None:
        self.startup_error = f"{type(exc).__name__}: {exc}"
        log.warning("ordergate: store not available at start-up, retrying: %s", self.startup_error)

    def _retry_loop(self) -> None:
        interval = float(self.config["startup_retry_interval"])
        while not self._closed.wait(interval):
            try:
                self._initialise()
            except StartupError as exc:
                log.error("ordergate: cannot start: %s", exc)
                self.startup_error = str(exc)
                return
            except Exception as exc:
                self._note_startup_failure(exc)
                continue
            self.startup_error = None
            log.info("ordergate: store reachable again, version %s loaded", self.active_version_id)
            return

    def _initialise(self) -> None:
        store = self.store
        if self.config["migrate"]:
            store.migrate()
        version_id = store.active_version_id()
        if version_id is None and self.config["bootstrap"]:
            version_id = bootstrap(store, Path(self.config["rules_dir"]), author="ordergate serve")
        if version_id is not None:
            self.load(version_id)
        if self._watcher is None and float(self.config["watch_interval"]) > 0:
            # fire_initial: an activation between the load above and the watcher's start is not missed
            self._watcher = store.watch_active(self._on_activation, interval=float(self.config["watch_interval"]),
                                               fire_initial=True, signal=self.workers.signal_path)

    # -- following activations ------------------------------------------------------------------

    def _on_activation(self, version_id: str | None) -> None:
        """Watcher callback: make the newly active version the one that answers.

        The watcher is the only thing that changes the active PolicySet once the service runs
        (the publish and activate endpoints wait for it instead of loading themselves), so the
        holder always ends at the last version the watcher saw; two loaders racing could leave
        an older one installed. When loading fails this raises: the old version keeps answering
        and the watcher calls again at its next tick.
        """
        if version_id is None:
            return
        try:
            self.load(version_id)
        except Exception:
            log.error("ordergate: could not load activated version %s; still serving %s",
                      version_id, self.active_version_id)
            raise

    @property
    def following(self) -> bool:
        """True when a watcher follows activations (else endpoints load versions themselves)."""
        return self._watcher is not None and not self._closed.is_set()

    def load(self, version_id: str) -> Loaded:
        """Load (from the cache, the server's compiled artifact, or by compiling) ``version_id``
        completely, then make it the one that answers."""
        current = self.holder.current
        if current is not None and current.version_id == version_id:
            return current
        started, cpu = time.monotonic(), time.thread_time()
        try:
            policy_set, how = self._policy_set(version_id)
        except Exception:
            self.metrics.reload(False)
            raise
        loaded = Loaded(version_id, policy_set)
        previous = self.holder.swap(loaded)
        self.workers.announce(version_id)
        self.metrics.reload(True)
        if previous is None or previous.version_id != version_id:
            log.info("ordergate: now answering with policy version %s (%s in %.1f ms, %.1f ms of CPU)", version_id,
                     how, (time.monotonic() - started) * 1000, (time.thread_time() - cpu) * 1000)
        if how == COMPILED and self.artifacts is not None:
            # none was written, or it was refused: the workers that load this version later take this one
            from api.compiled import pause

            self.artifacts.write(policy_set, step=pause)
        return loaded

    def _policy_set(self, version_id: str) -> tuple[t.Any, str]:
        """The compiled version and where it came from: the store's cache, else the artifact the
        publishing process wrote (``api.compiled``: loaded in small steps), else compiled here from
        the stored files."""
        compiled = self.store.compiled
        policy_set = compiled.cached(version_id)
        if policy_set is not None:
            return policy_set, "kept in memory"
        if self.artifacts is not None:
            policy_set = self.artifacts.load(version_id)
            if policy_set is not None:
                compiled.remember(version_id, policy_set)
                return policy_set, "loaded from the server's compiled artifact"
        return self.store.policy_set(version_id), COMPILED

    @property
    def active_version_id(self) -> str | None:
        current = self.holder.current
        return current.version_id if current is not None else None

    # -- shutting down --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop following activations and flush the decision log (called at worker exit)."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._watcher is not None:
            try:
                self._watcher.stop()
            except Exception:
                log.exception("ordergate: stopping the activation watcher failed")
        if self.writer is not None:
            try:
                if not self.writer.close(timeout=float(self.config.get("log_close_timeout", 25.0))):
                    log.error("ordergate: decisions still unwritten at shutdown: %s", self.writer.stats())
            except Exception:
                log.exception("ordergate: closing the decision log writer failed")
        if self._owns_store and self.store is not None:
            self.store.dispose()
        self.workers.leave()


SIGNAL_FILE = ".activated"  # hidden: serving() lists only the workers' own files


class ServerWorkers:
    """Which version each worker process of one ``ordergate serve`` answers with.

    Every worker writes the version it has just swapped in to ``<state_dir>/<pid>`` (a folder the
    serve command creates for its own workers), so that publish and activate can wait until
    every worker of the server decides with the new version. Without a folder (one process:
    ``create_app`` in tests, ``--dev``) only this process counts.

    Whoever activates a version for this server (an endpoint in one worker, ``serve --watch`` in
    the parent) touches ``<state_dir>/.activated`` (``signal``): every worker's watcher wakes on
    it at once instead of at its next poll of the database.
    """

    def __init__(self, state_dir: str | None) -> None:
        self._dir = Path(state_dir) if state_dir else None
        self._pid = os.getpid()
        self._version: str | None = None

    def announce(self, version_id: str) -> None:
        self._version = version_id
        if self._dir is None:
            return
        self._pid = os.getpid()
        mine = self._dir / str(self._pid)
        partial = self._dir / f".{self._pid}.tmp"
        partial.write_text(version_id, encoding="utf-8")
        partial.replace(mine)  # readers see the old or the new version id, never half of one

    @property
    def signal_path(self) -> Path | None:
        return self._dir / SIGNAL_FILE if self._dir is not None else None

    def signal(self, version_id: str) -> None:
        """Wake the watchers of every worker of this server: ``version_id`` was just activated."""
        if self._dir is not None:
            from store.watch import touch_signal

            touch_signal(self._dir / SIGNAL_FILE, version_id)

    def leave(self) -> None:
        if self._dir is not None:
            (self._dir / str(self._pid)).unlink(missing_ok=True)

    def serving(self) -> dict[str, str | None]:
        """pid -> version id of every live worker (stale entries of dead workers are removed)."""
        if self._dir is None:
            return {str(self._pid): self._version}
        found: dict[str, str | None] = {}
        for entry in self._dir.iterdir():
            if entry.name.startswith("."):
                continue
            if not _alive(int(entry.name)):
                entry.unlink(missing_ok=True)
                continue
            try:
                found[entry.name] = entry.read_text(encoding="utf-8")
            except FileNotFoundError:  # the worker left meanwhile
                continue
        return found

    def wait_all(self, version_id: str, timeout: float) -> tuple[int, int]:
        """Wait until every worker answers with ``version_id``; ``(workers serving it, workers)``."""
        deadline = time.monotonic() + timeout
        while True:
            serving = self.serving()
            count = sum(1 for v in serving.values() if v == version_id)
            if count == len(serving) or time.monotonic() >= deadline:
                return count, len(serving)
            time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a dead worker its parent has not reaped yet is a zombie: not serving
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def bootstrap(store: t.Any, rules_dir: Path, *, author: str) -> str:
    """Publish and activate ``rules_dir`` in an empty store; the id of the active version.

    Servers starting at once on an empty store publish once: the publish holds the store's
    active-version lock and writes nothing when another one activated a version first; this
    one then says which version it found.
    """
    import engine
    from store import PublishRejected

    if not rules_dir.is_dir():
        raise StartupError(f"the store has no active version and the rules folder `{rules_dir}` does not exist")
    try:
        files = engine.read_folder(rules_dir)
    except engine.PolicyErrors as exc:
        raise StartupError(f"the rules in `{rules_dir}` cannot be read:\n  "
                           + exc.render().replace("\n", "\n  ")) from None
    try:
        version, published = store.publish_initial(files, author=author, message=f"initial version from {rules_dir}")
    except PublishRejected as exc:
        lines = exc.lines(rules_dir.as_posix().rstrip("/") + "/")
        raise StartupError(f"the rules in `{rules_dir}` cannot be published:\n  " + "\n  ".join(lines)) from exc
    if published:
        log.info("ordergate: store was empty; published and activated %s from %s", version.id, rules_dir)
    else:
        log.info("ordergate: store was empty at start; another server published first: found version %s",
                 version.id)
    return version.id
