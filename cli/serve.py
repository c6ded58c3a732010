"""``ordergate serve``: run the decision service (gunicorn in production, Flask's server with --dev)."""
from __future__ import annotations

import logging
import multiprocessing
import os
import typing as t
from pathlib import Path

import click

log = logging.getLogger("ordergate.serve")


def _default_rules() -> Path:
    """``./rules`` when the current folder has one, else the rules shipped with the project."""
    here = Path("rules")
    if here.is_dir():
        return here
    from api.app import SHIPPED_RULES

    return SHIPPED_RULES


def _bind(host: str, port: int) -> str:
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def prepare_store(database_url: str, rules_dir: Path) -> str | None:
    """Migrate, and publish ``rules_dir`` into an empty store, once, before any worker starts.

    Returns the active version id; None when the database does not answer (the workers then
    come up not ready and keep trying). Raises ``click.ClickException`` when the rules in an
    empty store cannot be published.
    """
    from api.runtime import StartupError, bootstrap
    from store import Store, StoreError

    store = Store(database_url)
    try:
        store.migrate()
        active = store.active_version_id()
        if active is None:
            active = bootstrap(store, rules_dir, author="ordergate serve")
        return active
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
    except StoreError as exc:
        click.echo(f"warning: the store does not answer yet ({exc}); starting not ready", err=True)
        return None
    finally:
        store.dispose()  # never hand a connection pool to forked workers


class GunicornServer:
    """Builds the gunicorn application lazily so that ``--dev`` needs no gunicorn import."""

    @staticmethod
    def run(config: dict[str, t.Any], options: dict[str, t.Any]) -> None:
        from gunicorn.app.base import BaseApplication

        class OrdergateApplication(BaseApplication):
            """gunicorn with ``create_app`` as the WSGI app, built in each worker after the fork."""

            def __init__(self) -> None:
                self.options = options
                super().__init__()

            def load_config(self) -> None:
                for key, value in self.options.items():
                    if key in self.cfg.settings and value is not None:
                        self.cfg.set(key, value)

            def load(self):
                from api import create_app

                return create_app(dict(config))

        OrdergateApplication().run()


def _worker_exit(server: t.Any, worker: t.Any) -> None:
    """Flush the worker's decision log and stop its watcher when gunicorn stops the worker."""
    app = getattr(worker, "wsgi", None)
    runtime = getattr(app, "extensions", {}).get("ordergate") if app is not None else None
    if runtime is not None:
        runtime.close()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs access tokens.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Rules folder published when the store is empty (default: ./rules, the shipped rules).")
@click.option("--database", "database_url", default=None, metavar="URL",
              help="Database URL (default: $ORDERGATE_DATABASE_URL, else sqlite:///var/ordergate.sqlite).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="gunicorn worker processes (default: 2 x CPU cores).")
@click.option("--threads", type=click.IntRange(min=1), default=4, show_default=True,
              help="Threads per worker (gthread: keep-alive connections).")
@click.option("--worker-class", type=click.Choice(["gthread", "sync"]), default="gthread", show_default=True,
              help="gunicorn worker class: gthread keeps connections alive (--threads each); sync answers "
                   "one request per connection and closes it (less work per request, for a local proxy).")
@click.option("--log-on-full", type=click.Choice(["block", "fail_closed"]), default=None,
              help="When the decision log cannot keep up: wait, or answer fail closed (default: block).")
@click.option("--access-log", is_flag=True, help="Write an access log line per request to stderr.")
@click.option("--dev", is_flag=True, help="Flask's development server in one process (not for production).")
def serve(host: str, port: int, rules_dir: Path | None, database_url: str | None, workers: int | None,
          threads: int, worker_class: str, log_on_full: str | None, access_log: bool, dev: bool) -> None:
    """Run the decision service on the shipped rules and a SQLite file by default.

    Without access tokens (ORDERGATE_TOKENS_FILE, ORDERGATE_TOKENS_DECIDE/_AUDIT/_ADMIN) it listens
    on 127.0.0.1 only.
    """
    from api.auth import Authenticator, is_loopback, tokens_from_env
    from store import default_database_url

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("ordergate").setLevel(logging.INFO)
    try:
        tokens = tokens_from_env()
        authenticated = Authenticator(tokens).enabled
    except ValueError as exc:
        raise click.UsageError(f"bad token configuration: {exc}") from None
    if not authenticated:
        if not is_loopback(host):
            raise click.UsageError(
                f"refusing to listen on {host} without access tokens: set ORDERGATE_TOKENS_FILE or "
                "ORDERGATE_TOKENS_DECIDE, _AUDIT and _ADMIN, or use --host 127.0.0.1")
        host = "127.0.0.1"
        click.echo("warning: no access tokens configured: listening on 127.0.0.1 only, and every local "
                   "caller has every role (set ORDERGATE_TOKENS_FILE or ORDERGATE_TOKENS_DECIDE/_AUDIT/_ADMIN to serve others)", err=True)
    database_url = database_url or default_database_url()
    rules_dir = rules_dir or _default_rules()
    active = prepare_store(database_url, rules_dir)
    config: dict[str, t.Any] = {
        "database_url": database_url, "rules_dir": str(rules_dir), "tokens": tokens,
        # the schema is current once prepare_store succeeded; workers then skip the migration
        "migrate": active is None,
    }
    if log_on_full:
        config["log_on_full"] = log_on_full
    click.echo(f"ordergate: serving policy version {active or '(none yet)'} on http://{_bind(host, port)} "
               f"(database {_safe(database_url)})", err=True)
    if dev:
        from api import create_app

        app = create_app(config)
        try:
            app.run(host=host, port=port, threaded=True, use_reloader=False)
        finally:
            app.extensions["ordergate"].close()
        return
    GunicornServer.run(config, gunicorn_options(host, port, workers=workers, threads=threads,
                                                worker_class=worker_class, access_log=access_log))


def gunicorn_options(host: str, port: int, *, workers: int | None, threads: int, worker_class: str = "gthread",
                     access_log: bool = False) -> dict[str, t.Any]:
    """The gunicorn settings of ``ordergate serve`` (bench/serve_nolog.py reuses them)."""
    return {
        "bind": _bind(host, port),
        "workers": workers or 2 * (os.cpu_count() or multiprocessing.cpu_count() or 1),
        "worker_class": worker_class,
        "threads": threads,
        "keepalive": 30,
        "timeout": 30,
        # a stopping worker writes its queued decisions first (log_close_timeout, 25 s)
        "graceful_timeout": 30,
        "accesslog": "-" if access_log else None,
        "worker_exit": _worker_exit,
        "proc_name": "ordergate",
        # gunicorn >= 25.1 opens one control socket per user by default: two servers would fight over it
        "control_socket_disable": True,
    }


def _safe(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database>"


def register(group: click.Group) -> None:
    group.add_command(serve)
