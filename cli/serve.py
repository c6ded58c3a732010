"""``ordergate serve``: run the decision service.

Production servers: granian (the default; a Rust HTTP server, with ``cli.front.BufferedFront``
reading every request whole before the Flask app sees it) or gunicorn (``--server gunicorn``).
``--dev`` runs Flask's development server in one process.
"""
from __future__ import annotations

import gc
import logging
import math
import multiprocessing
import os
import shutil
import tempfile
import typing as t
from pathlib import Path

import click

from cli import folders

log = logging.getLogger("ordergate.serve")


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


#: a worker's first-generation threshold of the cyclic garbage collector (Python's default: 700)
GC_YOUNG_THRESHOLD = 50_000


def app_loader(config: dict[str, t.Any]) -> t.Callable[[], t.Any]:
    """What each worker calls (after the fork) to build its own app."""

    def load_app() -> t.Any:
        from api import create_app

        app = create_app(dict(config))
        settle_gc()
        return app

    return load_app


def settle_gc() -> None:
    """Tune a worker's cyclic garbage collector once its app is built.

    A batch of decisions allocates thousands of dicts and lists (the parsed body, the answers, the
    log records), nearly all freed by reference counting, never by the collector; at Python's
    default threshold a worker collected every 700 allocations and walked the objects of every
    request in flight each time, and now and then every object of the app (a fifth of a serving
    worker's CPU in a batch load). The app's own objects (the compiled policy, Flask, the store)
    live as long as the worker: ``gc.freeze`` takes them out of every later collection, and a
    higher first threshold collects the young ones less often. Cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


class GunicornServer:
    """Builds the gunicorn application lazily so that ``--dev`` needs no gunicorn import."""

    @staticmethod
    def run(load_app: t.Callable[[], t.Any], options: dict[str, t.Any],
            on_bound: t.Callable[[], None] = lambda: None) -> None:
        from gunicorn.app.base import BaseApplication

        class OrdergateApplication(BaseApplication):
            """gunicorn with ``load_app()`` as the WSGI app, built in each worker after the fork."""

            def __init__(self) -> None:
                self.options = options
                super().__init__()

            def load_config(self) -> None:
                for key, value in self.options.items():
                    if key in self.cfg.settings and value is not None:
                        self.cfg.set(key, value)
                self.cfg.set("when_ready", lambda _arbiter: on_bound())

            def load(self):
                return load_app()

        OrdergateApplication().run()


class GranianServer:
    """granian worker processes, each running ``BufferedFront`` around its own ``create_app``."""

    @staticmethod
    def run(load_app: t.Callable[[], t.Any], options: dict[str, t.Any],
            on_bound: t.Callable[[], None] = lambda: None) -> None:
        from granian.constants import Interfaces, Loops
        from granian.http import HTTP1Settings
        from granian.log import LogLevels
        from granian.server import Server

        from cli.front import BufferedFront

        front = BufferedFront(load_app, threads=options["threads"], body_timeout=options["body_timeout"],
                              request_timeout=options["timeout"], max_body=options["max_body"], on_close=_close_app)
        server = Server(
            "ordergate", address=options["host"], port=options["port"], interface=Interfaces.RSGI,
            workers=options["workers"], loop=Loops.uvloop, backlog=options["backlog"],
            backpressure=options["max_connections"],
            http1_settings=HTTP1Settings(header_read_timeout=int(options["header_timeout"] * 1000)),
            log_level=LogLevels.warning, log_access=options["access_log"],
            respawn_failed_workers=True, workers_lifetime=options["max_worker_age"],
            workers_max_rss=options["max_worker_rss"], workers_kill_timeout=options["graceful_timeout"],
        )
        server.on_startup(on_bound)  # granian calls it once the port is bound, before the workers start

        def loader(_target: str) -> t.Any:  # an RSGI application: an object, not the callable granian's hint names
            return front

        server.serve(target_loader=loader)


def _close_app(app: t.Any) -> None:
    """Flush the worker's decision log and stop its watcher (the worker is stopping)."""
    runtime = getattr(app, "extensions", {}).get("ordergate")
    if runtime is not None:
        runtime.close()


def _worker_exit(server: t.Any, worker: t.Any) -> None:
    """Flush the worker's decision log and stop its watcher when gunicorn stops the worker."""
    app = getattr(worker, "wsgi", None)
    if app is not None:
        _close_app(app)


SERVERS = ("granian", "gunicorn")
#: who commits the decision log under `ordergate serve` (`--log-writer`)
LOG_WRITERS = ("worker", "process")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs access tokens.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"{folders.HELP} Published when the store is empty.")
@click.option("--database", "database_url", default=None, metavar="URL",
              help="Database URL (default: $ORDERGATE_DATABASE_URL, else sqlite:///var/ordergate.sqlite).")
@click.option("--server", type=click.Choice(SERVERS), default="granian", show_default=True,
              help="HTTP server: granian reads every request whole (bounded in time and size) before a thread "
                   "answers it; gunicorn reads requests on its worker threads (run it behind a buffering proxy).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: granian 1 per CPU core, gunicorn 2 per core).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Answering threads per worker (default: granian 32, gunicorn 4).")
@click.option("--worker-class", type=click.Choice(["gthread", "sync"]), default="gthread", show_default=True,
              help="gunicorn only: gthread keeps connections alive (--threads each); sync answers one request "
                   "per connection and closes it.")
@click.option("--timeout", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Seconds a request may take: granian answers 503 past it; gunicorn restarts the worker.")
@click.option("--header-timeout", type=click.FloatRange(min=0.001, max=60), default=10.0, show_default=True,
              help="granian: seconds a client has to send the request line and headers.")
@click.option("--body-timeout", type=click.FloatRange(min=0.001), default=10.0, show_default=True,
              help="granian: seconds a client has to send the whole body once its headers arrived (else 408).")
@click.option("--max-connections", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Open connections per worker; further clients wait in the listen backlog.")
@click.option("--max-worker-rss", type=click.IntRange(min=1), default=None, metavar="MIB",
              help="granian: restart a worker gracefully once it uses more memory than this.")
@click.option("--max-worker-age", type=click.IntRange(min=60), default=None, metavar="SECONDS",
              help="granian: restart each worker gracefully after this long.")
@click.option("--max-requests", type=click.IntRange(min=1), default=None,
              help="gunicorn: restart a worker gracefully after this many requests.")
@click.option("--log-on-full", type=click.Choice(["block", "fail_closed"]), default=None,
              help="When the decision log cannot keep up: wait, or answer fail closed (default: block).")
@click.option("--log-writer", type=click.Choice(LOG_WRITERS), default="worker", show_default=True,
              envvar="ORDERGATE_LOG_WRITER",
              help="Who commits the decision log: each worker process its own decisions, or one writer process "
                   "for all the workers (docs/operations.md).")
@click.option("--access-log", is_flag=True, help="Write an access log line per request to stderr.")
@click.option("--dev", is_flag=True, help="Flask's development server in one process (not for production).")
@click.option("--watch", is_flag=True, help="Development: check, test and publish the rules folder whenever it "
                                            "changes; a change that does not pass is refused, the last good "
                                            "version keeps serving.")
def serve(host: str, port: int, rules_dir: Path | None, database_url: str | None, server: str,
          workers: int | None, threads: int | None, worker_class: str, timeout: float, header_timeout: float,
          body_timeout: float, max_connections: int, max_worker_rss: int | None, max_worker_age: int | None,
          max_requests: int | None, log_on_full: str | None, log_writer: str, access_log: bool, dev: bool,
          watch: bool) -> None:
    """Run the decision service on the active policy version (SQLite in ./var by default).

    An empty store first gets the rules folder published. Without access tokens
    (ORDERGATE_TOKENS_FILE, ORDERGATE_TOKENS_DECIDE/_AUDIT/_ADMIN) it listens on 127.0.0.1 only.

    \b
    Examples:
      ordergate serve --port 9090
      ordergate serve --watch          # development: publish rules/ on every save
    """
    from api.auth import Authenticator, is_loopback, tokens_from_env
    from store import default_database_url

    if server == "granian" and max_requests is not None:
        raise click.UsageError("--max-requests is a gunicorn setting; with granian use --max-worker-rss "
                               "or --max-worker-age")
    if server == "gunicorn" and (max_worker_rss is not None or max_worker_age is not None):
        raise click.UsageError("--max-worker-rss and --max-worker-age are granian settings; with gunicorn use "
                               "--max-requests")
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
                   "caller has every role (set ORDERGATE_TOKENS_FILE or ORDERGATE_TOKENS_DECIDE/_AUDIT/_ADMIN "
                   "to serve others)", err=True)
    database_url = database_url or default_database_url()
    rules_dir = folders.rules_folder(rules_dir)
    probe_port(host, port)  # a busy port is one clear error, before the store is touched
    config: dict[str, t.Any] = {
        "database_url": database_url, "rules_dir": str(rules_dir), "tokens": tokens,
        "warn_without_tokens": False,  # said once above, not once per worker
        # each worker writes the version it answers with here, so publish/activate can wait for all
        # of them; `serve --watch` and those endpoints wake the workers through it after an activation
        "server_state_dir": tempfile.mkdtemp(prefix="ordergate-serve-"),
    }
    main_pid = os.getpid()
    try:
        _run(config, host=host, port=port, rules_dir=rules_dir, server=server, dev=dev, watch=watch,
             log_on_full=log_on_full, log_writer=log_writer, options={
                 "workers": workers, "threads": threads, "worker_class": worker_class, "timeout": timeout,
                 "header_timeout": header_timeout, "body_timeout": body_timeout,
                 "max_connections": max_connections, "max_worker_rss": max_worker_rss,
                 "max_worker_age": max_worker_age, "max_requests": max_requests, "access_log": access_log})
    finally:
        if os.getpid() == main_pid:  # gunicorn's workers leave through here too (SystemExit)
            shutil.rmtree(config["server_state_dir"], ignore_errors=True)


def _run(config: dict[str, t.Any], *, host: str, port: int, rules_dir: Path, server: str, dev: bool,
         watch: bool, log_on_full: str | None, options: dict[str, t.Any], log_writer: str = "worker") -> None:
    from api.runtime import ServerWorkers
    from cli.watch import WORKER_INTERVAL, watch_rules

    database_url = config["database_url"]
    active = prepare_store(database_url, rules_dir)
    active = watch_rules(database_url, rules_dir, active, watch=watch,
                         on_published=ServerWorkers(config["server_state_dir"]).signal)
    # the schema is current once prepare_store succeeded; workers then skip the migration
    config["migrate"] = active is None
    if log_on_full:
        config["log_on_full"] = log_on_full
    if watch:
        config["watch_interval"] = WORKER_INTERVAL

    def announce() -> None:
        """Said once the port is bound (the workers may still be loading the version)."""
        click.echo(f"ordergate: serving policy version {active or '(none yet)'} on http://{_bind(host, port)} "
                   f"with {'Flask (development)' if dev else server} (database {_safe(database_url)})", err=True)

    if dev:
        from werkzeug.serving import make_server

        from api import create_app

        app = create_app(config)
        try:
            httpd = make_server(host, port, app, threaded=True)
        except OSError as exc:
            app.extensions["ordergate"].close()
            raise click.ClickException(_port_busy(host, port, exc)) from None
        announce()
        try:
            httpd.serve_forever()
        finally:
            app.extensions["ordergate"].close()
        return
    writer = _start_log_writer(config) if log_writer == "process" else None
    try:
        _run_server(config, host=host, port=port, server=server, options=options, announce=announce)
    finally:
        if writer is not None:
            writer.stop(timeout=float(config.get("log_close_timeout", 25.0)) + 5.0)


def _start_log_writer(config: dict[str, t.Any]) -> t.Any:
    """Start the server's decision log writer process (its workers hand it their decisions)."""
    from api.app import load_config
    from api.runtime import writer_options
    from store.log_process import LogWriterProcess

    settings = load_config(config)
    # hidden: the workers list the folder's other files as theirs (api.runtime.ServerWorkers)
    config["log_socket"] = os.path.join(config["server_state_dir"], ".decision-log.sock")
    writer = LogWriterProcess({"database_url": config["database_url"], "socket": config["log_socket"],
                               "writer": writer_options(settings), "close_timeout": settings["log_close_timeout"]})
    try:
        writer.start()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    return writer


def _run_server(config: dict[str, t.Any], *, host: str, port: int, server: str, options: dict[str, t.Any],
                announce: t.Callable[[], None]) -> None:
    opts = options  # every option the command line gave; each server takes its own
    if server == "granian":
        GranianServer.run(app_loader(config), granian_options(
            host, port, workers=opts["workers"], threads=opts["threads"], timeout=opts["timeout"],
            header_timeout=opts["header_timeout"], body_timeout=opts["body_timeout"],
            max_connections=opts["max_connections"], max_worker_rss=opts["max_worker_rss"],
            max_worker_age=opts["max_worker_age"], access_log=opts["access_log"]), announce)
    else:
        GunicornServer.run(app_loader(config), gunicorn_options(
            host, port, workers=opts["workers"], threads=opts["threads"], worker_class=opts["worker_class"],
            timeout=opts["timeout"], max_connections=opts["max_connections"], max_requests=opts["max_requests"],
            access_log=opts["access_log"]), announce)


def _port_busy(host: str, port: int, exc: OSError) -> str:
    return f"cannot listen on {_bind(host, port)}: {exc.strerror or exc}; stop what uses it or choose another --port"


def probe_port(host: str, port: int) -> None:
    """Raise one ``ClickException`` (exit 1, no traceback) when ``host:port`` cannot be bound.

    The servers bind the port themselves a moment later; this probe is what turns a busy port
    into one clear line instead of a server's retries and stack traces.
    """
    import socket

    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no obstacle
        try:
            probe.bind((address, port))
            probe.listen(1)
        except OSError as exc:
            raise click.ClickException(_port_busy(host, port, exc)) from None


def _cores() -> int:
    return os.cpu_count() or multiprocessing.cpu_count() or 1


def granian_options(host: str, port: int, *, workers: int | None = None, threads: int | None = None,
                    timeout: float = 30.0, header_timeout: float = 10.0, body_timeout: float = 10.0,
                    max_connections: int = 1000, max_worker_rss: int | None = None,
                    max_worker_age: int | None = None, access_log: bool = False) -> dict[str, t.Any]:
    """The granian settings of ``ordergate serve`` (bench/serve_nolog.py reuses them)."""
    from api.app import DEFAULTS

    return {
        "host": host.strip("[]"), "port": port,
        "workers": workers or _cores(),
        "threads": threads or 32,
        "timeout": timeout,
        "header_timeout": header_timeout,
        "body_timeout": body_timeout,
        # the app checks each endpoint's own limit; the front refuses anything larger unread
        "max_body": max(int(DEFAULTS["max_body_bytes"]), int(DEFAULTS["max_publish_bytes"])),
        "max_connections": max_connections,
        "backlog": 2048,
        "max_worker_rss": max_worker_rss,
        "max_worker_age": max_worker_age,
        # a stopping worker writes its queued decisions first (log_close_timeout, 25 s)
        "graceful_timeout": 30,
        "access_log": access_log,
    }


def gunicorn_options(host: str, port: int, *, workers: int | None = None, threads: int | None = None,
                     worker_class: str = "gthread", timeout: float = 30.0, max_connections: int = 1000,
                     max_requests: int | None = None, access_log: bool = False) -> dict[str, t.Any]:
    """The gunicorn settings of ``ordergate serve --server gunicorn`` (bench/serve_nolog.py reuses them)."""
    return {
        "bind": _bind(host, port),
        "workers": workers or 2 * _cores(),
        "worker_class": worker_class,
        "threads": threads or 4,
        "keepalive": 30,
        "timeout": math.ceil(timeout),
        "worker_connections": max_connections,
        "max_requests": max_requests or 0,
        "max_requests_jitter": (max_requests or 0) // 10,
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
