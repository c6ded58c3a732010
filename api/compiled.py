"""Compiled versions shared by the processes of one server: compiled once, loaded by every worker.

Compiling a version of the shipped rules takes a tenth of a second of CPU holding the interpreter
lock; every worker did it after each activation, while its event loop waited for the lock to answer
decisions. The process that publishes a candidate has compiled and tested it anyway: it writes the
compiled version as an artifact (``engine.artifact``) into ``<server state folder>/.compiled/``
before storing it, and each worker loads that in a few milliseconds, in small steps that let its
event loop run in between. A worker that compiled a version itself (none was written: an activation
by another server or by the command line) writes it for the workers that start later.

An artifact is used only when it is whole, of the version asked for and written by this engine
build (a fingerprint of the engine's code and of the Python running it); anything else is refused
with a log line naming the reason, and the worker compiles the version from the store as before.
The folder is the server's own (``ordergate serve`` creates it for its workers, readable by its
user only) and is removed with it. An artifact holds code the workers run, so a folder or an
artifact that another user owns, or that others may write, is never read from or written to
(logged; the workers compile instead).
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import stat
import sys
import threading
import time
import typing as t
from pathlib import Path

log = logging.getLogger("ordergate.api")

FOLDER = ".compiled"   # hidden: the state folder's visible entries are its workers
KEEP = 8               # artifacts kept after a write (the newest), enough for every rollback in flight
STEP_PAUSE = 0.0005    # seconds a worker lets its other threads run between two steps of a load
_NAME = re.compile(r"sha256:([0-9a-f]{64})")


@functools.lru_cache(maxsize=1)
def engine_build() -> str:
    """A fingerprint of the engine's code and the Python running it: an artifact of another build is
    refused (generated code objects only load in the Python that made them). Taken from the engine's
    files when first asked: a worker asks when it starts, the publishing child right after its imports."""
    import engine

    digest = hashlib.sha256(f"{sys.implementation.cache_tag} {sys.version}".encode())
    root = Path(engine.__file__).parent
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".so", ".json", ".c") and p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def pause() -> None:
    time.sleep(STEP_PAUSE)


class Artifacts:
    """The compiled versions in one folder, by version id."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @classmethod
    def of_server(cls, state_dir: str | Path | None) -> Artifacts | None:
        return cls(Path(state_dir) / FOLDER) if state_dir else None

    def path(self, version_id: str) -> Path | None:
        match = _NAME.fullmatch(version_id)
        return self.folder / f"{match.group(1)}.policy" if match else None

    def write(self, policy_set: t.Any, *, step: t.Callable[[], object] = lambda: None) -> Path | None:
        """Write the artifact of a compiled version (replacing any); the path, or None when it could not
        be written (logged: the workers then compile the version themselves)."""
        from engine import artifact

        target = self.path(policy_set.version)
        if target is None:
            return None
        partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            data = artifact.dump(policy_set, engine_build(), pause=step)
            self.folder.mkdir(mode=0o700, exist_ok=True)
            untrusted = _untrusted(self.folder)
            if untrusted:
                raise OSError(untrusted)
            partial.write_bytes(data)
            partial.replace(target)   # readers find the whole artifact or none
        except (artifact.ArtifactError, OSError) as exc:
            partial.unlink(missing_ok=True)
            log.warning("ordergate: the compiled version %s was not shared with the workers: %s",
                        policy_set.version, exc)
            return None
        self.prune()
        return target

    def sharing(self, check: t.Callable[[], t.Any]) -> t.Any:
        """``Store.publish``'s ``checking``: run the candidate's check, then write what it compiled."""
        policy_set = check()
        self.write(policy_set)
        return policy_set

    def prune(self, keep: int = KEEP) -> None:
        """Remove all but the newest ``keep`` artifacts."""
        entries = []
        for entry in self.folder.glob("*.policy"):
            try:
                entries.append((entry.stat().st_mtime_ns, entry))
            except FileNotFoundError:
                continue
        for _, entry in sorted(entries, reverse=True)[keep:]:
            entry.unlink(missing_ok=True)

    def load(self, version_id: str, *, step: t.Callable[[], object] = pause) -> t.Any:
        """The PolicySet of ``version_id`` from its artifact; None when there is none or it is refused
        (a refusal is logged with its reason)."""
        from engine import artifact

        path = self.path(version_id)
        if path is None:
            return None
        try:
            if not path.exists():
                return None
            untrusted = _untrusted(self.folder) or _untrusted(path)
            if untrusted:
                log.warning("ordergate: refused the compiled version %s: %s; compiling it here", version_id, untrusted)
                return None
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("ordergate: cannot read the compiled version %s (%s); compiling it here", version_id, exc)
            return None
        try:
            return artifact.load(data, version_id, engine_build(), pause=step)
        except artifact.ArtifactError as exc:
            log.warning("ordergate: refused the compiled version %s at %s: %s; compiling it here",
                        version_id, path, exc)
            return None


def _untrusted(path: Path) -> str | None:
    """Why ``path`` (the folder or an artifact in it) must not be trusted with code, or None: it must
    be this user's own, not a symbolic link, and writable by no one else."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symbolic link"
    if st.st_uid != os.geteuid():
        return f"{path} belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"{path} may be written by other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None
