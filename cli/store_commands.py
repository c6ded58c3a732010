"""Store commands: publish a rules folder, activate (roll back to) a version, list versions,
verify the decision log's hash chain.

Every command takes ``--database URL`` (default: ``ORDERGATE_DATABASE_URL``, else
``sqlite:///var/ordergate.sqlite``) and brings the schema up to date first.
Exit codes: 0 success, 1 rejected / not found / chain broken, 2 the database failed.
"""
from __future__ import annotations

import contextlib
import getpass
import os
import typing as t
from pathlib import Path

import click

if t.TYPE_CHECKING:
    from store import PublishRejected, Store

_DB_HELP = "Database URL (default: $ORDERGATE_DATABASE_URL, else sqlite:///var/ordergate.sqlite)."


def _store_failed(exc: Exception) -> t.NoReturn:
    """Exit 1 for a bad argument (the store's InvalidInput is a ValueError), 2 when the database failed."""
    click.echo(f"error: {exc}", err=True)
    raise SystemExit(1 if isinstance(exc, ValueError) else 2)


def _open(database: str | None) -> Store:
    from store import Store, StoreError, default_database_url

    url = database or default_database_url()
    try:
        store = Store(url)
        store.migrate()
    except StoreError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    return store


@contextlib.contextmanager
def _opened(database: str | None) -> t.Iterator[Store]:
    """The store at ``database``, brought up to date; a store failure inside exits 1 or 2, as ``_store_failed`` says."""
    from store import StoreError

    store = _open(database)
    try:
        yield store
    except StoreError as exc:
        _store_failed(exc)
    finally:
        store.dispose()


def _default_author() -> str:
    env = os.environ.get("ORDERGATE_AUTHOR")
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # pragma: no cover - no user database in some containers
        return "unknown"


def _print_rejection(exc: PublishRejected, root: str) -> None:
    for line in exc.lines(root):
        click.echo(line, err=True)
    click.echo(f"not published: {exc}", err=True)


@contextlib.contextmanager
def _rejected(root: str) -> t.Iterator[None]:
    """A candidate the store rejects: every reason printed (paths under ``root``), exit 1."""
    from store import PublishRejected

    try:
        yield
    except PublishRejected as exc:
        _print_rejection(exc, root)
        raise SystemExit(1) from exc


def _impact_gate(store, files: dict[str, str], since: str, max_risky_flips: int | None) -> dict | None:
    """The impact report of the candidate over the decisions logged since ``since``; exit 3 (nothing
    stored) when it turns more denials into allows than ``max_risky_flips``. ``None`` when the
    candidate does not compile: publishing then rejects it with every error."""
    import engine
    from api.evidence import impact
    from engine.impact import text

    try:
        candidate = engine.compile_files(files)
    except engine.PolicyErrors:
        return None
    report = impact(store, candidate, since=since)
    click.echo(text(report), err=True)
    click.echo(f"impact report {report['hash']}", err=True)
    if max_risky_flips is not None and report["risky_flips"] > max_risky_flips:
        click.echo(f"not published: {report['risky_flips']} logged decisions would go from DENY to ALLOW "
                   f"(at most {max_risky_flips} allowed by --max-risky-flips)", err=True)
        raise SystemExit(3)
    return report


@click.command()
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("-m", "--message", required=True, help="Why this version (kept with it for auditors).")
@click.option("--author", default=None, help="Who publishes (default: $ORDERGATE_AUTHOR, else the user name).")
@click.option("--database", default=None, help=_DB_HELP)
@click.option("--no-activate", is_flag=True, help="Store the version without making it active.")
@click.option("--impact-since", default=None,
              help="First replay the decisions logged since this time (ISO-8601) against the candidate; "
                   "the report's hash is kept with the version.")
@click.option("--max-risky-flips", type=click.IntRange(0), default=None,
              help="With --impact-since: refuse (exit 3) when more decisions would go from DENY to ALLOW.")
def publish(directory: str | None, message: str, author: str | None, database: str | None, no_activate: bool,
            impact_since: str | None, max_risky_flips: int | None) -> None:
    """Check DIRECTORY, run its YAML tests, then store it as a version and activate it.

    A broken candidate changes nothing: every error is printed as file:line:column and the
    exit status is 1. With --impact-since and --max-risky-flips, a candidate that would turn
    more logged denials into allows changes nothing either: its impact report is printed and
    the exit status is 3. On success the version id is printed. DIRECTORY defaults to ./rules
    when the current folder has one, else the shipped policy set.

    \b
    Example:
      ordergate publish rules/ -m "credit hold also for the bill-to"
    """
    import engine
    from cli.folders import rules_folder

    directory = str(rules_folder(directory))

    if max_risky_flips is not None and impact_since is None:
        raise click.UsageError("--max-risky-flips needs --impact-since (the decisions to replay)")
    root = Path(directory).as_posix().rstrip("/") + "/"
    try:
        files = engine.read_folder(directory)
    except engine.PolicyErrors as exc:  # a file too large, not text, or a link out of the folder
        for err in exc.errors:
            click.echo(err.render(), err=True)
        raise SystemExit(1) from exc
    report = None
    with _opened(database) as store, _rejected(root):
        if impact_since is not None:
            report = _impact_gate(store, files, impact_since, max_risky_flips)
        before = store.active_version_id()
        stored = {v.id for v in store.list_versions()}
        impact = None if report is None else {"hash": report["hash"], "risky_flips": report["risky_flips"],
                                              "since": impact_since}
        version = store.publish(files, author=author or _default_author(), message=message,
                                activate=not no_activate, impact=impact)
    click.echo(version.id)
    if version.id in stored:  # the same rule files: the stored version keeps its first author and message
        first = version.message.splitlines()[0] if version.message else ""
        activated = ("already active" if before == version.id else "not activated" if no_activate
                     else f"activated (was {before or 'none'})")
        click.echo(f"already stored as version {version.id} by {version.author} ({first}); {activated}; "
                   f"this message is not kept", err=True)
        return
    state = "stored, not activated" if no_activate else f"active (was {before or 'none'})"
    click.echo(f"{state}; {version.file_count} files, author {version.author}", err=True)


@click.command()
@click.argument("version")
@click.option("--actor", default=None, help="Who activates (default: $ORDERGATE_AUTHOR, else the user name).")
@click.option("--reason", default="", help="Why (kept in the activation history).")
@click.option("--database", default=None, help=_DB_HELP)
def activate(version: str, actor: str | None, reason: str, database: str | None) -> None:
    """Make VERSION (an id or an unambiguous prefix of its hash) the active one; this is the rollback.

    \b
    Example:
      ordergate activate sha256:1f2e3d --reason "roll back the credit-hold change"
    """
    from store import VersionNotFound

    with _opened(database) as store:
        try:
            vid = store.resolve_version(version)
            before = store.active_version_id()
            store.activate(vid, actor=actor or _default_author(), reason=reason)
        except VersionNotFound as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(1) from exc
    click.echo(vid)
    click.echo("unchanged: already active" if before == vid else f"active (was {before or 'none'})", err=True)


@click.command()
@click.option("--database", default=None, help=_DB_HELP)
def versions(database: str | None) -> None:
    """List stored versions, newest first; `*` marks the active one.

    \b
    Example:
      ordergate versions --database postgresql+psycopg://ordergate@db/ordergate
    """
    with _opened(database) as store:
        active = store.active_version_id()
        listed = store.list_versions()
    if not listed:
        click.echo("no versions stored")
        return
    for v in listed:
        mark = "*" if v.id == active else " "
        first_line = v.message.splitlines()[0] if v.message else ""
        click.echo(f"{mark} {v.id}  {v.created_at:%Y-%m-%d %H:%M:%S}Z  {v.author}  {first_line}")


@click.group()
def audit() -> None:
    """Auditor commands on the decision log.

    \b
    Example:
      ordergate audit verify
    """


@audit.command("verify")
@click.option("--database", default=None, help=_DB_HELP)
@click.option("--jobs", type=click.IntRange(1, 64), default=None,
              help="Processes verifying ranges of a long log at once (default: the CPUs, at most 4); "
                   "1: one process. The report is the same.")
def audit_verify(database: str | None, jobs: int | None) -> None:
    """Recompute the decision log's hash chain; exit 1 naming the first broken entry.

    \b
    Example:
      ordergate audit verify --database sqlite:///var/ordergate.sqlite
    """
    if jobs is None:
        jobs = min(4, len(os.sched_getaffinity(0)))
    with _opened(database) as store:
        report = store.verify_chain(jobs=jobs)
    if report.ok:
        click.echo(f"chain ok: {report.checked} decisions")
        return
    who = f" (decision {report.first_broken_id})" if report.first_broken_id else ""
    click.echo(f"chain broken at entry {report.first_broken_seq}{who}: {report.reason}; "
               f"{report.checked} entries before it verified", err=True)
    raise SystemExit(1)


def register(group: click.Group) -> None:
    for command in (publish, activate, versions, audit):
        group.add_command(command)
