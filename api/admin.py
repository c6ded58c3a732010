"""Auditor and admin endpoints: versions, diff, publish, activate, the decision log, replay.

Reading needs the ``audit`` role, publishing and activating ``admin``. The store does the work;
this module checks parameters, maps store exceptions to the error table and shapes JSON.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import secrets
import typing as t

from flask import Flask, Response, request

from api import evidence, whole_log
from api.body import read_json
from api.decisions import json_response
from api.errors import ApiError, bad_request
from store.impact_reports import impact_reports

log = logging.getLogger("ordergate.api")

_MAX_LIMIT = 1000
_DEFAULT_LIMIT = 100
T = t.TypeVar("T")


if t.TYPE_CHECKING:
    from store import InvalidInput, PublishRejected, StoreError, VersionNotFound


def _store_errors() -> tuple[type[InvalidInput], type[PublishRejected], type[StoreError], type[VersionNotFound]]:
    from store import InvalidInput, PublishRejected, StoreError, VersionNotFound

    return InvalidInput, PublishRejected, StoreError, VersionNotFound


def map_store_error(exc: Exception) -> ApiError:
    """The API error for an exception raised by the store."""
    InvalidInput, PublishRejected, StoreError, VersionNotFound = _store_errors()
    if isinstance(exc, VersionNotFound):
        return ApiError("not_found", f"no policy version `{exc.version_id}`")
    if isinstance(exc, InvalidInput):
        return bad_request(str(exc), "invalid_parameter")
    if isinstance(exc, PublishRejected):
        return ApiError(
            "publish_rejected", str(exc), errors=exc.errors, test_failures=exc.test_failures,
        )
    if isinstance(exc, StoreError):
        # the store's message may name the database (user, host, port, name): keep it for the server
        # log, and give the caller a reference to it
        reference = secrets.token_hex(4)
        log.warning("ordergate: store error %s: %s", reference, exc)
        return ApiError(
            "store_unavailable", f"the store failed or does not answer (server log reference `{reference}`)"
        )
    raise exc


_RULE_FIELDS = ("id", "kind", "says", "sources", "system", "actions", "file", "line", "definition")


def _rules_of(policy_set: t.Any) -> list[dict[str, t.Any]]:
    return [{f: getattr(r, f) for f in _RULE_FIELDS} for r in policy_set.rules]


def check_files(files: t.Any) -> dict[str, str]:
    """A posted rules folder ``{relative path: text}``, or ``ApiError(bad_request)``."""
    if not isinstance(files, dict) or not files:
        raise bad_request("`files` must be a non-empty object mapping relative paths to file text", "invalid_files")
    for path, text in files.items():
        parts = path.split("/")
        if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
            raise bad_request(f"file path `{path}` must be relative, with `/` separators and no `..`",
                              "invalid_files")
        if not isinstance(text, str):
            raise bad_request(f"the content of `{path}` must be a string", "invalid_files")
    return files


def _parse_time(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise bad_request(
            f"`{name}` must be an ISO-8601 time, e.g. 2026-01-31T12:00:00Z", "invalid_parameter"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.isoformat()


def _parse_bool(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise bad_request(f"`{name}` must be `true` or `false`", "invalid_parameter")


def _parse_int(name: str, value: str | None, *, default: int | None, low: int, high: int | None = None) -> int | None:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise bad_request(f"`{name}` must be an integer", "invalid_parameter") from None
    if number < low or (high is not None and number > high):
        raise bad_request(f"`{name}` must be between {low} and {high}", "invalid_parameter")
    return number


def _parse_cursor(value: str | None, by_time: bool) -> tuple[str | None, int | None]:
    """``(after_time, after_seq)`` of a ``next_cursor``: ``seq``, or ``time~seq`` for a time range."""
    if value is None:
        return None, None
    time_part, sep, seq_part = value.rpartition("~")
    if by_time != bool(sep) or not seq_part.isdigit() or len(seq_part) > 19 or (sep and len(time_part) > 40):
        raise bad_request("`cursor` must be the `next_cursor` of the previous page of the same query",
                          "invalid_parameter")
    return (time_part or None), int(seq_part)


def _page(items: list[T], key: t.Callable[[T], str]) -> tuple[list[T], str | None]:
    """One page of a list, newest first: ``limit`` items after the item whose key is ``cursor``.

    The cursor is the key of the last item of the previous page (a version id, an activation
    id), so pages stay right while new items arrive at the front.
    """
    args = request.args
    unknown = sorted(set(args) - {"limit", "cursor"})
    if unknown:
        raise bad_request(f"unknown query parameter `{unknown[0]}`; known: cursor, limit", "invalid_parameter")
    limit = _parse_int("limit", args.get("limit"), default=_DEFAULT_LIMIT, low=1, high=_MAX_LIMIT) or _DEFAULT_LIMIT
    cursor = args.get("cursor")
    if cursor is not None:
        keys = [key(item) for item in items]
        if cursor not in keys:
            raise bad_request("`cursor` must be the `next_cursor` of a previous page", "invalid_parameter")
        items = items[keys.index(cursor) + 1:]
    page = items[:limit]
    return page, key(page[-1]) if len(items) > limit else None


def _compile_candidate(files: dict[str, str]) -> t.Any:
    import engine

    try:
        return engine.compile_files(files)
    except engine.PolicyErrors as exc:
        raise ApiError("publish_rejected", f"the candidate does not compile: {exc.errors[0]}",
                       errors=[e.to_dict() for e in exc.errors], test_failures=[]) from None


def _busy(what: str) -> ApiError:
    """429 ``busy``: another whole-log read runs here; ``retry_after`` (and so ``Retry-After``) says
    when to ask again."""
    return ApiError("busy", f"this server is already reading the whole decision log for another request; {what} "
                            "was not started: try again when it has finished", retry_after=whole_log.RETRY_AFTER)


def _impact_fields(body: dict[str, t.Any]) -> tuple[str | None, int | None]:
    """``impact_since`` (an ISO-8601 time, normalised) and ``max_risky_flips`` (a whole number, with
    ``impact_since`` only) of a publish request."""
    since, most = body.get("impact_since"), body.get("max_risky_flips")
    if since is not None and not isinstance(since, str):
        raise bad_request("`impact_since` must be an ISO-8601 time, e.g. 2026-01-31T12:00:00Z", "invalid_parameter")
    if most is not None and (type(most) is not int or most < 0):
        raise bad_request("`max_risky_flips` must be a whole number, 0 or more", "invalid_parameter")
    if most is not None and since is None:
        raise bad_request("`max_risky_flips` needs `impact_since` (the decisions to replay)", "invalid_parameter")
    return _parse_time("impact_since", since), most


def serve_everywhere_of(runtime: t.Any, version_id: str) -> dict[str, t.Any]:
    """Answer once every worker of this server decides with the new version (or the switch timeout).

    The watcher does the loading in each worker (one loader per process, so the last
    activation always wins); without a watcher this loads it itself.
    """
    config = runtime.config
    if not runtime.following:
        runtime.load(version_id)
    runtime.workers.signal(version_id)
    count, total = runtime.workers.wait_all(version_id, timeout=float(config["switch_timeout"]))
    if count < total:
        log.warning("ordergate: version %s activated; %d of %d workers of this server decide with it "
                    "after %g s", version_id, count, total, float(config["switch_timeout"]))
    return {"serving": runtime.active_version_id, "workers": {"serving": count, "total": total}}


def publish_candidate(runtime: t.Any, files: dict[str, str], author: str, message: str, activate: bool,
                      impact: t.Mapping[str, t.Any] | None = None) -> t.Any:
    """Compile, test and store a candidate; in a child process when the database allows it. Raises
    the store's errors (``PublishRejected`` with every error of a broken candidate)."""
    config = runtime.config
    if runtime.store is None:
        raise ApiError("store_unavailable", "the store is not configured")
    url = str(config.get("database_url") or "")
    in_memory = url in ("sqlite://", "sqlite:///:memory:") or ":memory:" in url
    if config["publish_in_child"] and config.get("store") is None and url and not in_memory:
        from api import publisher

        folder = runtime.artifacts.folder if runtime.artifacts is not None else None
        return publisher.publish(runtime.store, url, files, author=author, message=message, activate=activate,
                                 impact=impact, artifacts=folder)
    sharing = runtime.artifacts.sharing if runtime.artifacts is not None else None
    return runtime.store.publish(files, author=author, message=message, activate=activate, impact=impact,
                                 checking=sharing)


def register(app: Flask, runtime: t.Any, requires: t.Callable[[str], t.Any]) -> None:
    config = runtime.config
    max_publish = int(config["max_publish_bytes"])
    max_depth = int(config["max_depth"])

    def store() -> t.Any:
        if runtime.store is None:
            raise ApiError("store_unavailable", "the store is not configured")
        return runtime.store

    def call(fn: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return fn(*args, **kwargs)
        except ApiError:
            raise
        except evidence.NotFound as exc:
            raise ApiError("not_found", str(exc)) from exc
        except Exception as exc:
            from store import StoreError

            if isinstance(exc, StoreError):
                raise map_store_error(exc) from exc
            raise

    def resolve(ref: str) -> str:
        if ref == "active":
            active = call(store().active_version_id)
            if active is None:
                raise ApiError("not_found", "no version is active")
            return active
        return call(store().resolve_version, ref)

    def serve_everywhere(version_id: str) -> dict[str, t.Any]:
        return serve_everywhere_of(runtime, version_id)

    def publish_files(files: dict[str, str], author: str, message: str, activate: bool,
                      impact: t.Mapping[str, t.Any] | None = None) -> t.Any:
        return call(publish_candidate, runtime, files, author, message, activate, impact)

    def policy_set(version_id: str) -> t.Any:
        return call(store().policy_set, version_id)

    # -- versions -------------------------------------------------------------------------------

    @app.get("/v1/versions")
    def list_versions() -> Response:
        requires("audit")
        active = call(store().active_version_id)
        page, next_cursor = _page(call(store().list_versions), lambda v: v.id)
        versions = [dict(v.to_dict(), active=v.id == active) for v in page]
        return json_response({"active": active, "versions": versions, "next_cursor": next_cursor})

    @app.get("/v1/versions/<ref>")
    def show_version(ref: str) -> Response:
        requires("audit")
        version_id = resolve(ref)
        version = call(store().get_version, version_id)
        ps = policy_set(version_id)
        body = version.to_dict(with_files=True)
        body["active"] = call(store().active_version_id) == version_id
        body["impact_report"] = call(impact_reports, store()).get(version_id)
        body["rules"] = _rules_of(ps)
        body["catalogue"] = {system: list(actions) for system, actions in ps.catalogue.items()}
        return json_response(body)

    @app.get("/v1/versions/<a>/diff/<b>")
    def diff(a: str, b: str) -> Response:
        requires("audit")
        a_id, b_id = resolve(a), resolve(b)
        a_version, b_version = call(store().get_version, a_id), call(store().get_version, b_id)
        body = {"from": a_id, "to": b_id}
        body.update(evidence.diff(a_version.files or {}, policy_set(a_id), b_version.files or {}, policy_set(b_id)))
        return json_response(body)

    @app.post("/v1/versions/<ref>/impact")
    def impact(ref: str) -> Response:
        requires("audit")
        body: t.Any = {}
        if request.content_length or request.headers.get("Transfer-Encoding"):
            body = read_json(request, max_bytes=max_publish, max_depth=max_depth)
            if not isinstance(body, dict):
                raise bad_request("the body, when given, must be an object of filters (and `files`)", "not_object")
        unknown = sorted(set(body) - {"since", "until", "action", "system", "rule", "examples", "exhaustive", "files"})
        if unknown:
            raise bad_request(f"unknown field `{unknown[0]}`", "invalid_parameter")
        filters = {}
        for name in ("action", "system", "rule"):
            if body.get(name) is not None and not isinstance(body[name], str):
                raise bad_request(f"`{name}` must be a string", "invalid_parameter")
            filters[name] = body.get(name)
        for name in ("since", "until"):
            value = body.get(name)
            if value is not None and not isinstance(value, str):
                raise bad_request(f"`{name}` must be an ISO-8601 time", "invalid_parameter")
            filters[name] = _parse_time(name, value)
        examples = body.get("examples", 5)
        if type(examples) is not int or not 0 <= examples <= 100:
            raise bad_request("`examples` must be a whole number from 0 to 100", "invalid_parameter")
        exhaustive = body.get("exhaustive", False)
        if not isinstance(exhaustive, bool):
            raise bad_request("`exhaustive` must be true or false", "invalid_parameter")
        if ref == "candidate":
            candidate = _compile_candidate(check_files(body.get("files")))
        elif "files" in body:
            raise bad_request("post `files` to /v1/versions/candidate/impact, not to a stored version",
                              "invalid_parameter")
        else:
            candidate = policy_set(resolve(ref))
        with whole_log.one_at_a_time(lambda: _busy("the replay")):
            report = call(evidence.impact, store(), candidate, examples=examples, exhaustive=exhaustive, **filters)
        return json_response(report)

    def impact_gate(files: dict[str, str], since: str, max_risky_flips: int | None) -> dict[str, t.Any] | None:
        """The impact report of the candidate over the decisions logged since ``since``; 409
        ``impact_refused`` (nothing stored) when it turns more denials into allows than
        ``max_risky_flips``. None when the candidate does not compile: publishing rejects it then."""
        import engine

        try:
            candidate = engine.compile_files(files)
        except engine.PolicyErrors:
            return None
        with whole_log.one_at_a_time(lambda: _busy("the publish (its impact replay)")):
            report: dict[str, t.Any] = call(evidence.impact, store(), candidate, since=since)
        if max_risky_flips is not None and report["risky_flips"] > max_risky_flips:
            raise ApiError("impact_refused",
                           f"not published: {report['risky_flips']} logged decisions would go from DENY to ALLOW "
                           f"(at most {max_risky_flips} allowed by `max_risky_flips`)",
                           risky_flips=report["risky_flips"], max_risky_flips=max_risky_flips, impact_report=report)
        return report

    @app.post("/v1/versions")
    def publish() -> Response:
        principal = requires("admin")
        body = read_json(request, max_bytes=max_publish, max_depth=max_depth)
        if not isinstance(body, dict):
            raise bad_request("the body must be an object `{\"files\": {path: text}, \"message\": ...}`", "not_object")
        unknown = sorted(set(body) - {"files", "message", "activate", "impact_since", "max_risky_flips"})
        if unknown:
            raise bad_request(f"unknown field `{unknown[0]}`", "invalid_parameter")
        files = check_files(body.get("files"))
        message = body.get("message")
        if not isinstance(message, str) or not message.strip():
            raise bad_request("`message` must be a non-empty string saying why", "invalid_parameter")
        activate = body.get("activate", True)
        if not isinstance(activate, bool):
            raise bad_request("`activate` must be true or false", "invalid_parameter")
        since, max_risky_flips = _impact_fields(body)
        report = impact_gate(files, since, max_risky_flips) if since is not None else None
        impact = None if report is None else {"hash": report["hash"], "risky_flips": report["risky_flips"],
                                              "since": since}
        version = publish_files(files, principal.name, message, activate, impact)
        out = version.to_dict()
        out["impact_report"] = call(impact_reports, store()).get(version.id) if report is not None else None
        if activate:
            out.update(serve_everywhere(version.id))
        out["active"] = call(store().active_version_id) == version.id
        out.setdefault("serving", runtime.active_version_id)
        response = json_response(out, 201)
        response.headers["Location"] = f"/v1/versions/{version.id}"
        return response

    @app.post("/v1/versions/<ref>/activate")
    def activate(ref: str) -> Response:
        principal = requires("admin")
        reason = ""
        if request.content_length or request.headers.get("Transfer-Encoding"):
            body = read_json(request, max_bytes=int(config["max_body_bytes"]), max_depth=max_depth)
            if not isinstance(body, dict):
                raise bad_request("the body, when given, must be an object `{\"reason\": ...}`", "not_object")
            reason = body.get("reason", "")
            if not isinstance(reason, str):
                raise bad_request("`reason` must be a string", "invalid_parameter")
        version_id = resolve(ref)
        version, previous = call(store().activate_from, version_id, actor=principal.name, reason=reason)
        out = version.to_dict()
        out.update(serve_everywhere(version.id))
        out.update(active=True, previous=previous)
        return json_response(out)

    @app.get("/v1/activations")
    def activations() -> Response:
        requires("audit")
        reports = call(impact_reports, store())
        history = [dict(a, impact_report=reports.get(a["version_id"])) for a in call(store().activation_history)]
        page, next_cursor = _page(history, lambda a: str(a["id"]))
        return json_response({"activations": page, "next_cursor": next_cursor})

    # -- the decision log -----------------------------------------------------------------------

    @app.get("/v1/decisions")
    def query_decisions() -> Response:
        requires("audit")
        args = request.args
        known = {"since", "until", "action", "allow", "rule", "version", "caller", "request_id", "limit", "cursor"}
        unknown = sorted(set(args) - known)
        if unknown:
            raise bad_request(f"unknown query parameter `{unknown[0]}`; known: {', '.join(sorted(known))}",
                              "invalid_parameter")
        limit = _parse_int("limit", args.get("limit"), default=_DEFAULT_LIMIT, low=1, high=_MAX_LIMIT) or _DEFAULT_LIMIT
        since, until = _parse_time("since", args.get("since")), _parse_time("until", args.get("until"))
        # a time range pages by (time, seq) on the time index, so a page never re-reads the range
        by_time = since is not None or until is not None
        after_time, after_seq = _parse_cursor(args.get("cursor"), by_time)
        version = args.get("version") or None
        if version is not None:
            # not a stored version (or prefix): the filter matches nothing, as it should
            with contextlib.suppress(ApiError):
                version = resolve(version)
        records = call(
            store().query_decisions,
            since=since,
            until=until,
            action=args.get("action") or None,
            allow=_parse_bool("allow", args.get("allow")),
            rule=args.get("rule") or None,
            version=version or None,
            caller=args.get("caller") or None,
            request_id=args.get("request_id") or None,
            limit=limit + 1,
            after_seq=after_seq,
            after_time=after_time,
            order="time" if by_time else "seq",
        )
        more = len(records) > limit
        records = records[:limit]
        next_cursor = None
        if more and records:
            last = records[-1]
            next_cursor = f"{last['time']}~{last['seq']}" if by_time else str(last["seq"])
        return json_response({"decisions": [evidence.logged_view(r) for r in records], "next_cursor": next_cursor})

    @app.get("/v1/decisions/<decision_id>")
    def get_decision(decision_id: str) -> Response:
        requires("audit")
        record = call(store().get_decision, decision_id)
        if record is None:
            raise ApiError("not_found", f"no logged decision `{decision_id}`")
        return json_response(evidence.logged_view(record))

    @app.post("/v1/decisions/<decision_id>/replay")
    def replay(decision_id: str) -> Response:
        requires("audit")
        target: str | None = None
        if request.content_length or request.headers.get("Transfer-Encoding"):
            body = read_json(request, max_bytes=int(config["max_body_bytes"]), max_depth=max_depth)
            if not isinstance(body, dict):
                raise bad_request("the body, when given, must be an object `{\"version\": ...}`", "not_object")
            target = body.get("version")
            if target is not None and not isinstance(target, str):
                raise bad_request("`version` must be a version id (or `active`)", "invalid_parameter")
        return json_response(call(evidence.replay, store(), decision_id, None if target is None else resolve(target)))

    @app.get("/v1/decisions/<decision_id>/explain")
    def explain(decision_id: str) -> Response:
        requires("audit")
        return json_response(call(evidence.explain, store(), decision_id))

    @app.get("/v1/audit/verify")
    def verify() -> Response:
        requires("audit")
        with whole_log.one_at_a_time(lambda: _busy("the verification")):
            report = call(store().verify_chain)
        return json_response(report.to_dict())
