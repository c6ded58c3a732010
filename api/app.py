"""The Flask application factory: configuration, the error table, auth, and the route modules."""
from __future__ import annotations

import json
import logging
import os
import typing as t
from pathlib import Path

import yaml
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from api import admin, decisions
from api.auth import Authenticator, Principal, tokens_from_env
from api.decide_http import DecisionEndpoint, defect_answer, error_answer, require_json
from api.decisions import json_response
from api.errors import ApiError, bad_request
from api.metrics import Metrics
from api.runtime import Runtime

log = logging.getLogger("ordergate.api")

_HERE = Path(__file__).resolve().parent
_JSON = "application/json"
SHIPPED_RULES = _HERE.parent / "rules"

#: every setting, its default, and the environment variable that overrides the default
DEFAULTS: dict[str, t.Any] = {
    "database_url": None,            # ORDERGATE_DATABASE_URL, else sqlite:///var/ordergate.sqlite
    "rules_dir": str(SHIPPED_RULES),  # published and activated when the store is empty
    # [api.auth.Token] or {role: ["name:secret", ...]}; None = from ORDERGATE_TOKENS_FILE/_<ROLE>
    "tokens": None,
    "max_body_bytes": 1024 * 1024,   # decision requests (single and batch)
    "max_publish_bytes": 16 * 1024 * 1024,
    "max_batch": 1000,
    "max_depth": 32,
    # "commit": a decision is answered once its log record committed (group commit); "async":
    # answered once queued, so a crash loses what is queued (docs/operations.md)
    "log_durability": "commit",      # ORDERGATE_LOG_DURABILITY
    "log_on_full": "block",          # or "fail_closed": ORDERGATE_LOG_ON_FULL
    "log_block_timeout": 10.0,       # seconds `block` waits for room before failing closed
    "log_commit_timeout": 30.0,      # seconds a caller waits for its commit before failing closed
    "log_batch_size": 2000,          # decisions per log transaction at most
    "log_flush_interval": 0.05,      # async only: seconds the writer waits to fill a batch
    # per process; when the database cannot keep up, callers feel it at once (block, or fail
    # closed) instead of a backlog that memory could not hold
    "log_max_queue": 5000,
    "log_max_queue_bytes": 32 * 1024 * 1024,  # ORDERGATE_LOG_MAX_QUEUE_BYTES
    "log_close_timeout": 25.0,       # seconds a stopping worker waits for its log to be written
    "watch_interval": 1.0,           # seconds between checks for a new activation (0 = off)
    # publish/activate answer once every worker of the server decides with the new version, or
    # after this many seconds (the answer's `workers` says how many had switched)
    "switch_timeout": 10.0,
    "server_state_dir": None,        # set by `ordergate serve`: where its workers say what they serve
    "publish_in_child": True,        # compile and test a candidate in a child process (needs a database URL)
    "startup_retry_interval": 5.0,   # seconds between attempts when the store is down at start-up
    "bootstrap": True,
    "warn_without_tokens": True,     # `ordergate serve` says it once itself, not once per worker
    "migrate": True,
    "store": None,                   # an already built store.Store (tests)
    "decision_log_writer": None,     # an already built DecisionLogWriter (tests)
    "log_socket": None,              # set by `ordergate serve`: its decision log writer process's socket
}

_ENV = {
    "database_url": ("ORDERGATE_DATABASE_URL", str),
    "max_body_bytes": ("ORDERGATE_MAX_BODY_BYTES", int),
    "max_batch": ("ORDERGATE_MAX_BATCH", int),
    "max_depth": ("ORDERGATE_MAX_DEPTH", int),
    "log_on_full": ("ORDERGATE_LOG_ON_FULL", str),
    "log_durability": ("ORDERGATE_LOG_DURABILITY", str),
    "log_max_queue_bytes": ("ORDERGATE_LOG_MAX_QUEUE_BYTES", int),
    "watch_interval": ("ORDERGATE_WATCH_INTERVAL", float),
}


def load_config(config: t.Mapping[str, t.Any] | None = None) -> dict[str, t.Any]:
    """Defaults, then environment variables, then ``config``."""
    merged = dict(DEFAULTS)
    for key, (env, cast) in _ENV.items():
        if os.environ.get(env):
            merged[key] = cast(os.environ[env])
    merged.update(config or {})
    if not merged.get("database_url"):
        from store import default_database_url

        merged["database_url"] = default_database_url()
    if merged.get("tokens") is None:
        merged["tokens"] = tokens_from_env()
    if merged["log_on_full"] not in ("block", "fail_closed"):
        raise ValueError(f"log_on_full must be `block` or `fail_closed`, not `{merged['log_on_full']}`")
    if merged["log_durability"] not in ("commit", "async"):
        raise ValueError(f"log_durability must be `commit` or `async`, not `{merged['log_durability']}`")
    for key in ("max_body_bytes", "max_publish_bytes", "max_batch", "max_depth", "log_max_queue",
                "log_max_queue_bytes"):
        if int(merged[key]) < 1:
            raise ValueError(f"{key} must be positive")
    return merged


def create_app(config: dict | None = None) -> Flask:
    """Build the decision service.

    :param config: overrides of ``DEFAULTS`` (keys above). The app loads the active version from
        the store at once (publishing ``rules_dir`` into an empty store), follows activations,
        and records every decision through a ``DecisionLogWriter``.
    """
    settings = load_config(config)
    app = Flask("ordergate", static_folder=None)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # a backstop: the body readers enforce the per-endpoint limits themselves
    app.config["MAX_CONTENT_LENGTH"] = max(int(settings["max_body_bytes"]), int(settings["max_publish_bytes"]))
    metrics = Metrics()
    runtime = Runtime(settings, metrics)
    authenticator = Authenticator(settings["tokens"])
    app.extensions["ordergate"] = runtime
    app.extensions["ordergate.auth"] = authenticator
    if not authenticator.enabled and settings["warn_without_tokens"]:
        log.warning("ordergate: no access tokens configured: authentication is OFF; only callers on this "
                    "machine are served (set ORDERGATE_TOKENS_FILE or ORDERGATE_TOKENS_DECIDE/_AUDIT/_ADMIN)")

    def requires(role: str) -> Principal:
        """The caller, who must hold ``role``; ``flask.g.caller`` is its name from here on."""
        principal = authenticator.require_request(role, request.headers.get("Authorization"), request.remote_addr,
                                                  request.host)
        g.caller = principal.name
        return principal

    @app.before_request
    def json_posts_only() -> None:
        # (the workbench's forms are posted as forms: each carries its session's CSRF token instead)
        if request.routing_exception is None and request.blueprint != "workbench":
            require_json(request.method, request.mimetype)

    _register_errors(app, metrics)
    from api import workbench

    workbench.init_app(app, authenticator, str(settings["database_url"]))
    endpoint = DecisionEndpoint(runtime, authenticator)
    decisions.register(app, endpoint)
    # what cli.front.BufferedFront answers without Flask: POST on these exact paths
    app.extensions["ordergate.direct_posts"] = dict.fromkeys(endpoint.paths, endpoint)
    admin.register(app, runtime, requires)
    _register_health(app, runtime)
    runtime.start()
    return app


def _register_errors(app: Flask, metrics: Metrics) -> None:
    @app.errorhandler(ApiError)
    def on_api_error(exc: ApiError) -> Response:
        status, body = error_answer(exc, metrics)
        response = Response(body, status=status, mimetype=_JSON)
        if "retry_after" in exc.extra:  # the error says when to ask again: so does the header (RFC 9110)
            response.headers["Retry-After"] = str(exc.extra["retry_after"])
        return response

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException) -> t.Any:
        status = exc.code or 500
        if request.path == "/ui" or request.path.startswith("/ui/"):
            from api.workbench.core import http_error_page

            return http_error_page(exc)  # a person's browser: an error page, not JSON
        if status == 413:
            limit = app.config["MAX_CONTENT_LENGTH"]
            return on_api_error(bad_request(f"the request body is larger than {limit} bytes", "body_too_large",
                                            status=413, limit=limit))
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                415: "unsupported_media_type"}.get(status)
        if code is None:
            code = "bad_request" if 400 <= status < 500 else "internal_error"
        if status == 404:
            message = f"no route `{request.path}`"
        elif status == 405:
            message = f"`{request.method}` is not allowed on `{request.path}`"
        else:
            message = (exc.description or exc.name).rstrip(".").replace("\n", " ")
        error = ApiError(code, message, status=status)
        response = json_response(error.to_dict(), status)
        if status == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def on_defect(exc: Exception) -> Response:
        status, body = defect_answer(exc, request.method, request.path)
        return Response(body, status=status, mimetype=_JSON)


def _register_health(app: Flask, runtime: Runtime) -> None:
    openapi_path = _HERE / "openapi.yaml"

    @app.get("/healthz")
    def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        # open to anyone: say what is wrong, never the database's user, host, port or name (the
        # server log has the details)
        problems: list[str] = []
        loaded = runtime.holder.current
        if loaded is None:
            problems.append("no policy version loaded" +
                            (" (start-up failed; the server log says why)" if runtime.startup_error else ""))
        try:
            runtime.store.ping()
        except Exception as exc:
            log.warning("ordergate: readiness: the store does not answer: %s", exc)
            problems.append("the store does not answer")
        stats = runtime.writer.stats() if runtime.writer is not None else {}
        if not stats.get("healthy", False):
            problems.append("the decision log cannot be written (the server log says why)")
        body = {
            "status": "ready" if not problems else "not_ready",
            "policy_version": loaded.version_id if loaded else None,
            "decision_log": {k: stats.get(k) for k in ("durability", "queued", "written", "failed_batches",
                                                       "healthy", "on_full")},
            "problems": problems,
        }
        return json_response(body, 200 if not problems else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        stats = runtime.writer.stats() if runtime.writer is not None else None
        text = runtime.metrics.render(active_version=runtime.active_version_id, log_stats=stats,
                                      on_full=runtime.config["log_on_full"])
        return Response(text, mimetype="text/plain", content_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/openapi.json")
    def openapi_json() -> Response:
        document = yaml.safe_load(openapi_path.read_text(encoding="utf-8"))
        return Response(json.dumps(document, indent=1), mimetype="application/json")

    @app.get("/openapi.yaml")
    def openapi_yaml() -> Response:
        return Response(openapi_path.read_text(encoding="utf-8"), mimetype="application/yaml")
