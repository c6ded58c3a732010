"""The rules folder beside a running ``ordergate serve``.

On start, ``serve`` says in one line when its rules folder differs from the active version (the
service decides with the active version, not with the folder) and how to publish it. With
``serve --watch`` (development) the folder is checked, tested and published whenever it changes;
a change that does not pass is refused loudly, with every error at its ``file:line:column``, and
the last good version keeps serving.
"""
from __future__ import annotations

import threading
from pathlib import Path

import click

POLL_INTERVAL = 0.2     # seconds between two reads of the folder
WORKER_INTERVAL = 0.25  # seconds between the workers' checks for a new activation under --watch
AUTHOR = "ordergate serve --watch"


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
    """Publishes the rules folder into the store whenever its content changes and settles."""

    def __init__(self, database_url: str, rules_dir: Path, *, interval: float = POLL_INTERVAL) -> None:
        self.database_url = database_url
        self.rules_dir = rules_dir
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ordergate-rules-watch", daemon=True)
        self._published: dict[str, str] | None = None

    def start(self) -> None:
        click.echo(f"watching {self.rules_dir}: every change is checked, tested and published", err=True)
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
        seen = self._published
        while not self._stop.wait(self.interval):
            files = self._read()
            # publish only a folder that read the same twice in a row: an editor may be mid-save
            if files is not None and files == seen and files != self._published:
                self.publish_if_changed(files)
            seen = files

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
            click.secho(f"published and activated {version.id} from {self.rules_dir} (was {before})",
                        fg="green", err=True)


def watch_rules(database_url: str, rules_dir: Path, active: str | None, *, watch: bool) -> str | None:
    """``serve``'s start-up hook: the drift notice, or (``--watch``) a started watcher. The active version."""
    if not watch:
        notice = drift_notice(rules_dir, active)
        if notice:
            click.echo(notice, err=True)
        return active
    FolderWatcher(database_url, rules_dir).start()
    from store import Store

    store = Store(database_url)
    try:
        return store.active_version_id()
    finally:
        store.dispose()
