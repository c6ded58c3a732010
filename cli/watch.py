"""The rules folder beside a running ``ordergate serve``.

On start, ``serve`` says in one line when its rules folder differs from the active version (the
service decides with the active version, not with the folder) and how to publish it. With
``serve --watch`` (development) the folder is checked, tested and published whenever it changes;
a change that does not pass is refused loudly, with every error at its ``file:line:column``, and
the last good version keeps serving.
"""
from __future__ import annotations

import os
import threading
import typing as t
from pathlib import Path

import click

POLL_INTERVAL = 0.05    # seconds between two looks at the folder (one stat per file, nothing read)
WORKER_INTERVAL = 0.25  # seconds between the workers' checks for a new activation under --watch
AUTHOR = "ordergate serve --watch"
MAX_ENTRIES = 10_000    # a folder larger than this is compared on its first entries only

Signature = tuple[tuple[str, int, int, int], ...]


def folder_signature(root: Path) -> Signature:
    """What changes when a file under ``root`` is written, replaced, added or removed: each entry's
    path, inode, size and modification time (stat calls only, no file is opened)."""
    found: list[tuple[str, int, int, int]] = []
    pending = [root]
    while pending and len(found) < MAX_ENTRIES:
        folder = pending.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    found.append((entry.path, st.st_ino, st.st_size, st.st_mtime_ns))
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
        except OSError:
            continue
    return tuple(sorted(found))


def drift_notice(rules_dir: Path, active: str | None) -> str | None:
    """One line when ``rules_dir`` is not the active version, with the command that publishes it."""
    import engine

    if active is None:
        return None
    try:
        version = engine.load_policy_set(rules_dir).version
    except (engine.PolicyErrors, OSError, UnicodeDecodeError):
        return (f"note: {rules_dir} has errors and is not what the service decides with (version {active}); "
                f"see them with: ordergate check {rules_dir}")
    if version == active:
        return None
    return (f"note: {rules_dir} differs from the active version {active}; the service decides with the "
            f"active version. Publish the folder with: ordergate publish {rules_dir} -m \"why\" "
            f"(or serve with --watch)")


class FolderWatcher:
    """Publishes the rules folder into the store whenever its content changes and settles.

    The folder is looked at with stat calls every ``interval``; it is read only once its
    signature changed and then stayed the same for one interval (an editor may be mid-save).
    The check and the YAML tests run once, here, in the serving command's own process;
    ``on_published(version_id)`` then wakes the workers, which load the version from the store.
    """

    def __init__(self, database_url: str, rules_dir: Path, *, interval: float = POLL_INTERVAL,
                 on_published: t.Callable[[str], None] | None = None) -> None:
        self.database_url = database_url
        self.rules_dir = rules_dir
        self.interval = interval
        self.on_published = on_published
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ordergate-rules-watch", daemon=True)
        self._published: dict[str, str] | None = None
        self._signature: Signature = ()

    def start(self) -> None:
        click.echo(f"watching {self.rules_dir}: every change is checked, tested and published", err=True)
        self._signature = folder_signature(self.rules_dir)
        self.publish_if_changed(self._read())
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _read(self) -> dict[str, str] | None:
        import engine

        try:
            return engine.read_folder(self.rules_dir)
        except (engine.PolicyErrors, OSError, UnicodeDecodeError) as exc:
            click.secho(f"REFUSED: cannot read {self.rules_dir}: {exc}", fg="red", bold=True, err=True)
            return None

    def _run(self) -> None:
        seen = self._signature
        while not self._stop.wait(self.interval):
            signature = folder_signature(self.rules_dir)
            # read only a folder that changed and then stayed the same for one interval
            if signature == seen and signature != self._signature:
                self._signature = signature
                self.publish_if_changed(self._read())
            seen = signature

    def publish_if_changed(self, files: dict[str, str] | None) -> None:
        from cli.store_commands import _print_rejection
        from store import PublishRejected, Store, StoreError

        if files is None or files == self._published:
            return
        self._published = files  # a refused content is not tried again until it changes
        store, before = Store(self.database_url), None
        try:
            before = store.active_version_id()
            version = store.publish(files, author=AUTHOR, message=f"serve --watch: {self.rules_dir} changed",
                                    activate=True)
        except PublishRejected as exc:
            _print_rejection(exc, self.rules_dir.as_posix().rstrip("/") + "/")
            click.secho(f"REFUSED: {self.rules_dir} does not pass; still serving version {before}",
                        fg="red", bold=True, err=True)
            return
        except StoreError as exc:
            click.secho(f"REFUSED: the store failed: {exc}; still serving version {before}",
                        fg="red", bold=True, err=True)
            return
        finally:
            store.dispose()
        if version.id != before:
            if self.on_published is not None:
                self.on_published(version.id)
            click.secho(f"published and activated {version.id} from {self.rules_dir} (was {before})",
                        fg="green", err=True)


def watch_rules(database_url: str, rules_dir: Path, active: str | None, *, watch: bool,
                on_published: t.Callable[[str], None] | None = None) -> str | None:
    """``serve``'s start-up hook: the drift notice, or (``--watch``) a started watcher. The active version."""
    if not watch:
        notice = drift_notice(rules_dir, active)
        if notice:
            click.echo(notice, err=True)
        return active
    FolderWatcher(database_url, rules_dir, on_published=on_published).start()
    from store import Store

    store = Store(database_url)
    try:
        return store.active_version_id()
    finally:
        store.dispose()
